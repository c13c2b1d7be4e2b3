package rest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"wsgate/internal/reqscope"
	"wsgate/oauth"
	"wsgate/proxy"
	"wsgate/rest"
)

// readOnly accepts the token "ro" for alice with billing.read only.
type readOnly struct{}

func (readOnly) Validate(_ context.Context, raw string) (*oauth.Token, error) {
	if raw != "ro" {
		return nil, oauth.ErrInvalidSignature
	}
	return &oauth.Token{Subject: "alice", Scopes: []string{"billing.read"}, Claims: map[string]any{"sub": "alice"}}, nil
}

// gateway mounts rest in front of the real proxy on one gin router, with a
// front door that sets the request scope, as the gateway does.
func gateway(t *testing.T, upstream string) *httptest.Server {
	t.Helper()
	p, err := proxy.New(proxy.Options{Upstream: upstream, StripPrefix: "/api", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	scopes, err := oauth.NewScopePolicy([]oauth.ScopeRule{
		{Methods: []string{"GET"}, Path: "/**", AnyOf: []string{"billing.read"}},
		{Methods: []string{"POST", "PUT", "PATCH", "DELETE"}, Path: "/**", AnyOf: []string{"billing.write"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := rest.New(rest.Options{Route: "billing", PathPrefix: "/api", Validator: readOnly{}, Scopes: scopes,
		ForwardClaims: map[string]string{"sub": "X-Auth-Subject"}, Upstream: p})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(func(c *gin.Context) {
		id := reqscope.NewID()
		c.Request.Header.Set(reqscope.Header, id)
		c.Request = c.Request.WithContext(reqscope.With(c.Request.Context(), reqscope.New(id, "192.0.2.1")))
		c.Writer.Header().Set(reqscope.Header, id)
	})
	e.Any("/api/*rest", gin.WrapH(h))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

// TestConnectionThroughProxy (issue 12, item 6e): "Connection: X-Request-ID"
// (or naming the identity headers) does not remove the gateway's request
// ID or the verified identity on the way upstream.
func TestConnectionThroughProxy(t *testing.T) {
	var got atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Clone())
	}))
	defer up.Close()
	gw := gateway(t, up.URL)
	for _, conn := range []string{"X-Request-ID", "X-Auth-Subject, x-request-id", "keep-alive, X-Request-Id, X-Forwarded-For"} {
		req, _ := http.NewRequest("GET", gw.URL+"/api/invoices", nil)
		req.Header.Set("Authorization", "Bearer ro")
		req.Header.Set("Connection", conn)
		req.Header.Set("X-Auth-Subject", "mallory")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		id := res.Header.Get("X-Request-ID")
		if res.StatusCode != 200 || id == "" {
			t.Fatalf("Connection: %s: status %d, X-Request-ID %q", conn, res.StatusCode, id)
		}
		h := got.Load().(http.Header)
		if v := h.Values("X-Request-Id"); len(v) != 1 || v[0] != id {
			t.Errorf("Connection: %s: upstream X-Request-ID %q, want [%s]", conn, v, id)
		}
		if v := h.Values("X-Auth-Subject"); len(v) != 1 || v[0] != "alice" {
			t.Errorf("Connection: %s: upstream X-Auth-Subject %q, want [alice]", conn, v)
		}
		if v := h.Values("X-Forwarded-For"); len(v) != 1 || v[0] != "127.0.0.1" {
			t.Errorf("Connection: %s: upstream X-Forwarded-For %q", conn, v)
		}
	}
}

// TestUpgradeThroughProxy (issue 12, item 6a): a read-only token's
// "Upgrade: h2c" (or websocket) request never reaches the upstream as an
// upgrade, and an upstream that switches protocols anyway gets the client
// a 502 JSON answer, never a 101 or a raw tunnel.
func TestUpgradeThroughProxy(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nRAW-TUNNEL")
		buf.Flush()
		time.Sleep(50 * time.Millisecond)
	}))
	defer up.Close()
	gw := gateway(t, up.URL)
	for _, hdr := range []string{
		"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, "GET /api/invoices HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ro\r\n"+hdr+"\r\n")
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		conn.Close()
		var eb rest.ErrorBody
		if res.StatusCode != http.StatusBadGateway || json.Unmarshal(body, &eb) != nil || eb.Error != "bad_gateway" ||
			strings.Contains(string(body), "RAW-TUNNEL") {
			t.Errorf("status %d body %q, want the 502 JSON body", res.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("upstream saw %d requests", len(seen))
	}
	for _, h := range seen {
		for _, name := range []string{"Upgrade", "Connection", "Http2-Settings"} {
			if v := h.Values(name); len(v) != 0 {
				t.Errorf("upstream got %s: %q", name, v)
			}
		}
	}
}
