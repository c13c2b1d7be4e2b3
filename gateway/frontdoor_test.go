package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"wsgate/internal/pki"
	"wsgate/internal/testclock"
)

// opsGateway is a gateway built like serve builds it, behind the front
// door, without a listener.
type opsGateway struct {
	g     *Gateway
	front http.Handler
	admin http.Handler
	logs  *syncBuffer
	clk   *testclock.Clock
	up    *recordingUpstream
	hmac  []byte
	dir   string
}

// newOpsGateway writes yaml (with UPSTREAM replaced) and the secrets the
// routes below use, and builds the gateway at t0.
func newOpsGateway(t *testing.T, yaml string) *opsGateway {
	t.Helper()
	dir := t.TempDir()
	o := &opsGateway{logs: &syncBuffer{}, clk: testclock.New(t0), up: newRecordingUpstream(t), hmac: make([]byte, 32), dir: dir}
	if _, err := rand.Read(o.hmac); err != nil {
		t.Fatal(err)
	}
	ca := mustIssue(t, pki.Options{CommonName: "partners", IsCA: true, Key: pki.ECP256}, nil)
	writeSecretJSON(t, dir, "wsgate/jwks/hmac", map[string]string{"secret": base64.StdEncoding.EncodeToString(o.hmac)})
	writeSecretJSON(t, dir, "wsgate/trust/partners", map[string]string{"certificates": string(pki.CertPEM(ca.Cert))})
	writeSecretJSON(t, dir, "wsgate/tls/listener", identityFields(t, mustIssue(t, pki.Options{CommonName: "gw", Key: pki.ECP256}, ca), ca.Cert))
	o.g = newTestGateway(t, dir, strings.ReplaceAll(yaml, "UPSTREAM", o.up.URL), o.clk, o.logs)
	o.front = o.g.Handler()
	o.admin = o.g.AdminHandler()
	return o
}

func (o *opsGateway) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	o.front.ServeHTTP(w, r)
	return w
}

const opsRoutes = `
log: {level: info}
secrets: {backend: file, file: {dir: secrets}}
trusted_proxies: [10.0.0.0/8, "2001:db8::1"]
routes:
  - {name: pub, path_prefix: /pub, upstream: "UPSTREAM", public: true}
  - name: limited
    path_prefix: /limited
    upstream: "UPSTREAM"
    public: true
    rate_limit: {per: client_ip, rate: 0.001, burst: 1}
  - name: api
    path_prefix: /api
    upstream: "UPSTREAM"
    oauth: {issuer: "` + testIssuer + `", audience: [` + testAudience + `], jwks_secret: wsgate/jwks/hmac, algorithms: [HS256]}
  - {name: orders, path_prefix: /soap/orders, upstream: "UPSTREAM", soap: {trust: wsgate/trust/partners}}
`

