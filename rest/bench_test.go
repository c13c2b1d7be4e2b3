package rest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"

	"wsgate/internal/reqscope"
)

// BenchmarkRouteOverhead runs the same GET over loopback through two gin
// servers side by side, alternating requests: one with the oauth handler
// (verified-token cache warm) and one plain reverse-proxy route with no
// oauth block. It reports both latencies and their ratio (target < 1.15).
func BenchmarkRouteOverhead(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	k, _ := rsaKeys(b)
	f := newFixture(b, nil)
	plain := gin.New()
	plain.Any(prefix+"/*rest", gin.WrapH(reverseProxy(b, f.up.URL)))
	withOAuth := httptest.NewServer(ginEngine(f.handler))
	without := httptest.NewServer(plain)
	b.Cleanup(withOAuth.Close)
	b.Cleanup(without.Close)
	f.logs.Reset()

	tok := "Bearer " + mint(b, jose.RS256, k, "k1", "at+jwt", claims())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	do := func(base string) time.Duration {
		req, err := http.NewRequest(http.MethodGet, base+prefix+"/invoices/1", nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", tok)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 {
			b.Fatalf("%s: status %d", base, resp.StatusCode)
		}
		return d
	}
	for range 50 { // warm connections and the token cache
		do(withOAuth.URL)
		do(without.URL)
	}
	var tOAuth, tPlain time.Duration
	n := 0
	b.ResetTimer()
	for b.Loop() {
		if n%2 == 0 {
			tOAuth += do(withOAuth.URL)
			tPlain += do(without.URL)
		} else {
			tPlain += do(without.URL)
			tOAuth += do(withOAuth.URL)
		}
		n++
	}
	b.ReportMetric(float64(tOAuth.Nanoseconds())/float64(n), "oauth-ns/req")
	b.ReportMetric(float64(tPlain.Nanoseconds())/float64(n), "plain-ns/req")
	b.ReportMetric(float64(tOAuth)/float64(tPlain), "ratio")
}

// ginEngine mounts h as the gateway does: on one gin router with gin.WrapH.
func ginEngine(h http.Handler) *gin.Engine {
	e := gin.New()
	e.Any(prefix, gin.WrapH(h))
	e.Any(prefix+"/*rest", gin.WrapH(h))
	return e
}

// BenchmarkHandlerCachedToken is the in-process cost of the oauth handler on
// a repeat token (no network, no-op upstream): what a route adds per request.
func BenchmarkHandlerCachedToken(b *testing.B) {
	k, _ := rsaKeys(b)
	f := newFixture(b, func(o *Options) {
		o.Upstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
		o.Logger = nil
		o.OnDecision = nil
	})
	tok := "Bearer " + mint(b, jose.RS256, k, "k1", "at+jwt", claims())
	gin.SetMode(gin.ReleaseMode)
	req := httptest.NewRequest(http.MethodGet, prefix+"/invoices/1", nil)
	req = req.WithContext(reqscope.With(req.Context(), reqscope.New("req-1", "192.0.2.1")))
	e := ginEngine(f.handler)
	run := func() {
		req.Header.Set("Authorization", tok)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != 204 {
			b.Fatalf("status %d", w.Code)
		}
	}
	run()
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
}
