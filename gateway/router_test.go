package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"wsgate/config"
	"wsgate/internal/metrics"
	"wsgate/rest"
)

// testGeneration is a generation serving entries behind the front door.
func testGeneration(t *testing.T, entries ...*routeEntry) *generation {
	t.Helper()
	m, err := metrics.New(prometheus.NewRegistry(), metrics.Sources{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &generation{cfg: &config.Config{}, router: &router{}, logger: slog.New(slog.DiscardHandler),
		now: time.Now, metrics: m, identity: headerSet{}}
	for _, e := range entries {
		if e.writeError == nil {
			e.writeError = rest.WriteError
		}
		g.router.add(e)
	}
	g.engine = g.newEngine()
	return g
}

func TestRouterLongestPrefixOnSegmentBoundaries(t *testing.T) {
	var entries []*routeEntry
	for _, p := range []string{"/", "/soap", "/soap/orders", "/soap/orders/v2"} {
		entries = append(entries, &routeEntry{name: p, prefix: p, protocol: "public",
			handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, p) })})
	}
	g := testGeneration(t, entries...)
	tests := []struct{ path, want string }{
		{"/soap/orders", "/soap/orders"},
		{"/soap/orders/", "/soap/orders"},
		{"/soap/orders/x", "/soap/orders"},
		{"/soap/ordersX", "/soap"},
		{"/soap/orders/v2/y", "/soap/orders/v2"},
		{"/soap/orders/v20", "/soap/orders"},
		{"/soapy", "/"},
		{"/", "/"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		g.engine.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Body.String() != tt.want || rec.Code != http.StatusOK {
			t.Errorf("%s -> %d %q, want %q", tt.path, rec.Code, rec.Body, tt.want)
		}
	}

	only := testGeneration(t, &routeEntry{name: "orders", prefix: "/soap/orders", protocol: "public", handler: http.NotFoundHandler()})
	for _, tt := range []struct {
		path   string
		status int
	}{{"/soap/ordersX", 404}, {"/other", 404}, {"/soap/orders/../admin", 400}, {"/soap//orders", 400}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = tt.path
		only.engine.ServeHTTP(rec, req)
		if rec.Code != tt.status || !strings.Contains(rec.Body.String(), `"request_id"`) ||
			rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want %d", tt.path, rec.Code, rec.Body, tt.status)
		}
	}
}

func TestRouterRecoversPanics(t *testing.T) {
	g := testGeneration(t, &routeEntry{name: "boom", prefix: "/", protocol: "public",
		handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })})
	rec := httptest.NewRecorder()
	g.engine.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"request_id"`) {
		t.Errorf("status %d %s", rec.Code, rec.Body)
	}
}
