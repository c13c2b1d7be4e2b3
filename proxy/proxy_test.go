package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// seen is what the upstream received.
type seen struct {
	Path, RawPath, Query, Host string
	Header                     http.Header
}

func upstream(t *testing.T) (*httptest.Server, chan seen) {
	t.Helper()
	ch := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- seen{r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Header.Clone()}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "<ok/>")
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func serve(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

func TestRewrite(t *testing.T) {
	up, ch := upstream(t)
	tests := []struct {
		name      string
		upPath    string
		prefix    string
		reqPath   string
		wantPath  string
		wantQuery string
	}{
		{"sub path", "/ws/orders", "/soap/orders", "/soap/orders/x", "/ws/orders/x", ""},
		{"exact prefix", "/ws/orders", "/soap/orders", "/soap/orders", "/ws/orders", ""},
		{"trailing slash kept", "/ws/orders", "/soap/orders", "/soap/orders/", "/ws/orders/", ""},
		{"upstream root", "", "/api/billing", "/api/billing/v1/items", "/v1/items", ""},
		{"upstream root exact", "", "/api/billing", "/api/billing", "/", ""},
		{"no strip", "/base", "", "/a/b", "/base/a/b", ""},
		{"query joined", "/ws?tenant=1", "/soap", "/soap/x?a=b", "/ws/x", "tenant=1&a=b"},
		{"query request only", "/ws", "/soap", "/soap?wsdl", "/ws", "wsdl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			front := serve(t, Options{Upstream: up.URL + tt.upPath, StripPrefix: tt.prefix})
			res, err := http.Get(front.URL + tt.reqPath)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusTeapot || string(body) != "<ok/>" || res.Header.Get("Content-Type") != "text/xml" {
				t.Errorf("response %d %q %q not passed through", res.StatusCode, body, res.Header.Get("Content-Type"))
			}
			got := <-ch
			if got.Path != tt.wantPath || got.Query != tt.wantQuery {
				t.Errorf("upstream saw path %q query %q, want %q %q", got.Path, got.Query, tt.wantPath, tt.wantQuery)
			}
			if got.Host != strings.TrimPrefix(up.URL, "http://") {
				t.Errorf("Host = %q, want the upstream's", got.Host)
			}
		})
	}
}

func TestEscapedPathKept(t *testing.T) {
	up, ch := upstream(t)
	front := serve(t, Options{Upstream: up.URL + "/ws", StripPrefix: "/soap"})
	res, err := http.Get(front.URL + "/soap/a%2Fb")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	got := <-ch
	if got.RawPath != "/ws/a%2Fb" {
		t.Errorf("RawPath = %q, want /ws/a%%2Fb", got.RawPath)
	}
}

func TestBadPathRefused(t *testing.T) {
	up, ch := upstream(t)
	front := serve(t, Options{Upstream: up.URL + "/ws", StripPrefix: "/soap/orders"})
	for _, p := range []string{"/soap/ordersX", "/other", "/soap/orders/../admin", "/soap/orders/%2e%2e/admin", "/soap/orders/./x"} {
		req, _ := http.NewRequest("GET", front.URL, nil)
		req.URL.Opaque = p // send the path as written, no client-side cleaning
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", p, res.StatusCode)
		}
	}
	select {
	case s := <-ch:
		t.Errorf("upstream reached with path %q", s.Path)
	default:
	}
}

func TestForwardedHeaders(t *testing.T) {
	up, ch := upstream(t)
	front := serve(t, Options{Upstream: up.URL, StripPrefix: "/p"})
	req, _ := http.NewRequest("GET", front.URL+"/p/x", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Host", "evil")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("X-Real-IP", "6.6.6.6")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	got := <-ch
	if xff := got.Header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want [127.0.0.1]", xff)
	}
	if h := got.Header.Get("X-Forwarded-Host"); h != strings.TrimPrefix(front.URL, "http://") {
		t.Errorf("X-Forwarded-Host = %q", h)
	}
	if p := got.Header.Get("X-Forwarded-Proto"); p != "http" {
		t.Errorf("X-Forwarded-Proto = %q", p)
	}
	for _, h := range []string{"Forwarded", "X-Real-Ip"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("client-sent %s forwarded: %q", h, v)
		}
	}
}

