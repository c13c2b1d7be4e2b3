package gateway

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A route's timeout bounds its upstream call (504 in the route's protocol);
// a route without one keeps limits.upstream_timeout.
func TestRouteTimeout(t *testing.T) {
	var calls atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte("late"))
	}))
	t.Cleanup(slow.Close)
	dir := t.TempDir()
	g := newTestGateway(t, dir, `
limits: {upstream_timeout: 30s}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: quick, path_prefix: /quick, upstream: "`+slow.URL+`", public: true, timeout: 50ms}
  - {name: patient, path_prefix: /patient, upstream: "`+slow.URL+`", public: true}
`, testclockNow(), &syncBuffer{})
	if got := upstreamTimeout(g.Config(), &g.Config().Routes[0]); got != 50*time.Millisecond {
		t.Fatalf("quick route timeout = %v", got)
	}
	start := time.Now()
	w := serveReq(g, httptest.NewRequest(http.MethodGet, "/quick/x", nil))
	if w.Code != http.StatusGatewayTimeout {
		t.Fatalf("quick route: %d %s, want 504", w.Code, w.Body)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("quick route answered after %v, want about its 50ms timeout", d)
	}
	if w := serveReq(g, httptest.NewRequest(http.MethodGet, "/patient/x", nil)); w.Code != http.StatusOK || w.Body.String() != "late" {
		t.Fatalf("patient route: %d %s, want the upstream's 200", w.Code, w.Body)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("upstream saw %d calls, want 2 (a timeout is not retried)", n)
	}
}
