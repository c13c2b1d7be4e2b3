package proxy

import (
	"bufio"
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
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wsgate/internal/reqscope"
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
	for _, h := range []string{"Proxy-Authorization", "Connection"} {
		if v := upHeader.Get(h); v != "" {
			t.Errorf("hop-by-hop %s reached the upstream: %q", h, v)
		}
	}
	// The front door drops what a client names in Connection on entry, so
	// what is left is the gateway's to forward: Connection removes nothing.
	if upHeader.Get("X-Other") != "kept" || upHeader.Get("X-Foo") != "bar" {
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

// gatewayFront stands in for the gateway in front of the proxy: like the
// front door and the rest edge, it sets its own request ID and an identity
// header on the inbound request before the proxy runs.
func gatewayFront(t *testing.T, p http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("X-Request-ID", "gw-1")
		r.Header.Set("X-Auth-Subject", "alice")
		r = r.WithContext(reqscope.With(r.Context(), reqscope.New("gw-1", "192.0.2.1")))
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestConnectionCannotRemoveGatewayHeaders: a client naming the gateway's
// own headers in Connection must not have the proxy drop them as
// hop-by-hop (the front door removes the client's own Connection-named
// headers on entry; whatever is left was set or kept by the gateway).
func TestConnectionCannotRemoveGatewayHeaders(t *testing.T) {
	up, ch := upstream(t)
	p, err := New(Options{Upstream: up.URL})
	if err != nil {
		t.Fatal(err)
	}
	front := gatewayFront(t, p)
	for _, conn := range []string{
		"X-Request-ID", "x-request-id, X-Auth-Subject", "close, X-Auth-Subject, X-Request-Id",
		"X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto",
	} {
		req, _ := http.NewRequest("GET", front.URL+"/x", nil)
		req.Header.Set("Connection", conn)
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got := <-ch
		if v := got.Header.Values("X-Request-Id"); len(v) != 1 || v[0] != "gw-1" {
			t.Errorf("Connection: %s: upstream X-Request-ID = %q, want [gw-1]", conn, v)
		}
		if v := got.Header.Values("X-Auth-Subject"); len(v) != 1 || v[0] != "alice" {
			t.Errorf("Connection: %s: upstream X-Auth-Subject = %q, want [alice]", conn, v)
		}
		if v := got.Header.Values("X-Forwarded-For"); len(v) != 1 || v[0] != "127.0.0.1" {
			t.Errorf("Connection: %s: upstream X-Forwarded-For = %q, want [127.0.0.1]", conn, v)
		}
		if v := got.Header.Values("Connection"); len(v) != 0 {
			t.Errorf("Connection: %s: upstream Connection = %q", conn, v)
		}
	}
}

// switcher is an upstream that switches protocols whatever was asked.
func switcher(t *testing.T, hits *atomic.Int64, last *atomic.Value) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		last.Store(r.Header.Clone())
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nRAW-TUNNEL")
		buf.Flush()
		time.Sleep(100 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestUpgradeNeverRelayed: no route allows a protocol upgrade. Upgrade and
// HTTP2-Settings never reach the upstream, and an upstream that answers
// 101 anyway gets the client a 502, never a tunnel.
func TestUpgradeNeverRelayed(t *testing.T) {
	var hits atomic.Int64
	var last atomic.Value
	up := switcher(t, &hits, &last)
	var rendered []int
	var mu sync.Mutex
	p, err := New(Options{Upstream: up.URL, OnError: func(w http.ResponseWriter, r *http.Request, status int, err error) {
		mu.Lock()
		rendered = append(rendered, status)
		mu.Unlock()
		if !errors.Is(err, ErrUpgradeRefused) {
			t.Errorf("OnError err = %v, want ErrUpgradeRefused", err)
		}
		w.WriteHeader(status)
	}})
	if err != nil {
		t.Fatal(err)
	}
	front := gatewayFront(t, p)
	for _, h := range []map[string]string{
		{"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAAQCAAAAAAIAAAAA"},
		{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"},
		{"Connection": "keep-alive, upgrade", "Upgrade": "h2c"},
		{"Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAAQCAAAAAAIAAAAA"}, // no Connection: upgrade
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		var req strings.Builder
		req.WriteString("GET /x HTTP/1.1\r\nHost: gw\r\n")
		for k, v := range h {
			req.WriteString(k + ": " + v + "\r\n")
		}
		req.WriteString("\r\n")
		if _, err := io.WriteString(conn, req.String()); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		body, _ := io.ReadAll(res.Body)
		conn.Close()
		if res.StatusCode != http.StatusBadGateway || strings.Contains(string(body), "RAW-TUNNEL") {
			t.Errorf("%v: status %d body %q, want 502 and no tunnel", h, res.StatusCode, body)
		}
		got := last.Load().(http.Header)
		for _, name := range []string{"Upgrade", "Http2-Settings", "Connection"} {
			if v := got.Values(name); len(v) != 0 {
				t.Errorf("%v: upstream got %s: %q", h, name, v)
			}
		}
	}
	if hits.Load() != 4 || len(rendered) != 4 {
		t.Errorf("upstream hits %d, OnError calls %v", hits.Load(), rendered)
	}
}

// TestOnError: a route's renderer answers the proxy's own 400, 502 and 504,
// with the gateway's request ID; the cause still goes to the log.
func TestOnError(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release) // before Close: an unread body hides the client's going away
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name, upstream, path string
		status               int
		want                 error
	}{
		{"down", down, "/soap/x", http.StatusBadGateway, syscall.ECONNREFUSED},
		{"timeout", slow.URL, "/soap/x", http.StatusGatewayTimeout, ErrUpstreamTimeout},
		{"bad path", slow.URL, "/soap/../x", http.StatusBadRequest, ErrBadPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			p, err := New(Options{Upstream: tt.upstream, StripPrefix: "/soap", Timeout: 50 * time.Millisecond,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
				OnError: func(w http.ResponseWriter, r *http.Request, status int, err error) {
					if !errors.Is(err, tt.want) {
						t.Errorf("err = %v, want %v", err, tt.want)
					}
					w.Header().Set("Content-Type", "text/xml")
					w.WriteHeader(status)
					io.WriteString(w, "<Fault>"+reqscope.IDOf(r)+"</Fault>")
				}})
			if err != nil {
				t.Fatal(err)
			}
			front := gatewayFront(t, p)
			req, _ := http.NewRequest("POST", front.URL, strings.NewReader("<Envelope/>"))
			req.URL.Opaque = tt.path
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status || string(body) != "<Fault>gw-1</Fault>" || res.Header.Get("Content-Type") != "text/xml" {
				t.Errorf("got %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), body)
			}
			if !strings.Contains(logs.String(), `"request_id":"gw-1"`) || !strings.Contains(logs.String(), `"error":`) {
				t.Errorf("log lacks request ID or cause: %s", logs.String())
			}
		})
	}
}

// trackedBody records how a request body was used.
type trackedBody struct {
	r      io.Reader
	read   int
	closed bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *trackedBody) Close() error { b.closed = true; return nil }

var errClientGone = errors.New("client gone")

// A small body of known length is read into memory before it goes
// upstream (one write with the head); anything else streams untouched, and
// a read error comes back as it was.
func TestReadSmallBody(t *testing.T) {
	small := strings.Repeat("x", 5120)
	tests := []struct {
		name     string
		body     io.Reader
		length   int64
		header   string // an Expect value
		getBody  bool
		buffered bool
		wantErr  error
	}{
		{"5 KB", strings.NewReader(small), 5120, "", false, true, nil},
		{"at the bound", strings.NewReader(strings.Repeat("y", maxBufferedBody)), maxBufferedBody, "", false, true, nil},
		{"over the bound", strings.NewReader(strings.Repeat("y", maxBufferedBody+1)), maxBufferedBody + 1, "", false, false, nil},
		{"chunked", strings.NewReader(small), -1, "", false, false, nil},
		{"expect 100-continue", strings.NewReader(small), 5120, "100-continue", false, false, nil},
		{"replayable", strings.NewReader(small), 5120, "", true, true, nil},
		{"short body", strings.NewReader("abc"), 5120, "", false, true, io.ErrUnexpectedEOF},
		{"read error", io.MultiReader(strings.NewReader("abc"), iotest{errClientGone}), 5120, "", false, true, errClientGone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := &trackedBody{r: tc.body}
			req := httptest.NewRequest(http.MethodPost, "http://up.invalid/x", nil)
			req.Body, req.ContentLength = tb, tc.length
			if tc.header != "" {
				req.Header.Set("Expect", tc.header)
			}
			if tc.getBody {
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(small)), nil }
			}
			out, err := readSmallBody(req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if req.Body != io.ReadCloser(tb) {
				t.Error("the caller's request was changed")
			}
			if !tc.buffered {
				if out != req || tb.read != 0 || tb.closed {
					t.Errorf("streamed body touched: same request %v, read %d, closed %v", out == req, tb.read, tb.closed)
				}
				return
			}
			if !tb.closed {
				t.Error("the client's body was not closed")
			}
			if err != nil {
				return
			}
			got, _ := io.ReadAll(out.Body)
			if int64(len(got)) != tc.length || out.ContentLength != tc.length || int64(tb.read) != tc.length {
				t.Errorf("forwarded %d bytes, length %d, read %d; want %d", len(got), out.ContentLength, tb.read, tc.length)
			}
		})
	}
}

type iotest struct{ err error }

func (r iotest) Read([]byte) (int, error) { return 0, r.err }

// A buffered body reaches the upstream whole, through the proxy.
func TestSmallBodyForwarded(t *testing.T) {
	got := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	defer up.Close()
	front := serve(t, Options{Upstream: up.URL, Timeout: 5 * time.Second})
	for _, n := range []int{1, 5120, maxBufferedBody, maxBufferedBody + 1, 100 << 10} {
		body := strings.Repeat("z", n)
		res, err := http.Post(front.URL, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if s := <-got; res.StatusCode != http.StatusOK || s != body {
			t.Errorf("%d bytes: status %d, upstream got %d bytes", n, res.StatusCode, len(s))
		}
	}
}
