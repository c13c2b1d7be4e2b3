package bridge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"wsgate/internal/reqscope"
	"wsgate/oauth"
	"wsgate/rest"
	"wsgate/wssec"
)

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func testClock() time.Time { return testNow }

// loadIdentity reads a committed identity from testdata/pki.
func loadIdentity(t testing.TB, name string) ([]*x509.Certificate, crypto.Signer) {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join("../testdata/pki", name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join("../testdata/pki", name+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{cert}, key.(crypto.Signer)
}

func loadCert(t testing.TB, name string) *x509.Certificate {
	chain, _ := loadIdentity(t, name)
	return chain[0]
}

// staticIdentity is an IdentitySource; a nil chain is "not loaded yet".
type staticIdentity struct {
	chain []*x509.Certificate
	key   crypto.Signer
}

var errNotLoaded = errors.New("test: identity not loaded")

func (s staticIdentity) Identity() ([]*x509.Certificate, crypto.Signer, error) {
	if s.chain == nil {
		return nil, nil, errNotLoaded
	}
	return s.chain, s.key, nil
}

type staticTrust []*x509.Certificate

func (s staticTrust) Certificates() ([]*x509.Certificate, error) {
	if s == nil {
		return nil, errors.New("test: trust not loaded")
	}
	return s, nil
}

func verifierWith(trust staticTrust) *wssec.Verifier {
	return &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  trust,
		Now:    testClock,
	}
}

// seen is one request the test upstream received.
type seen struct {
	header   http.Header
	body     []byte
	verified *wssec.Verified
	err      error
}

// upstream is a SOAP service that verifies every request's WS-Security
// signature with wssec (trusting the test CA) and answers with reply.
type upstream struct {
	t     *testing.T
	mu    sync.Mutex
	reqs  []seen
	reply func(w http.ResponseWriter, r *http.Request, v *wssec.Verified)
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	v, err := verifierWith(staticTrust{loadCert(u.t, "ca")}).Verify(r.Context(), body)
	u.mu.Lock()
	u.reqs = append(u.reqs, seen{header: r.Header.Clone(), body: body, verified: v, err: err})
	u.mu.Unlock()
	if err != nil {
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	u.reply(w, r, v)
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// soapReply answers with body inside an envelope of the request's version,
// signed with the ECDSA partner identity when sign is set.
func soapReply(t *testing.T, status int, body string, sign bool) func(http.ResponseWriter, *http.Request, *wssec.Verified) {
	return func(w http.ResponseWriter, r *http.Request, v *wssec.Verified) {
		ns, ct := wssec.NSSOAP11, ContentType11
		if v.Version == wssec.SOAP12 {
			ns, ct = wssec.NSSOAP12, ContentType12
		}
		msg := []byte(`<env:Envelope xmlns:env="` + ns + `"><env:Body>` + body + `</env:Body></env:Envelope>`)
		if sign {
			chain, key := loadIdentity(t, "partner-ecdsa")
			s := wssec.Signer{Chain: chain, Key: key, Now: testClock}
			var err error
			if msg, err = s.SignBytes(msg, wssec.Limits{}); err != nil {
				t.Errorf("signing the reply: %v", err)
			}
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = w.Write(msg)
	}
}

const (
	orderReply = `<o:GetOrderResponse xmlns:o="urn:example:orders"><o:Order id="42"><o:Status>shipped</o:Status><o:Line>a</o:Line><o:Line>b</o:Line></o:Order></o:GetOrderResponse>`
	orderJSON  = `{"GetOrderResponse":{"Order":{"@id":"42","Status":"shipped","Line":["a","b"]}}}`
	fault11    = `<env:Fault><faultcode>env:Client</faultcode><faultstring>Order not found</faultstring><detail><o:NotFound xmlns:o="urn:example:orders"><o:ID>42</o:ID></o:NotFound></detail></env:Fault>`
	fault12    = `<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>o:NotFound</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">Order not found</env:Text></env:Reason><env:Detail><o:ID xmlns:o="urn:example:orders">42</o:ID></env:Detail></env:Fault>`
)

func loadTemplate(t testing.TB, file string) *Template {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../testdata/bridge", file))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := ParseTemplate(file, string(b))
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// newBridge builds a bridge to url; mod adjusts the options.
func newBridge(t testing.TB, url string, mod func(*Options)) *Handler {
	t.Helper()
	chain, key := loadIdentity(t, "partner-rsa")
	o := Options{
		Route:       "orders-bridge",
		PathPrefix:  "/bridge/orders",
		Upstream:    url,
		SOAPVersion: wssec.SOAP11,
		Operations: []Operation{
			{Name: "get-order", Action: "urn:orders:GetOrder", Template: loadTemplate(t, "get-order.xml.tmpl")},
			{Name: "place-order", Action: "urn:orders:PlaceOrder", Template: loadTemplate(t, "place-order.xml.tmpl")},
		},
		Identity:     staticIdentity{chain, key},
		Timeout:      2 * time.Second,
		MaxBodyBytes: 4096,
		Logger:       slog.New(slog.DiscardHandler),
		Now:          testClock,
	}
	if mod != nil {
		mod(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func post(h http.Handler, path, contentType, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, scoped(r))
	return w
}

// scoped puts r in a request scope with ID req-1, as the front door would.
func scoped(r *http.Request) *http.Request {
	return r.WithContext(reqscope.With(r.Context(), reqscope.New("req-1", "192.0.2.1")))
}

const getOrder = `{"orderId": 42, "note": "</a><evil/>"}`

// TestBridgeRoundTrip: JSON in, a signed envelope of the right version and
// binding upstream, the response Body back as JSON.
func TestBridgeRoundTrip(t *testing.T) {
	for _, v := range []wssec.SOAPVersion{wssec.SOAP11, wssec.SOAP12} {
		t.Run(v.String(), func(t *testing.T) {
			up := &upstream{t: t, reply: soapReply(t, http.StatusOK, orderReply, false)}
			srv := httptest.NewServer(up)
			defer srv.Close()
			h := newBridge(t, srv.URL+"/ws/orders", func(o *Options) { o.SOAPVersion = v })

			w := post(h, "/bridge/orders/get-order", "application/json", getOrder)
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d, body %s", w.Code, w.Body)
			}
			if got, want := strings.TrimSpace(w.Body.String()), `{"status":200,"body":`+orderJSON+`}`; got != want {
				t.Errorf("body = %s\nwant   %s", got, want)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := w.Header().Get(reqscope.Header); got != "req-1" {
				t.Errorf("X-Request-ID = %q, want req-1", got)
			}

			reqs := up.requests()
			if len(reqs) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.err != nil {
				t.Fatalf("upstream could not verify the request: %v\n%s", got.err, got.body)
			}
			if !got.verified.Signer.Equal(loadCert(t, "partner-rsa")) {
				t.Errorf("signer = %s, want partner rsa", got.verified.Signer.Subject)
			}
			if got.verified.Version != v {
				t.Errorf("SOAP version = %v, want %v", got.verified.Version, v)
			}
			ct := got.header.Get("Content-Type")
			switch v {
			case wssec.SOAP11:
				if ct != ContentType11 || got.header.Get("SOAPAction") != `"urn:orders:GetOrder"` {
					t.Errorf("1.1 binding: Content-Type %q, SOAPAction %q", ct, got.header.Get("SOAPAction"))
				}
			case wssec.SOAP12:
				if ct != ContentType12+`; action="urn:orders:GetOrder"` || got.header.Values("SOAPAction") != nil {
					t.Errorf("1.2 binding: Content-Type %q, SOAPAction %q", ct, got.header.Values("SOAPAction"))
				}
			}
			if id := got.header.Get(reqscope.Header); id != "req-1" {
				t.Errorf("upstream X-Request-ID = %q", id)
			}

			// The hostile note arrived as text: one GetOrder with two
			// leaf children, the note's text exactly what the client sent.
			body := got.verified.Body.ChildElements()
			if len(body) != 1 || body[0].Tag != "GetOrder" {
				t.Fatalf("Body children = %v", body)
			}
			kids := body[0].ChildElements()
			if len(kids) != 2 || len(kids[1].ChildElements()) != 0 {
				t.Fatalf("GetOrder has %d children; the note added markup?\n%s", len(kids), got.body)
			}
			if id, note := textOf(kids[0]), textOf(kids[1]); id != "42" || note != "</a><evil/>" {
				t.Errorf("OrderID %q, Note %q", id, note)
			}
			if bytes.Contains(got.body, []byte("<evil")) {
				t.Errorf("the raw envelope contains <evil:\n%s", got.body)
			}
		})
	}
}

// TestBridgeStatuses: every refusal and failure the spec names, and that a
// refused request never reaches the upstream.
func TestBridgeStatuses(t *testing.T) {
	slow := make(chan struct{})
	defer close(slow)
	tests := []struct {
		name        string
		reply       func(http.ResponseWriter, *http.Request, *wssec.Verified)
		mod         func(*Options)
		method      string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantBody    string // exact JSON; "" to skip
		wantErr     string // the "error" member; "" to skip
		wantDesc    string // substring of error_description
		upstream    int    // requests the upstream must see
	}{
		{name: "1.1 fault", reply: soapReply(t, http.StatusInternalServerError, fault11, false),
			wantStatus: 502, upstream: 1,
			wantBody: `{"fault":{"code":"env:Client","string":"Order not found","detail":{"NotFound":{"ID":"42"}}}}`},
		{name: "1.2 fault", reply: soapReply(t, http.StatusBadRequest, fault12, false), mod: func(o *Options) { o.SOAPVersion = wssec.SOAP12 },
			wantStatus: 502, upstream: 1,
			wantBody: `{"fault":{"code":"env:Sender","subcode":["o:NotFound"],"string":"Order not found","detail":{"ID":"42"}}}`},
		{name: "fault with HTTP 200 is still a fault", reply: soapReply(t, http.StatusOK, fault11, false),
			wantStatus: 502, upstream: 1, wantBody: `{"fault":{"code":"env:Client","string":"Order not found","detail":{"NotFound":{"ID":"42"}}}}`},
		{name: "timeout", reply: func(w http.ResponseWriter, r *http.Request, _ *wssec.Verified) {
			select {
			case <-slow:
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, mod: func(o *Options) { o.Timeout = 500 * time.Millisecond }, // time for the call to arrive under load
			wantStatus: 504, wantErr: "upstream_timeout", upstream: 1},
		{name: "timeout while the body streams", reply: func(w http.ResponseWriter, r *http.Request, _ *wssec.Verified) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "<env:Envelope")
			w.(http.Flusher).Flush()
			select {
			case <-slow:
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, mod: func(o *Options) { o.Timeout = 500 * time.Millisecond }, // time for the call to arrive under load
			wantStatus: 504, wantErr: "upstream_timeout", upstream: 1},
		{name: "upstream down", mod: func(o *Options) { o.Upstream = "http://127.0.0.1:1/ws" },
			wantStatus: 502, wantErr: "bad_gateway"},
		{name: "not a SOAP response", reply: func(w http.ResponseWriter, _ *http.Request, _ *wssec.Verified) {
			_, _ = io.WriteString(w, `{"not":"soap"}`)
		}, wantStatus: 502, wantErr: "bad_gateway", upstream: 1},
		{name: "HTML error page", reply: func(w http.ResponseWriter, _ *http.Request, _ *wssec.Verified) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `<html><body>down</body></html>`)
		}, wantStatus: 502, wantErr: "bad_gateway", upstream: 1},
		{name: "error status without a fault", reply: soapReply(t, http.StatusInternalServerError, orderReply, false),
			wantStatus: 502, wantErr: "bad_gateway", upstream: 1},
		{name: "DOCTYPE in the response", reply: func(w http.ResponseWriter, _ *http.Request, _ *wssec.Verified) {
			_, _ = io.WriteString(w, `<!DOCTYPE x [<!ENTITY a "b">]><soapenv:Envelope xmlns:soapenv="`+wssec.NSSOAP11+`"><soapenv:Body>&a;</soapenv:Body></soapenv:Envelope>`)
		}, wantStatus: 502, wantErr: "bad_gateway", upstream: 1},
		{name: "response too large", reply: soapReply(t, http.StatusOK, "<r>"+strings.Repeat("x", 5000)+"</r>", false),
			mod: func(o *Options) { o.MaxResponseBytes = 4000 }, wantStatus: 502, wantErr: "bad_gateway", upstream: 1},
		{name: "redirect is not followed", reply: func(w http.ResponseWriter, r *http.Request, _ *wssec.Verified) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, wantStatus: 502, wantErr: "bad_gateway", upstream: 1},
		{name: "one-way 202", reply: func(w http.ResponseWriter, _ *http.Request, _ *wssec.Verified) { w.WriteHeader(http.StatusAccepted) },
			wantStatus: 200, wantBody: `{"status":202,"body":null}`, upstream: 1},
		{name: "missing template field", body: `{"note": "x"}`,
			wantStatus: 400, wantErr: "invalid_request", wantDesc: `lacks the field "orderId"`},
		{name: "missing field inside a range", path: "/bridge/orders/place-order", body: `{"customer":"c","lines":[{"sku":"a","qty":1}]}`,
			wantStatus: 400, wantErr: "invalid_request", wantDesc: `"description"`},
		{name: "field of the wrong type", path: "/bridge/orders/place-order", body: `{"customer":"c","lines":"abc"}`,
			wantStatus: 400, wantErr: "invalid_request", wantDesc: "does not fit"},
		{name: "array body", body: `[1,2]`, wantStatus: 400, wantErr: "invalid_request", wantDesc: "must be a JSON object, not an array"},
		{name: "string body", body: `"x"`, wantStatus: 400, wantErr: "invalid_request", wantDesc: "not a string"},
		{name: "null body", body: `null`, wantStatus: 400, wantErr: "invalid_request", wantDesc: "not null"},
		{name: "invalid JSON", body: `{"orderId":`, wantStatus: 400, wantErr: "invalid_request", wantDesc: "not valid JSON"},
		{name: "trailing data", body: `{"orderId":1,"note":""} {}`, wantStatus: 400, wantErr: "invalid_request", wantDesc: "data after"},
		{name: "empty body", body: ``, wantStatus: 400, wantErr: "invalid_request", wantDesc: "not valid JSON"},
		{name: "too large", body: `{"orderId":"` + strings.Repeat("x", 5000) + `"}`, wantStatus: 413, wantErr: "request_too_large"},
		{name: "unknown operation", path: "/bridge/orders/delete-order", wantStatus: 404, wantErr: "not_found"},
		{name: "prefix alone", path: "/bridge/orders", wantStatus: 404, wantErr: "not_found"},
		{name: "nested path", path: "/bridge/orders/get-order/x", wantStatus: 404, wantErr: "not_found"},
		{name: "GET", method: http.MethodGet, wantStatus: 405, wantErr: "method_not_allowed"},
		{name: "form post", contentType: "application/x-www-form-urlencoded", body: "orderId=1", wantStatus: 415, wantErr: "unsupported_media_type"},
		{name: "no content type", contentType: "-", wantStatus: 415, wantErr: "unsupported_media_type"},
		{name: "+json media type", contentType: "application/vnd.orders+json; charset=utf-8",
			reply: soapReply(t, http.StatusOK, `<r/>`, false), wantStatus: 200, wantBody: `{"status":200,"body":{"r":""}}`, upstream: 1},
		{name: "identity not loaded", mod: func(o *Options) { o.Identity = staticIdentity{} },
			wantStatus: 503, wantErr: "temporarily_unavailable"},
		{name: "template renders malformed XML", mod: func(o *Options) {
			o.Operations[0].Template = mustTemplate(t, `<a>{{.orderId}}`)
		}, wantStatus: 500, wantErr: "server_error"},
		{name: "template renders over the size limit", mod: func(o *Options) {
			o.Limits.MaxBytes = 600
			o.Operations[0].Template = mustTemplate(t, `<a>{{range .note}}{{.}}{{.}}{{.}}{{.}}{{end}}</a>`)
		}, body: `{"orderId":1,"note":["` + strings.Repeat("x", 200) + `","` + strings.Repeat("y", 200) + `"]}`,
			wantStatus: 413, wantErr: "request_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := tt.reply
			if reply == nil {
				reply = soapReply(t, http.StatusOK, orderReply, false)
			}
			up := &upstream{t: t, reply: reply}
			srv := httptest.NewServer(up)
			defer srv.Close()
			h := newBridge(t, srv.URL, tt.mod)

			method, path, ct, body := tt.method, tt.path, tt.contentType, tt.body
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/bridge/orders/get-order"
			}
			if ct == "" {
				ct = "application/json"
			}
			if body == "" && tt.name != "empty body" {
				body = getOrder
			}
			r := httptest.NewRequest(method, path, strings.NewReader(body))
			if ct != "-" {
				r.Header.Set("Content-Type", ct)
			}
			r = scoped(r)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantBody != "" {
				if got := strings.TrimSpace(w.Body.String()); got != tt.wantBody {
					t.Errorf("body = %s\nwant   %s", got, tt.wantBody)
				}
			}
			if tt.wantErr != "" {
				var eb rest.ErrorBody
				if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil {
					t.Fatalf("error body %q: %v", w.Body, err)
				}
				if eb.Error != tt.wantErr || eb.RequestID != "req-1" {
					t.Errorf("error = %q, request_id %q; want %q, req-1", eb.Error, eb.RequestID, tt.wantErr)
				}
				if !strings.Contains(eb.Description, tt.wantDesc) {
					t.Errorf("error_description = %q, want it to contain %q", eb.Description, tt.wantDesc)
				}
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && w.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q, want POST", w.Header().Get("Allow"))
			}
			reqs := up.requests()
			// After a timeout the upstream may still be reading and
			// verifying the request the bridge gave up on.
			for deadline := time.Now().Add(5 * time.Second); len(reqs) < tt.upstream && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				reqs = up.requests()
			}
			if len(reqs) != tt.upstream {
				t.Fatalf("upstream got %d requests, want %d", len(reqs), tt.upstream)
			}
			for _, s := range reqs {
				if s.err != nil {
					t.Errorf("upstream could not verify the request: %v", s.err)
				}
			}
		})
	}
}

// TestBridgeVerifyResponse: with verify_response, only a response signed by
// a trusted signer over Body and Timestamp gets through.
func TestBridgeVerifyResponse(t *testing.T) {
	tests := []struct {
		name       string
		reply      func(http.ResponseWriter, *http.Request, *wssec.Verified)
		trust      staticTrust
		wantStatus int
		wantErr    string
	}{
		{"signed by a trusted signer", soapReply(t, http.StatusOK, orderReply, true), staticTrust{loadCert(t, "ca")}, 200, ""},
		{"signed fault", soapReply(t, http.StatusInternalServerError, fault11, true), staticTrust{loadCert(t, "ca")}, 502, ""},
		{"unsigned", soapReply(t, http.StatusOK, orderReply, false), staticTrust{loadCert(t, "ca")}, 502, "bad_gateway"},
		{"unsigned fault", soapReply(t, http.StatusInternalServerError, fault11, false), staticTrust{loadCert(t, "ca")}, 502, "bad_gateway"},
		{"signer not trusted", soapReply(t, http.StatusOK, orderReply, true), staticTrust{loadCert(t, "untrusted-ca")}, 502, "bad_gateway"},
		{"tampered", func(w http.ResponseWriter, r *http.Request, v *wssec.Verified) {
			rec := httptest.NewRecorder()
			soapReply(t, http.StatusOK, orderReply, true)(rec, r, v)
			_, _ = w.Write(bytes.Replace(rec.Body.Bytes(), []byte("shipped"), []byte("refunded"), 1))
		}, staticTrust{loadCert(t, "ca")}, 502, "bad_gateway"},
		{"empty 202 cannot be verified", func(w http.ResponseWriter, _ *http.Request, _ *wssec.Verified) {
			w.WriteHeader(http.StatusAccepted)
		}, staticTrust{loadCert(t, "ca")}, 502, "bad_gateway"},
		{"trust not loaded", soapReply(t, http.StatusOK, orderReply, true), nil, 503, "temporarily_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&upstream{t: t, reply: tt.reply})
			defer srv.Close()
			h := newBridge(t, srv.URL, func(o *Options) { o.VerifyResponse = verifierWith(tt.trust) })
			w := post(h, "/bridge/orders/get-order", "application/json", getOrder)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			var eb rest.ErrorBody
			_ = json.Unmarshal(w.Body.Bytes(), &eb)
			if eb.Error != tt.wantErr {
				t.Errorf("error = %q, want %q; body %s", eb.Error, tt.wantErr, w.Body)
			}
			if tt.wantStatus == 200 && !strings.Contains(w.Body.String(), `"Status":"shipped"`) {
				t.Errorf("body = %s", w.Body)
			}
		})
	}
}

// fakeValidator accepts the token "good" for subject alice.
type fakeValidator struct{}

func (fakeValidator) Validate(_ context.Context, raw string) (*oauth.Token, error) {
	if raw != "good" {
		return nil, oauth.ErrInvalidSignature
	}
	return &oauth.Token{Subject: "alice", Scopes: []string{"orders.write"}, Claims: map[string]any{"sub": "alice"}}, nil
}

// TestBridgeBehindRest: the bridge as rest's upstream. OAuth refuses before
// the bridge runs; accepted calls reach the SOAP upstream without the
// client's Authorization or cookies, with the forward_claims header rest
// set from the token (never the client's copy).
func TestBridgeBehindRest(t *testing.T) {
	up := &upstream{t: t, reply: soapReply(t, http.StatusOK, orderReply, false)}
	srv := httptest.NewServer(up)
	defer srv.Close()
	b := newBridge(t, srv.URL, func(o *Options) { o.ForwardHeaders = []string{"X-Auth-Subject"} })
	scopes, err := oauth.NewScopePolicy([]oauth.ScopeRule{{Methods: []string{"POST"}, Path: "/**", AnyOf: []string{"orders.write"}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := rest.New(rest.Options{
		Route:         "orders-bridge",
		PathPrefix:    "/bridge/orders",
		Validator:     fakeValidator{},
		Scopes:        scopes,
		ForwardClaims: map[string]string{"sub": "X-Auth-Subject"},
		Upstream:      b,
	})
	if err != nil {
		t.Fatal(err)
	}

	send := func(token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/bridge/orders/get-order", strings.NewReader(getOrder))
		r.Header.Set("Content-Type", "application/json")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		r.Header.Set("Cookie", "session=secret")
		r.Header.Set("X-Auth-Subject", "mallory")
		r.Header.Set("X_Auth_Subject", "mallory")
		r = r.WithContext(reqscope.With(r.Context(), reqscope.New("rest-1", "192.0.2.1")))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	if w := send(""); w.Code != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", w.Code)
	}
	if w := send("bad"); w.Code != http.StatusUnauthorized {
		t.Errorf("bad token: status %d, want 401", w.Code)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("refused requests reached the SOAP upstream %d times", n)
	}

	w := send("good")
	if w.Code != http.StatusOK {
		t.Fatalf("good token: status %d, body %s", w.Code, w.Body)
	}
	if ids := w.Header().Values(reqscope.Header); len(ids) != 1 || ids[0] != "rest-1" {
		t.Errorf("X-Request-ID = %q, want exactly rest's [rest-1]", ids)
	}
	reqs := up.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(reqs))
	}
	got := reqs[0].header
	for _, name := range []string{"Authorization", "Cookie", "X_auth_subject"} {
		if v := got.Values(name); v != nil {
			t.Errorf("%s reached the SOAP upstream: %q", name, v)
		}
	}
	if v := got.Values("X-Auth-Subject"); len(v) != 1 || v[0] != "alice" {
		t.Errorf("X-Auth-Subject = %q, want [alice] from the token", v)
	}
	if id := got.Get(reqscope.Header); id != "rest-1" {
		t.Errorf("upstream X-Request-ID = %q, want rest-1", id)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	chain, key := loadIdentity(t, "partner-rsa")
	tmpl := mustTemplate(t, `<a/>`)
	good := func() Options {
		return Options{Upstream: "http://127.0.0.1:9/ws", SOAPVersion: wssec.SOAP11, Identity: staticIdentity{chain, key},
			Operations: []Operation{{Name: "op", Action: "urn:op", Template: tmpl}}}
	}
	if _, err := New(good()); err != nil {
		t.Fatalf("New(good) = %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Options)
	}{
		{"relative upstream", func(o *Options) { o.Upstream = "/ws" }},
		{"ftp upstream", func(o *Options) { o.Upstream = "ftp://h/ws" }},
		{"credentials in upstream", func(o *Options) { o.Upstream = "http://u:p@h/ws" }},
		{"unknown SOAP version", func(o *Options) { o.SOAPVersion = wssec.SOAPUnknown }},
		{"no identity", func(o *Options) { o.Identity = nil }},
		{"no operations", func(o *Options) { o.Operations = nil }},
		{"duplicate operation", func(o *Options) { o.Operations = append(o.Operations, o.Operations[0]) }},
		{"operation with a slash", func(o *Options) { o.Operations[0].Name = "a/b" }},
		{"action with a quote", func(o *Options) { o.Operations[0].Action = `urn:"x` }},
		{"action with CRLF", func(o *Options) { o.Operations[0].Action = "urn:x\r\nX-Evil: 1" }},
		{"empty action", func(o *Options) { o.Operations[0].Action = "" }},
		{"no template", func(o *Options) { o.Operations[0].Template = nil }},
		{"forwarding Authorization", func(o *Options) { o.ForwardHeaders = []string{"authorization"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good()
			tt.mod(&o)
			if _, err := New(o); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
}
