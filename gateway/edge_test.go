package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"wsgate/internal/reqscope"
)

// edgeRoutes is opsRoutes plus routes that set identity headers of their
// own, and a top-level strip_request_headers.
const edgeRoutes = `
log: {level: info}
secrets: {backend: file, file: {dir: secrets}}
trusted_proxies: [10.0.0.0/8]
tls: {secret: wsgate/tls/listener, client_ca: wsgate/trust/partners}
strip_request_headers: [X-Internal-Token]
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
    oauth:
      issuer: "` + testIssuer + `"
      audience: [` + testAudience + `]
      jwks_secret: wsgate/jwks/hmac
      algorithms: [HS256]
      forward_claims: {sub: X-Auth-Subject, email: X-User-Email}
  - name: api-limited
    path_prefix: /api-limited
    upstream: "UPSTREAM"
    oauth: {issuer: "` + testIssuer + `", audience: [` + testAudience + `], jwks_secret: wsgate/jwks/hmac, algorithms: [HS256]}
    rate_limit: {per: client_ip, rate: 0.001, burst: 1}
  - {name: mtls, path_prefix: /mtls, upstream: "UPSTREAM", public: true, forward_client_cert: X-Client-Subject}
  - name: orders
    path_prefix: /soap/orders
    upstream: "UPSTREAM"
    soap:
      trust: wsgate/trust/partners
      saml: {trust: wsgate/trust/partners, audience: ["urn:orders"], forward_attributes: {role: X-Saml-Role}}
  - name: orders-limited
    path_prefix: /soap/limited
    upstream: "UPSTREAM"
    soap: {trust: wsgate/trust/partners}
    rate_limit: {per: route, rate: 0.001, burst: 1}
`

// forgedIdentity is every spelling of an identity header a client may try.
var forgedIdentity = map[string]string{
	"X-Auth-Subject":   "admin", // forward_claims of /api, and the built-in family
	"x-auth-subject":   "admin",
	"X_Auth_Subject":   "admin", // CGI-style servers fold _ into -
	"X-AUTH-SCOPES":    "admin", // built-in X-Auth-* though no route sets it
	"X-Auth-Client":    "admin",
	"x-user-email":     "root@example.com", // forward_claims of /api, reached through /pub
	"X-Client-Subject": "CN=admin",         // forward_client_cert of /mtls
	"x_client_subject": "CN=admin",
	"x-saml-role":      "admin",  // soap.saml.forward_attributes of /soap/orders
	"X-Internal-Token": "secret", // strip_request_headers
	"x-internal-token": "secret",
}

// Identity headers are the gateway's alone: on every route, public ones
// included, client-sent copies of every header any route sets from a
// verified identity, the X-Auth-* family and strip_request_headers are
// removed in any spelling; Connection cannot name them back in, nor delete
// the gateway's own X-Request-ID.
func TestIdentityHeadersAreTheGatewaysAlone(t *testing.T) {
	o := newOpsGateway(t, edgeRoutes)
	if err := o.g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	good := mintJWT(t, jose.HS256, o.hmac, "", o.clk, map[string]any{"email": "alice@example.com"})
	for _, tt := range []struct {
		name, path, token string
		connection        string
		want              map[string]string // headers the upstream must see, exactly
	}{
		{"public", "/pub/x", "", "", nil},
		{"public, Connection names them", "/pub/x", "", "X-Auth-Subject, X-Request-ID, X-User-Email", nil},
		{"mtls route without a certificate", "/mtls/x", "", "", nil},
		{"oauth route", "/api/x", good, "", map[string]string{"X-Auth-Subject": "alice", "X-User-Email": "alice@example.com"}},
		{"oauth route, Connection names them", "/api/x", good, "X-Auth-Subject, X-User-Email, X-Request-ID",
			map[string]string{"X-Auth-Subject": "alice", "X-User-Email": "alice@example.com"}},
	} {
		r := httptest.NewRequest(http.MethodGet, tt.path, nil)
		for k, v := range forgedIdentity {
			r.Header[k] = []string{v}
		}
		if tt.token != "" {
			r.Header.Set("Authorization", "Bearer "+tt.token)
		}
		if tt.connection != "" {
			r.Header.Set("Connection", tt.connection)
		}
		before := o.up.hits.Load()
		w := o.do(r)
		if w.Code != http.StatusOK || o.up.hits.Load() != before+1 {
			t.Fatalf("%s: %d %s", tt.name, w.Code, w.Body)
		}
		got := o.up.header()
		for k := range forgedIdentity {
			key := headerKey(k)
			if want, ok := tt.want[key]; ok {
				if v := got.Values(key); len(v) != 1 || v[0] != want {
					t.Errorf("%s: upstream %s = %q, want only %q", tt.name, key, v, want)
				}
				continue
			}
			for gk, gv := range got {
				if headerKey(gk) == key {
					t.Errorf("%s: upstream received %s: %q", tt.name, gk, gv)
				}
			}
		}
		if id := w.Header().Get(reqscope.Header); id == "" || got.Get(reqscope.Header) != id {
			t.Errorf("%s: upstream request ID %q, response %q", tt.name, got.Get(reqscope.Header), id)
		}
	}
}