func TestHopByHop(t *testing.T) {
	var upHeader http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upHeader = r.Header.Clone()
		w.Header().Set("Connection", "X-Up-Secret")
		w.Header().Set("X-Up-Secret", "internal")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Kept", "yes")
	}))
	defer up.Close()
	front := serve(t, Options{Upstream: up.URL})
	req, _ := http.NewRequest("GET", front.URL+"/x", nil)
	req.Header.Set("Connection", "X-Foo")
	req.Header.Set("X-Foo", "bar")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("X-Other", "kept")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, h := range []string{"X-Foo", "Proxy-Authorization"} {
		if v := upHeader.Get(h); v != "" {
			t.Errorf("hop-by-hop %s reached the upstream: %q", h, v)
		}
	}
	if upHeader.Get("X-Other") != "kept" {
		t.Error("end-to-end header dropped")
	}
	if v := res.Header.Get("X-Up-Secret"); v != "" {
		t.Errorf("upstream hop-by-hop header reached the client: %q", v)
	}
	if res.Header.Get("Keep-Alive") != "" || res.Header.Get("X-Kept") != "yes" {
		t.Errorf("response headers wrong: %v", res.Header)
	}
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	RequestID   string `json:"request_id"`
}

func getError(t *testing.T, url, reqID string) (int, errorBody, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader("<Envelope/>"))
	req.Header.Set("X-Request-ID", reqID)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var b errorBody
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("body %q is not JSON: %v", raw, err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	return res.StatusCode, b, string(raw)
}

func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	front := serve(t, Options{Upstream: "http://" + addr + "/ws", Logger: logger, Timeout: 5 * time.Second})
	status, body, raw := getError(t, front.URL+"/x", "req-123")
	if status != http.StatusBadGateway || body.Error != "bad_gateway" || body.RequestID != "req-123" {
		t.Errorf("got %d %+v", status, body)
	}
	if strings.Contains(raw, addr) || strings.Contains(raw, "refused") {
		t.Errorf("body reveals internals: %s", raw)
	}
	if !strings.Contains(logs.String(), `"request_id":"req-123"`) || !strings.Contains(logs.String(), "refused") {
		t.Errorf("log lacks request id or cause: %s", logs.String())
	}
}

func TestUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(release)

	for _, custom := range []bool{false, true} {
		var rt http.RoundTripper
		if custom {
			rt = &http.Transport{}
		}
		var logs bytes.Buffer
		front := serve(t, Options{Upstream: up.URL, Timeout: 50 * time.Millisecond, Transport: rt,
			Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		start := time.Now()
		status, body, _ := getError(t, front.URL, "req-9")
		if status != http.StatusGatewayTimeout || body.Error != "upstream_timeout" || body.RequestID != "req-9" {
			t.Errorf("custom transport %v: got %d %+v", custom, status, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("timeout took %v", d)
		}
		if !strings.Contains(logs.String(), "req-9") {
			t.Errorf("log lacks request id: %s", logs.String())
		}
	}
}

func TestSlowBodyNotCutByTimeout(t *testing.T) {
	// The timeout covers the wait for headers, not a streaming body.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(150 * time.Millisecond)
		io.WriteString(w, "late")
	}))
	defer up.Close()
	front := serve(t, Options{Upstream: up.URL, Timeout: 50 * time.Millisecond})
	res, err := http.Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(b) != "late" {
		t.Errorf("got %d %q", res.StatusCode, b)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Upstream: ""},
		{Upstream: "/relative"},
		{Upstream: "ftp://h/x"},
		{Upstream: "http://user:pw@h/x"},
		{Upstream: "http://h/x#frag"},
		{Upstream: "http://h", StripPrefix: "noslash"},
		{Upstream: "http://h", StripPrefix: "/trailing/"},
	} {
		if p, err := New(o); err == nil || p != nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestBadPathSentinel(t *testing.T) {
	g := &guardTransport{next: http.DefaultTransport}
	req := httptest.NewRequest("GET", "http://x/", nil)
	req = req.WithContext(context.WithValue(req.Context(), badPathKey{}, true))
	if _, err := g.RoundTrip(req); !errors.Is(err, ErrBadPath) {
		t.Errorf("err = %v, want ErrBadPath", err)
	}
}
