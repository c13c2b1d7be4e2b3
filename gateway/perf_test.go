package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"wsgate/internal/reqscope"
	"wsgate/internal/testclock"
)

// The front door writes the request ID under requestIDKey directly into
// header maps: it must be reqscope.Header's canonical form, or Get would
// not find it and a second spelling would go upstream.
func TestRequestIDKeyCanonical(t *testing.T) {
	if got := http.CanonicalHeaderKey(reqscope.Header); got != requestIDKey {
		t.Fatalf("requestIDKey = %q, canonical reqscope.Header = %q", requestIDKey, got)
	}
}

// BenchmarkFrontDoorAccessLog is BenchmarkFrontDoor's public case with the
// access log on (log level info, JSON, as served), for its share of the
// per-request cost.
func BenchmarkFrontDoorAccessLog(b *testing.B) {
	t := &testing.T{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	b.Cleanup(up.Close)
	g := newTestGateway(t, b.TempDir(), `
log: {level: info, format: json}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: pub, path_prefix: /pub, upstream: "`+up.URL+`", public: true}
`, testclock.New(t0), &syncBuffer{})
	if err := g.Refresh(b.Context()); err != nil {
		b.Fatal(err)
	}
	h := g.Handler()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, "/pub/x", nil)
		r.Header.Set("X-Forwarded-For", "198.51.100.7")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