// The client IP is computed once: a per client_ip limit and the access log
// name the same client, behind a trusted proxy that also sends X-Real-IP
// (never believed: X-Forwarded-For is).
func TestClientIPIsComputedOnce(t *testing.T) {
	o := newOpsGateway(t, edgeRoutes)
	if err := o.g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	good := mintJWT(t, jose.HS256, o.hmac, "", o.clk, nil)
	for _, path := range []string{"/limited/x", "/api-limited/x"} {
		send := func(xff, realIP string) int {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			r.RemoteAddr = "10.1.2.3:4000"
			r.Header.Set("X-Forwarded-For", xff)
			r.Header.Set("X-Real-IP", realIP)
			r.Header.Set("Authorization", "Bearer "+good)
			return o.do(r).Code
		}
		before := o.up.hits.Load()
		if code := send("198.51.100.7", "203.0.113.1"); code != http.StatusOK {
			t.Fatalf("%s first: %d", path, code)
		}
		// The same client behind another X-Real-IP is still limited ...
		if code := send("198.51.100.7", "203.0.113.2"); code != http.StatusTooManyRequests {
			t.Errorf("%s: same X-Forwarded-For client, new X-Real-IP: %d, want 429", path, code)
		}
		// ... and another client with the first one's X-Real-IP is not.
		if code := send("198.51.100.8", "203.0.113.1"); code != http.StatusOK {
			t.Errorf("%s: new X-Forwarded-For client, old X-Real-IP: %d, want 200", path, code)
		}
		if n := o.up.hits.Load() - before; n != 2 {
			t.Errorf("%s: upstream got %d requests, want 2 (the 429 reached it)", path, n)
		}
		if v := o.up.header().Get("X-Real-IP"); v != "" {
			t.Errorf("%s: upstream got X-Real-IP %q", path, v)
		}
	}
	// A trusted proxy sending X-Real-IP alone is the client itself.
	realOnly := func(realIP string) int {
		r := httptest.NewRequest(http.MethodGet, "/limited/y", nil)
		r.RemoteAddr = "10.9.9.9:4000"
		r.Header.Set("X-Real-IP", realIP)
		return o.do(r).Code
	}
	if a, b := realOnly("203.0.113.5"), realOnly("203.0.113.6"); a != http.StatusOK || b != http.StatusTooManyRequests {
		t.Errorf("X-Real-IP alone: %d then %d, want 200 then 429 (one client: the proxy)", a, b)
	}
	var ips []string
	for _, rec := range logRecords(o.logs, "access") {
		ips = append(ips, rec["client_ip"].(string))
	}
	if strings.Join(ips, " ") != "198.51.100.7 198.51.100.7 198.51.100.8 198.51.100.7 198.51.100.7 198.51.100.8 10.9.9.9 10.9.9.9" {
		t.Errorf("access log client IPs %v", ips)
	}
}