// After a known sequence of requests, /metrics counts each one under its
// route, protocol and outcome, each refusal under its reason, the upstream
// round trips, the secret refresh and the secrets' age.
func TestMetricsAfterKnownSequence(t *testing.T) {
	o := newOpsGateway(t, opsRoutes)
	if err := o.g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	good := mintJWT(t, jose.HS256, o.hmac, "", o.clk, nil)
	soapPost := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/soap/orders", strings.NewReader("not xml"))
		r.Header.Set("Content-Type", "text/xml")
		return r
	}
	steps := []struct {
		req  *http.Request
		code int
	}{
		{httptest.NewRequest(http.MethodGet, "/pub/a", nil), 200},
		{httptest.NewRequest(http.MethodGet, "/pub/b", nil), 200},
		{httptest.NewRequest(http.MethodGet, "/limited/a", nil), 200},
		{httptest.NewRequest(http.MethodGet, "/limited/a", nil), 429},
		{bearerGet("/api/x", good), 200},
		{bearerGet("/api/x", ""), 401},
		{bearerGet("/api/x", "not-a-jwt"), 401},
		{soapPost(), 400},
		{httptest.NewRequest(http.MethodGet, "/nowhere", nil), 404},
	}
	for i, s := range steps {
		if w := o.do(s.req); w.Code != s.code {
			t.Fatalf("step %d %s: %d, want %d: %s", i, s.req.URL, w.Code, s.code, w.Body)
		}
	}
	o.clk.Add(90 * time.Second)

	w := httptest.NewRecorder()
	o.admin.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", w.Code)
	}
	body := w.Body.String()
	want := []string{
		`wsgate_requests_total{outcome="forwarded",protocol="public",route="pub"} 2`,
		`wsgate_requests_total{outcome="forwarded",protocol="public",route="limited"} 1`,
		`wsgate_requests_total{outcome="rate_limited",protocol="public",route="limited"} 1`,
		`wsgate_requests_total{outcome="accepted",protocol="rest",route="api"} 1`,
		`wsgate_requests_total{outcome="rejected",protocol="rest",route="api"} 2`,
		`wsgate_requests_total{outcome="rejected",protocol="soap",route="orders"} 1`,
		`wsgate_requests_total{outcome="invalid",protocol="none",route="none"} 1`,
		`wsgate_security_rejections_total{reason="rate_limited",route="limited"} 1`,
		`wsgate_security_rejections_total{reason="no_token",route="api"} 1`,
		`wsgate_security_rejections_total{reason="malformed",route="api"} 1`,
		`wsgate_security_rejections_total{reason="InvalidSecurity",route="orders"} 1`,
		`wsgate_request_duration_seconds_count{protocol="public",route="pub"} 2`,
		`wsgate_upstream_duration_seconds_count{route="pub"} 2`,
		`wsgate_upstream_duration_seconds_count{route="limited"} 1`,
		`wsgate_upstream_duration_seconds_count{route="api"} 1`,
		`wsgate_secret_refresh_total{outcome="success"} 1`,
		`wsgate_secret_refresh_total{outcome="failure"} 0`,
		`wsgate_secret_age_seconds{secret="wsgate/jwks/hmac"} 90`,
		`wsgate_secret_age_seconds{secret="wsgate/trust/partners"} 90`,
		`wsgate_memory_budget_bytes 5.36870912e+08`,
		`wsgate_memory_budget_in_use_bytes 0`,
	}
	for _, line := range want {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("missing %s", line)
		}
	}
	if strings.Contains(body, `wsgate_upstream_duration_seconds_count{route="orders"}`) {
		t.Error("a rejected soap request was counted as an upstream round trip")
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", grepLines(body, "wsgate_"))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) && !strings.Contains(l, "_bucket") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// X-Request-ID is taken from trusted proxies only (and only when sane);
// anyone else's is replaced by a fresh one, which the edges, the upstream,
// the response and the access log all carry. The client IP in the access
// log follows X-Forwarded-For only through trusted proxies.
func TestRequestIDFromTrustedProxiesOnly(t *testing.T) {
	o := newOpsGateway(t, opsRoutes)
	if err := o.g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name, path, peer, sentID, xff string
		wantSent                      bool // the sent ID is kept
		wantIP                        string
	}{
		{"trusted proxy", "/pub/x", "10.1.2.3:4000", "abc-123", "198.51.100.7", true, "198.51.100.7"},
		{"trusted proxy chain", "/pub/x", "10.1.2.3:4000", "abc-124", "198.51.100.8, 10.9.9.9", true, "198.51.100.8"},
		{"trusted IPv6 proxy", "/pub/x", "[2001:db8::1]:4000", "abc-125", "198.51.100.9", true, "198.51.100.9"},
		{"untrusted peer", "/pub/x", "192.0.2.1:4000", "abc-126", "198.51.100.7", false, "192.0.2.1"},
		{"trusted proxy, insane ID", "/pub/x", "10.1.2.3:4000", "a b<c>", "", false, "10.1.2.3"},
		{"trusted proxy, overlong ID", "/pub/x", "10.1.2.3:4000", strings.Repeat("a", 65), "", false, "10.1.2.3"},
		{"untrusted peer, rest refusal", "/api/x", "192.0.2.1:4000", "abc-127", "", false, "192.0.2.1"},
		{"untrusted peer, soap fault", "/soap/orders", "192.0.2.1:4000", "abc-128", "", false, "192.0.2.1"},
		{"untrusted peer, no route", "/nowhere", "192.0.2.1:4000", "abc-129", "", false, "192.0.2.1"},
	}
	for _, tt := range tests {
		method, body := http.MethodGet, io.Reader(nil)
		if strings.HasPrefix(tt.path, "/soap") {
			method, body = http.MethodPost, strings.NewReader("<x/>")
		}
		r := httptest.NewRequest(method, tt.path, body)
		r.RemoteAddr = tt.peer
		r.Header.Set("X-Request-ID", tt.sentID)
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		before := len(o.logs.String())
		w := o.do(r)
		got := w.Header().Values("X-Request-ID")
		if len(got) != 1 {
			t.Errorf("%s: response X-Request-ID %q", tt.name, got)
			continue
		}
		id := got[0]
		if tt.wantSent && id != tt.sentID || !tt.wantSent && !hexID.MatchString(id) {
			t.Errorf("%s: request ID %q (sent %q)", tt.name, id, tt.sentID)
		}
		if tt.path == "/pub/x" && o.up.header().Get("X-Request-ID") != id {
			t.Errorf("%s: upstream saw %q, response has %q", tt.name, o.up.header().Get("X-Request-ID"), id)
		}
		if w.Code >= 400 && !strings.Contains(w.Body.String(), id) {
			t.Errorf("%s: error body lacks the request ID %s: %s", tt.name, id, w.Body)
		}
		var access map[string]any
		for _, line := range strings.Split(o.logs.String()[before:], "\n") {
			if strings.Contains(line, `"msg":"access"`) {
				if err := json.Unmarshal([]byte(line), &access); err != nil {
					t.Fatal(err)
				}
			}
		}
		if access == nil || access["request_id"] != id || access["client_ip"] != tt.wantIP ||
			access["path"] != tt.path || access["status"] != float64(w.Code) {
			t.Errorf("%s: access log %v", tt.name, access)
		}
		if strings.Contains(o.logs.String()[before:], tt.sentID) && !tt.wantSent {
			t.Errorf("%s: the refused client ID reached the log", tt.name)
		}
	}
}

// A route's rate-limit buckets survive a reload that leaves its rate_limit
// unchanged: SIGHUP is no way to refill a bucket.
func TestRateLimitSurvivesReload(t *testing.T) {
	o := newOpsGateway(t, opsRoutes)
	if w := o.do(httptest.NewRequest(http.MethodGet, "/limited/a", nil)); w.Code != http.StatusOK {
		t.Fatalf("first: %d", w.Code)
	}
	if err := reloadFile(t, o.g); err != nil {
		t.Fatal(err)
	}
	w := o.do(httptest.NewRequest(http.MethodGet, "/limited/a", nil))
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("after reload: %d %v", w.Code, w.Header())
	}
}
