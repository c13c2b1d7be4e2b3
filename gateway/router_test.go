package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRouterLongestPrefixOnSegmentBoundaries(t *testing.T) {
	rt := &router{}
	for _, p := range []string{"/", "/soap", "/soap/orders", "/soap/orders/v2"} {
		p := p
		rt.add(p, p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, p) }))
	}
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
		rt.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Body.String() != tt.want {
			t.Errorf("%s -> %q, want %q", tt.path, rec.Body, tt.want)
		}
	}

	only := &router{}
	only.add("orders", "/soap/orders", http.NotFoundHandler())
	for _, tt := range []struct {
		path   string
		status int
	}{{"/soap/ordersX", 404}, {"/other", 404}, {"/soap/orders/../admin", 400}, {"/soap//orders", 400}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = tt.path
		only.ServeHTTP(rec, req)
		if rec.Code != tt.status || !strings.Contains(rec.Body.String(), `"request_id"`) {
			t.Errorf("%s: %d %s, want %d", tt.path, rec.Code, rec.Body, tt.status)
		}
	}
}

func TestRouterRecoversPanics(t *testing.T) {
	rt := &router{logger: slog.New(slog.DiscardHandler)}
	rt.add("boom", "/", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d", rec.Code)
	}
}