// An upgrade (h2c, WebSocket) is never relayed: the upstream sees neither
// Upgrade, HTTP2-Settings nor Connection, and answers the plain request.
func TestUpgradeIsNotRelayed(t *testing.T) {
	o := newOpsGateway(t, edgeRoutes)
	if err := o.g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	good := mintJWT(t, jose.HS256, o.hmac, "", o.clk, nil)
	for _, h := range []map[string]string{
		{"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"},
		{"Connection": "upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
	} {
		for _, path := range []string{"/pub/x", "/api/x"} {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			for k, v := range h {
				r.Header.Set(k, v)
			}
			r.Header.Set("Authorization", "Bearer "+good)
			w := o.do(r)
			got := o.up.header()
			if w.Code != http.StatusOK || got.Get("Upgrade") != "" || got.Get("Http2-Settings") != "" || got.Get("Connection") != "" {
				t.Errorf("%s %s: %d, upstream saw Upgrade %q HTTP2-Settings %q Connection %q", path, h["Upgrade"], w.Code,
					got.Get("Upgrade"), got.Get("Http2-Settings"), got.Get("Connection"))
			}
		}
	}
}

// The gateway's own answers speak the route's protocol: a rate-limited SOAP
// request gets a SOAP Fault with 429 and Retry-After, an oversized public
// one JSON 413, an unknown path JSON 404; none reaches the upstream.
func TestGatewayAnswersSpeakTheRouteProtocol(t *testing.T) {
	o := newOpsGateway(t, edgeRoutes)
	if err := o.g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	soapPost := func(path string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader("<x/>"))
		r.Header.Set("Content-Type", "text/xml; charset=utf-8")
		return r
	}
	_ = o.do(soapPost("/soap/limited")) // takes the bucket's one token (refused by the edge)
	big := httptest.NewRequest(http.MethodPost, "/pub/x", strings.NewReader("x"))
	big.ContentLength = 1 << 40
	for _, tt := range []struct {
		name        string
		req         *http.Request
		status      int
		contentType string
		body        string
	}{
		{"soap 429", soapPost("/soap/limited"), http.StatusTooManyRequests, "text/xml", "Fault"},
		{"public 413", big, http.StatusRequestEntityTooLarge, "application/json", `"request_too_large"`},
		{"no route 404", httptest.NewRequest(http.MethodGet, "/nowhere", nil), http.StatusNotFound, "application/json", `"not_found"`},
		{"soap path not canonical", soapPost("/soap/orders/../x"), http.StatusBadRequest, "text/xml", "Fault"},
	} {
		before := o.up.hits.Load()
		w := o.do(tt.req)
		if w.Code != tt.status || !strings.HasPrefix(w.Header().Get("Content-Type"), tt.contentType) ||
			!strings.Contains(w.Body.String(), tt.body) || !strings.Contains(w.Body.String(), w.Header().Get(reqscope.Header)) {
			t.Errorf("%s: %d %s %s", tt.name, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		if tt.status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", tt.name)
		}
		if o.up.hits.Load() != before {
			t.Errorf("%s reached the upstream", tt.name)
		}
	}
}

// Every refusal is logged at WARN, a gateway failure at ERROR, with the
// same attributes on every protocol; duration is in seconds.
func TestAccessLogLevelsAndAttributes(t *testing.T) {
	o := newOpsGateway(t, edgeRoutes) // secrets not loaded: the soap route answers 503
	good := mintJWT(t, jose.HS256, o.hmac, "", o.clk, nil)
	soapPost := httptest.NewRequest(http.MethodPost, "/soap/orders", strings.NewReader("<x/>"))
	soapPost.Header.Set("Content-Type", "text/xml; charset=utf-8")
	steps := []struct {
		req     *http.Request
		level   string
		outcome reqscope.Outcome
	}{
		{httptest.NewRequest(http.MethodGet, "/pub/x", nil), "INFO", reqscope.Forwarded},
		{httptest.NewRequest(http.MethodGet, "/nowhere", nil), "WARN", reqscope.Invalid},
		{httptest.NewRequest(http.MethodGet, "/api/x", nil), "WARN", reqscope.Rejected},
		{httptest.NewRequest(http.MethodGet, "/limited/x", nil), "INFO", reqscope.Forwarded},
		{httptest.NewRequest(http.MethodGet, "/limited/x", nil), "WARN", reqscope.RateLimited},
		{bearerGet("/api/x", good), "ERROR", reqscope.Unavailable}, // key secret never loaded
	}
	for _, s := range steps {
		o.do(s.req)
	}
	if err := o.g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	o.do(soapPost)
	steps = append(steps, struct {
		req     *http.Request
		level   string
		outcome reqscope.Outcome
	}{soapPost, "WARN", reqscope.Rejected})
	recs := logRecords(o.logs, "access")
	if len(recs) != len(steps) {
		t.Fatalf("%d access records, want %d", len(recs), len(steps))
	}
	for i, s := range steps {
		rec := recs[i]
		if rec["level"] != s.level || rec["outcome"] != string(s.outcome) {
			t.Errorf("%s %s: level %v outcome %v, want %s %s", s.req.Method, s.req.URL.Path, rec["level"], rec["outcome"], s.level, s.outcome)
		}
		for _, k := range []string{"request_id", "client_ip", "method", "path", "route", "protocol", "outcome", "reason", "status", "bytes", "duration_seconds"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("%s: access record lacks %s: %v", s.req.URL.Path, k, rec)
			}
		}
		if d, ok := rec["duration_seconds"].(float64); !ok || d < 0 || d > 60 {
			t.Errorf("%s: duration_seconds %v", s.req.URL.Path, rec["duration_seconds"])
		}
	}
}

