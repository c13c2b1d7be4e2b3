package bridge

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"wsgate/internal/reqscope"
	"wsgate/oauth"
	"wsgate/rest"
	"wsgate/wssec"
)

// TestBridgeIllTypedField (issue 12, item 7a): a JSON array or object where
// the template prints a value is the 400 for an ill-typed field, naming the
// action, and the SOAP upstream receives nothing: never a signed "[1000
// 2000]" or "map[...]" the client did not write.
func TestBridgeIllTypedField(t *testing.T) {
	up := &upstream{t: t, reply: soapReply(t, http.StatusOK, orderReply, false)}
	srv := httptest.NewServer(up)
	defer srv.Close()
	var logs bytes.Buffer
	h := newBridge(t, srv.URL, func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	for _, body := range []string{
		`{"orderId": ["1000", "2000"], "note": "x"}`,
		`{"orderId": {"a": 1}, "note": "x"}`,
		`{"orderId": 1, "note": [[]]}`,
		`{"orderId": 1, "note": {}}`,
	} {
		w := post(h, "/bridge/orders/get-order", "application/json", body)
		var eb rest.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || w.Code != 400 || eb.Error != "invalid_request" ||
			!strings.Contains(eb.Description, "{{") || eb.RequestID != "req-1" {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the SOAP upstream got %d requests", n)
	}
	if c := strings.Count(logs.String(), `"reason":"not_scalar"`); c != 4 {
		t.Errorf("%d not_scalar records:\n%s", c, logs.String())
	}
}

// TestBridgeVersionMismatch (issue 12, item 7b): a response in the other
// SOAP version than the route's, fault or not, or sent under the other
// version's content type, is a 502, never mapped to JSON.
func TestBridgeVersionMismatch(t *testing.T) {
	reply := func(ct, env string) func(http.ResponseWriter, *http.Request, *wssec.Verified) {
		return func(w http.ResponseWriter, _ *http.Request, _ *wssec.Verified) {
			w.Header().Set("Content-Type", ct)
			_, _ = io.WriteString(w, env)
		}
	}
	tests := []struct {
		name    string
		version wssec.SOAPVersion
		reply   func(http.ResponseWriter, *http.Request, *wssec.Verified)
		want    int
	}{
		{"1.2 answer to a 1.1 call", wssec.SOAP11, reply(ContentType12, env12(orderReply)), 502},
		{"1.2 answer as text/xml to a 1.1 call", wssec.SOAP11, reply(ContentType11, env12(orderReply)), 502},
		{"1.2 fault to a 1.1 call", wssec.SOAP11, reply(ContentType12, env12(strings.ReplaceAll(fault12, "env:", "e:"))), 502},
		{"1.1 answer to a 1.2 call", wssec.SOAP12, reply(ContentType11, env11(orderReply)), 502},
		{"1.1 fault to a 1.2 call", wssec.SOAP12, reply(ContentType11, env11(strings.ReplaceAll(fault11, "env:", "s:"))), 502},
		{"1.1 answer labelled soap+xml", wssec.SOAP11, reply(ContentType12, env11(orderReply)), 502},
		{"1.2 answer labelled text/xml", wssec.SOAP12, reply("text/xml", env12(orderReply)), 502},
		{"1.1 answer, 1.1 call", wssec.SOAP11, reply(ContentType11, env11(orderReply)), 200},
		{"1.1 answer as application/xml", wssec.SOAP11, reply("application/xml", env11(orderReply)), 200},
		{"1.2 answer, 1.2 call", wssec.SOAP12, reply(ContentType12, env12(orderReply)), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&upstream{t: t, reply: tt.reply})
			defer srv.Close()
			var logs bytes.Buffer
			h := newBridge(t, srv.URL, func(o *Options) {
				o.SOAPVersion = tt.version
				o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			})
			w := post(h, "/bridge/orders/get-order", "application/json", getOrder)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.want == 502 {
				var eb rest.ErrorBody
				if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error != "bad_gateway" ||
					strings.Contains(w.Body.String(), "shipped") || strings.Contains(w.Body.String(), "fault") {
					t.Errorf("body %s", w.Body)
				}
				if !strings.Contains(logs.String(), `"reason":"version_mismatch"`) {
					t.Errorf("log: %s", logs.String())
				}
			}
		})
	}
}

// TestBridgeResponseProcessingInstruction (issue 12, item 7c): a
// processing instruction in the response is refused (502), as the README's
// mapping table now says, not dropped.
func TestBridgeResponseProcessingInstruction(t *testing.T) {
	for _, env := range []string{
		env11(`<r><?evil x?>a</r>`),
		`<?xml-stylesheet href="x"?>` + env11(`<r>a</r>`),
		env11(`<r>a</r>`) + `<?pi?>`,
	} {
		srv := httptest.NewServer(&upstream{t: t, reply: func(w http.ResponseWriter, _ *http.Request, _ *wssec.Verified) {
			w.Header().Set("Content-Type", ContentType11)
			_, _ = io.WriteString(w, env)
		}})
		h := newBridge(t, srv.URL, nil)
		w := post(h, "/bridge/orders/get-order", "application/json", getOrder)
		srv.Close()
		if w.Code != 502 || strings.Contains(w.Body.String(), `"r"`) {
			t.Errorf("%s: %d %s", env, w.Code, w.Body)
		}
	}
}

