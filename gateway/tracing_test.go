package gateway

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"wsgate/internal/testclock"
)

// otlpReceiver is an OTLP/HTTP trace receiver in the test process: it
// decodes what the exporter posts to /v1/traces.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rcv := &otlpReceiver{}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || err != nil ||
			proto.Unmarshal(body, &req) != nil {
			t.Errorf("OTLP receiver: bad export %s %s (%v)", r.URL.Path, r.Header.Get("Content-Type"), err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rcv.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				rcv.spans = append(rcv.spans, ss.Spans...)
			}
		}
		rcv.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(rcv.Close)
	return rcv
}

func (rcv *otlpReceiver) received() []*tracepb.Span {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]*tracepb.Span(nil), rcv.spans...)
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return attrString(kv.Value)
		}
	}
	return ""
}

func attrString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	default:
		return v.String()
	}
}

// Tracing continues the client's traceparent to the upstream and exports,
// per request, the server span, the upstream call and the WS-Security
// verification or token validation, with route and outcome attributes and
// never the token, a header value or the body.
func TestTracingOTLP(t *testing.T) {
	rcv := newOTLPReceiver(t)
	up := newBodyUpstream(t)
	dir := t.TempDir()
	hmacKey := []byte("0123456789abcdef0123456789abcdef")
	writeSecretJSON(t, dir, "wsgate/trust/partners", map[string]string{"certificates": readTestdata(t, "testdata", "pki", "trust.pem")})
	writeSecretJSON(t, dir, "wsgate/jwks/hmac", map[string]string{"secret": base64.StdEncoding.EncodeToString(hmacKey)})
	clk := testclock.New(goldenAt)
	g := newTestGateway(t, dir, `
log: {level: info}
secrets: {backend: file, file: {dir: secrets}}
tracing: {otlp_endpoint: "`+rcv.URL+`", sample_ratio: 1}
routes:
  - {name: orders, path_prefix: /soap/orders, upstream: "`+up.URL+`", soap: {trust: wsgate/trust/partners}}
  - {name: open, path_prefix: /open, upstream: "`+up.URL+`", public: true}
  - name: api
    path_prefix: /api
    upstream: "`+up.URL+`"
    oauth: {issuer: "`+testIssuer+`", audience: [`+testAudience+`], jwks_secret: wsgate/jwks/hmac, algorithms: [HS256]}
`, clk, &syncBuffer{})
	if err := g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if g.tp == nil {
		t.Fatal("tracing configured but no tracer provider")
	}
	token := mintJWT(t, jose.HS256, hmacKey, "", clk, nil)
	soapBody := readTestdata(t, "testdata", "wssec", "valid-soap11-rsa.xml")

	const clientSpan = "00f067aa0ba902b7"
	cases := []struct {
		name, traceID string
		req           func() *http.Request
		route         string
		status        int
		outcome       string
		inner         string // the verification / validation span, if any
	}{
		{"public", "4bf92f3577b34da6a3ce929d0e0e4736", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "/open/x", nil)
		}, "open", http.StatusOK, "forwarded", ""},
		{"soap", "5bf92f3577b34da6a3ce929d0e0e4737", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/soap/orders", strings.NewReader(soapBody))
			r.Header.Set("Content-Type", "text/xml; charset=utf-8")
			return r
		}, "orders", http.StatusOK, "accepted", "wssec.verify"},
		{"rest", "6bf92f3577b34da6a3ce929d0e0e4738", func() *http.Request {
			return bearerGet("/api/items", token)
		}, "api", http.StatusOK, "accepted", "oauth.validate"},
		{"rest rejected", "7bf92f3577b34da6a3ce929d0e0e4739", func() *http.Request {
			return bearerGet("/api/items", token+"x")
		}, "api", http.StatusUnauthorized, "rejected", "oauth.validate"},
	}
	for _, tc := range cases {
		before := up.hits.Load()
		r := tc.req()
		r.Header.Set("Traceparent", "00-"+tc.traceID+"-"+clientSpan+"-01")
		w := serveReq(g, r)
		if w.Code != tc.status {
			t.Fatalf("%s: status %d, want %d: %s", tc.name, w.Code, tc.status, w.Body)
		}
		forwarded := up.hits.Load() > before
		if forwarded != (tc.status == http.StatusOK) {
			t.Fatalf("%s: forwarded %v", tc.name, forwarded)
		}
		if forwarded {
			_, hdr := up.last()
			tp := strings.Split(hdr.Get("Traceparent"), "-")
			if len(tp) != 4 || tp[1] != tc.traceID || tp[2] == clientSpan {
				t.Errorf("%s: upstream traceparent %q, want trace %s continued by a gateway span", tc.name, hdr.Get("Traceparent"), tc.traceID)
			}
		}
	}
	if err := g.tp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.received()

	byTrace := map[string][]*tracepb.Span{}
	for _, s := range spans {
		id := hexID(s.TraceId)
		byTrace[id] = append(byTrace[id], s)
		for _, kv := range s.Attributes {
			v := attrString(kv.Value)
			if strings.Contains(v, token[:20]) || strings.Contains(v, "Envelope") || strings.Contains(v, "Bearer") ||
				strings.Contains(v, "upstream:") {
				t.Errorf("span %s attribute %s leaks %q", s.Name, kv.Key, v)
			}
		}
	}
	for _, tc := range cases {
		got := byTrace[tc.traceID]
		var server, upstream, inner *tracepb.Span
		for _, s := range got {
			switch {
			case s.Kind == tracepb.Span_SPAN_KIND_SERVER:
				server = s
			case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
				upstream = s
			case s.Name == tc.inner:
				inner = s
			}
		}
		if server == nil {
			t.Errorf("%s: no server span among %d", tc.name, len(got))
			continue
		}
		if hexID(server.ParentSpanId) != clientSpan {
			t.Errorf("%s: server span parent %s, want the client's %s", tc.name, hexID(server.ParentSpanId), clientSpan)
		}
		if spanAttr(server, "wsgate.route") != tc.route || spanAttr(server, "wsgate.outcome") != tc.outcome {
			t.Errorf("%s: server span route %q outcome %q, want %q %q", tc.name,
				spanAttr(server, "wsgate.route"), spanAttr(server, "wsgate.outcome"), tc.route, tc.outcome)
		}
		if (upstream != nil) != (tc.status == http.StatusOK) {
			t.Errorf("%s: upstream span %v, want one only when forwarded", tc.name, upstream != nil)
		} else if upstream != nil && (spanAttr(upstream, "wsgate.route") != tc.route || spanAttr(upstream, "wsgate.outcome") != "answered" ||
			string(upstream.ParentSpanId) != string(server.SpanId)) {
			t.Errorf("%s: upstream span %v", tc.name, upstream.Attributes)
		}
		if tc.inner == "" {
			continue
		}
		want := "verified"
		if tc.inner == "oauth.validate" {
			want = "valid"
		}
		if tc.status != http.StatusOK {
			want = "rejected"
		}
		if inner == nil || spanAttr(inner, "wsgate.route") != tc.route || spanAttr(inner, "wsgate.outcome") != want ||
			string(inner.ParentSpanId) != string(server.SpanId) {
			t.Errorf("%s: %s span %v, want route %s outcome %s under the server span", tc.name, tc.inner, inner, tc.route, want)
		}
	}
}

func hexID(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&0xf])
	}
	return string(out)
}