// /metrics carries the Go runtime and process collectors and wsgate_build_info.
func TestMetricsRuntimeAndBuildInfo(t *testing.T) {
	o := newOpsGateway(t, edgeRoutes)
	w := httptest.NewRecorder()
	o.admin.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{"\ngo_goroutines ", "\ngo_memstats_heap_alloc_bytes ", "\nprocess_resident_memory_bytes ",
		"\nwsgate_build_info{goversion=\"go"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}

// A request with both Content-Length and Transfer-Encoding is answered with
// 400 and its connection closed (RFC 9112 section 6.1), seen from a raw TCP
// client; it never reaches the upstream. A plain chunked request keeps its
// connection.
func TestAmbiguousFramingClosesTheConnection(t *testing.T) {
	dir := t.TempDir()
	up := newRecordingUpstream(t)
	g := newTestGateway(t, dir, `
listen: 127.0.0.1:0
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: pub, path_prefix: /pub, upstream: "`+up.URL+`", public: true}
`, testclockNow(), &syncBuffer{})
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, func(a string) { ready <- a }) }()
	t.Cleanup(func() { cancel(); <-done })
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	exchange := func(t *testing.T, reqs ...string) (*net.TCPConn, *bufio.Reader, []*http.Response) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		var out []*http.Response
		for _, req := range reqs {
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			out = append(out, res)
		}
		return c.(*net.TCPConn), br, out
	}
	const chunked = "POST /pub/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	for _, tt := range []struct{ name, head string }{
		{"Content-Length first", "POST /pub/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"Transfer-Encoding first", "POST /pub/x HTTP/1.1\r\nHost: gw\r\ntransfer-encoding: chunked\r\ncontent-length: 40\r\n\r\n"},
		{"after a good request", chunked + "POST /pub/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := up.hits.Load()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tt.head+"0\r\n\r\n"+"GET /pub/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			var last *http.Response
			for {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				last = res
				if res.StatusCode != http.StatusOK {
					break
				}
			}
			if last == nil || last.StatusCode != http.StatusBadRequest {
				t.Fatalf("last response %v, want 400", last)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("the connection stayed open after the 400: %v", err)
			}
			wantHits := before
			if strings.HasPrefix(tt.head, chunked) {
				wantHits++
			}
			if up.hits.Load() != wantHits || strings.Contains(up.lastPath(), "smuggled") {
				t.Errorf("upstream hits %d, want %d (last %s)", up.hits.Load(), wantHits, up.lastPath())
			}
		})
	}
	t.Run("plain chunked keeps the connection", func(t *testing.T) {
		_, _, res := exchange(t, chunked, chunked)
		if res[0].StatusCode != http.StatusOK || res[1].StatusCode != http.StatusOK || res[1].Close {
			t.Errorf("statuses %d %d close %v", res[0].StatusCode, res[1].StatusCode, res[1].Close)
		}
	})
}