// TestBridgeOutcomes (issue 12, item 8): the bridge's refusals are Rejected
// in the request's scope and logged at WARN, also behind the rest edge
// (which accepted the token first); upstream failures are Failed, the
// gateway's own Unavailable, both at ERROR; answers Accepted at INFO.
func TestBridgeOutcomes(t *testing.T) {
	tests := []struct {
		name, method, path, ct, body string
		mod                          func(*Options)
		reply                        func(http.ResponseWriter, *http.Request, *wssec.Verified)
		status                       int
		outcome                      reqscope.Outcome
		reason, level                string
	}{
		{name: "ok", status: 200, outcome: reqscope.Accepted, reason: "ok", level: "INFO"},
		{name: "fault", reply: soapReply(t, 500, fault11, false), status: 502, outcome: reqscope.Accepted, reason: "upstream_fault", level: "INFO"},
		{name: "invalid JSON", body: `{`, status: 400, outcome: reqscope.Rejected, reason: "invalid_json", level: "WARN"},
		{name: "missing field", body: `{}`, status: 400, outcome: reqscope.Rejected, reason: "missing_field", level: "WARN"},
		{name: "ill-typed field", body: `{"orderId":[1],"note":""}`, status: 400, outcome: reqscope.Rejected, reason: "not_scalar", level: "WARN"},
		{name: "unknown operation", path: "/bridge/orders/nope", status: 404, outcome: reqscope.Rejected, reason: "unknown_operation", level: "WARN"},
		{name: "GET", method: "GET", status: 405, outcome: reqscope.Rejected, reason: "method_not_allowed", level: "WARN"},
		{name: "form", ct: "application/x-www-form-urlencoded", status: 415, outcome: reqscope.Rejected, reason: "unsupported_media_type", level: "WARN"},
		{name: "too large", body: `{"orderId":"` + strings.Repeat("x", 5000) + `"}`, status: 413, outcome: reqscope.Rejected, reason: "body_too_large", level: "WARN"},
		{name: "upstream down", mod: func(o *Options) { o.Upstream = "http://127.0.0.1:1/ws" }, status: 502, outcome: reqscope.Failed, reason: "upstream_unavailable", level: "ERROR"},
		{name: "identity not loaded", mod: func(o *Options) { o.Identity = staticIdentity{} }, status: 503, outcome: reqscope.Unavailable, reason: "identity_unavailable", level: "ERROR"},
	}
	scopes, err := oauth.NewScopePolicy([]oauth.ScopeRule{{Methods: []string{"GET", "POST"}, Path: "/**", AnyOf: []string{"orders.write"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		for _, behindRest := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				reply := tt.reply
				if reply == nil {
					reply = soapReply(t, 200, orderReply, false)
				}
				up := &upstream{t: t, reply: reply}
				srv := httptest.NewServer(up)
				defer srv.Close()
				var logs bytes.Buffer
				var h http.Handler = newBridge(t, srv.URL, func(o *Options) {
					o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
					if tt.mod != nil {
						tt.mod(o)
					}
				})
				if behindRest {
					if h, err = rest.New(rest.Options{Route: "orders-bridge", PathPrefix: "/bridge/orders",
						Validator: fakeValidator{}, Scopes: scopes, Upstream: h}); err != nil {
						t.Fatal(err)
					}
				}
				method, path, ct, body := tt.method, tt.path, tt.ct, tt.body
				if method == "" {
					method = "POST"
				}
				if path == "" {
					path = "/bridge/orders/get-order"
				}
				if ct == "" {
					ct = "application/json"
				}
				if body == "" {
					body = getOrder
				}
				r := httptest.NewRequest(method, path, strings.NewReader(body))
				r.Header.Set("Content-Type", ct)
				r.Header.Set("Authorization", "Bearer good")
				sc := reqscope.New("req-1", "192.0.2.1")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r.WithContext(reqscope.With(r.Context(), sc)))
				if w.Code != tt.status {
					t.Fatalf("behind rest %v: status %d, want %d: %s", behindRest, w.Code, tt.status, w.Body)
				}
				if o, why := sc.Outcome(); o != tt.outcome || why != tt.reason {
					t.Errorf("behind rest %v: scope outcome %q %q, want %q %q", behindRest, o, why, tt.outcome, tt.reason)
				}
				var rec map[string]any
				if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
					t.Fatalf("log %q: %v", logs.String(), err)
				}
				if rec["level"] != tt.level || rec["outcome"] != string(tt.outcome) || rec["reason"] != tt.reason ||
					rec["status"] != float64(tt.status) || rec["request_id"] != "req-1" || rec["route"] != "orders-bridge" {
					t.Errorf("behind rest %v: log %v", behindRest, rec)
				}
				if _, ok := rec["duration_seconds"]; !ok {
					t.Errorf("log without duration_seconds: %v", rec)
				}
				if tt.status != 200 && tt.reason != "upstream_fault" && tt.reason != "upstream_unavailable" && len(up.requests()) != 0 {
					t.Errorf("a refused request reached the upstream")
				}
			})
		}
	}
}
