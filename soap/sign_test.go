package soap

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"wsgate/proxy"
	"wsgate/wssec"
)

// identity is a static IdentitySource; a nil chain has not loaded.
type identity struct {
	chain []*x509.Certificate
	key   crypto.Signer
}

func (i identity) Identity() ([]*x509.Certificate, crypto.Signer, error) {
	if i.chain == nil {
		return nil, nil, errors.New("secret never loaded")
	}
	return i.chain, i.key, nil
}

func gatewayIdentity(t testing.TB) identity {
	p := getFixture(t).partner
	return identity{chain: []*x509.Certificate{p.Cert}, key: p.Key}
}

// replyEnvelope is an upstream answer in version v.
func replyEnvelope(v wssec.SOAPVersion, body string) string {
	ns := wssec.NSSOAP11
	if v == wssec.SOAP12 {
		ns = wssec.NSSOAP12
	}
	return `<s:Envelope xmlns:s="` + ns + `"><s:Body>` + body + `</s:Body></s:Envelope>`
}

func respond(status int, header map[string]string, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// verifyResponse checks a signed response as a client would: a signature
// by the gateway identity over Body and Timestamp, trusting the test CA.
func verifyResponse(t *testing.T, body []byte) *wssec.Verified {
	t.Helper()
	v := &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  certs{getFixture(t).ca.Cert},
		Now:    fixedNow,
	}
	got, err := v.Verify(context.Background(), body)
	if err != nil {
		t.Fatalf("signed response does not verify: %v\n%s", err, body)
	}
	if !got.Signer.Equal(getFixture(t).partner.Cert) {
		t.Errorf("response signer = %s", got.Signer.Subject)
	}
	return got
}

func TestSignResponse(t *testing.T) {
	for _, v := range []wssec.SOAPVersion{wssec.SOAP11, wssec.SOAP12} {
		for _, status := range []int{http.StatusOK, http.StatusInternalServerError} {
			t.Run(v.String()+"/"+strconv.Itoa(status), func(t *testing.T) {
				hs := newHarness(t, func(o *Options) {
					o.SignResponse = gatewayIdentity(t)
					o.ResponseTTL = time.Minute
					o.Now = fixedNow
				})
				body := `<m:HelloResponse xmlns:m="urn:test">Hi &amp; bye</m:HelloResponse>`
				if status != http.StatusOK {
					body = `<s:Fault><faultcode>s:Server</faultcode><faultstring>boom</faultstring></s:Fault>`
				}
				hs.upstream.response = respond(status, map[string]string{
					"Content-Type": "text/xml", "X-Upstream": "yes", "ETag": `"abc"`, "Content-MD5": "x",
					RequestIDHeader: "upstream-id",
				}, replyEnvelope(v, body))
				rec := post(hs.h, sign(t, v, getFixture(t).partner, now), contentTypeFor(v), "client-id-1")

				if rec.Code != status {
					t.Fatalf("status = %d, want %d: %s", rec.Code, status, rec.Body)
				}
				got := verifyResponse(t, rec.Body.Bytes())
				if got.Version != v {
					t.Errorf("response version = %v, want %v", got.Version, v)
				}
				if exp := got.Created.Add(time.Minute); !got.Created.Equal(now.Truncate(time.Millisecond)) {
					t.Errorf("Created = %v, want the injected clock %v (expires %v)", got.Created, now, exp)
				}
				// The Body is the upstream's.
				want, _ := wssec.ParseEnvelope([]byte(replyEnvelope(v, body)), wssec.Limits{})
				if a, b := canonicalBody(t, want.Body), canonicalBody(t, got.Body); a != b {
					t.Errorf("Body changed:\n%s\n%s", a, b)
				}
				h := rec.Header()
				if h.Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
					t.Errorf("Content-Length = %q, body is %d bytes", h.Get("Content-Length"), rec.Body.Len())
				}
				if h.Get("Content-Type") != contentTypeFor(v) {
					t.Errorf("Content-Type = %q, want %q", h.Get("Content-Type"), contentTypeFor(v))
				}
				if h.Get("X-Upstream") != "yes" {
					t.Error("the upstream's own header was dropped")
				}
				for _, k := range []string{"Etag", "Content-Md5"} {
					if h.Get(k) != "" {
						t.Errorf("%s of the unsigned body was passed on", k)
					}
				}
				if ids := h.Values(RequestIDHeader); len(ids) != 1 || ids[0] != "client-id-1" {
					t.Errorf("X-Request-ID = %q, want exactly [client-id-1]", ids)
				}
			})
		}
	}
}

// canonicalBody is el's exclusive canonical form without the wsu:Id the
// signer adds.
func canonicalBody(t *testing.T, el *etree.Element) string {
	t.Helper()
	cp := el.Copy()
	for _, a := range append([]etree.Attr(nil), cp.Attr...) {
		if a.Key == "Id" || a.Key == "wsu" || strings.HasPrefix(a.Key, "wsu") {
			cp.RemoveAttr(a.FullKey())
		}
	}
	doc := etree.NewDocument()
	doc.SetRoot(cp)
	s, err := doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSignResponseRefusals: the client never gets an unsigned response.
func TestSignResponseRefusals(t *testing.T) {
	var gz strings.Builder
	zw := gzip.NewWriter(&gz)
	_, _ = io.WriteString(zw, replyEnvelope(wssec.SOAP11, "<r/>"))
	_ = zw.Close()
	signedAlready := string(sign(t, wssec.SOAP11, getFixture(t).partner, now))

	tests := []struct {
		name     string
		response func(http.ResponseWriter)
		maxResp  int64
		status   int
	}{
		{"not XML", respond(200, nil, "hello"), 0, 502},
		{"XML but not SOAP", respond(202, nil, "<upstream-reply/>"), 0, 502},
		{"empty 202", respond(202, nil, ""), 0, 502},
		{"HTML error page", respond(503, map[string]string{"Content-Type": "text/html"}, "<html>down</html>"), 0, 502},
		{"gzip passed through", respond(200, map[string]string{"Content-Encoding": "gzip"}, gz.String()), 0, 502},
		{"DOCTYPE", respond(200, nil, `<!DOCTYPE s:Envelope [<!ENTITY x "y">]>`+replyEnvelope(wssec.SOAP11, "&x;")), 0, 502},
		{"too large", respond(200, nil, replyEnvelope(wssec.SOAP11, "<r>"+strings.Repeat("x", 3000)+"</r>")), 2000, 502},
		{"already signed", respond(200, nil, signedAlready), 0, 502},
		{"proxy timeout", respond(504, map[string]string{"Content-Type": "application/json"}, `{"error":"upstream_timeout"}`), 0, 504},
	}
	for _, v := range []wssec.SOAPVersion{wssec.SOAP11, wssec.SOAP12} {
		for _, tt := range tests {
			t.Run(v.String()+"/"+tt.name, func(t *testing.T) {
				hs := newHarness(t, func(o *Options) {
					o.SignResponse = gatewayIdentity(t)
					o.MaxResponseBytes = tt.maxResp
					o.Now = fixedNow
				})
				hs.upstream.response = tt.response
				rec := post(hs.h, sign(t, v, getFixture(t).partner, now), contentTypeFor(v), "rid")
				checkUpstreamFault(t, rec, v, tt.status, "rid")
				if hs.upstream.calls != 1 {
					t.Errorf("upstream calls = %d, want 1", hs.upstream.calls)
				}
				if !strings.Contains(hs.logs.String(), `"msg":"soap response not signed"`) {
					t.Errorf("no audit record:\n%s", hs.logs)
				}
			})
		}
	}
}

// checkUpstreamFault checks the gateway's fault for an upstream response it
// would not sign: soap:Server / env:Receiver with no wsse subcode.
func checkUpstreamFault(t *testing.T, rec *httptest.ResponseRecorder, v wssec.SOAPVersion, status int, requestID string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d\n%s", rec.Code, status, rec.Body)
	}
	if got := rec.Header().Values(RequestIDHeader); len(got) != 1 || got[0] != requestID {
		t.Errorf("X-Request-ID = %q, want [%s]", got, requestID)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(rec.Body.Bytes()); err != nil {
		t.Fatalf("fault is not XML: %v\n%s", err, rec.Body)
	}
	root := doc.Root()
	reason := strings.ToLower(http.StatusText(status))
	find := func(path string) string {
		el := root.FindElement(path)
		if el == nil {
			t.Fatalf("fault lacks %s:\n%s", path, rec.Body)
		}
		return el.Text()
	}
	if v == wssec.SOAP12 {
		if got := find("./Body/Fault/Code/Value"); got != "env:Receiver" {
			t.Errorf("Code/Value = %q, want env:Receiver", got)
		}
		if root.FindElement("./Body/Fault/Code/Subcode") != nil {
			t.Errorf("an upstream failure carries a wsse Subcode:\n%s", rec.Body)
		}
		if got := find("./Body/Fault/Reason/Text"); got != reason {
			t.Errorf("Reason = %q, want %q", got, reason)
		}
		if got := find("./Body/Fault/Detail/RequestID"); got != requestID {
			t.Errorf("RequestID = %q", got)
		}
		return
	}
	if got := find("./Body/Fault/faultcode"); got != "soap:Server" {
		t.Errorf("faultcode = %q, want soap:Server", got)
	}
	if got := find("./Body/Fault/faultstring"); got != reason {
		t.Errorf("faultstring = %q, want %q", got, reason)
	}
	if got := find("./Body/Fault/detail/RequestID"); got != requestID {
		t.Errorf("RequestID = %q", got)
	}
}

// TestSignResponseIdentityUnavailable: no key, no call.
func TestSignResponseIdentityUnavailable(t *testing.T) {
	for _, v := range []wssec.SOAPVersion{wssec.SOAP11, wssec.SOAP12} {
		hs := newHarness(t, func(o *Options) { o.SignResponse = identity{} })
		rec := post(hs.h, sign(t, v, getFixture(t).partner, now), contentTypeFor(v), "rid")
		checkFault(t, rec, v, http.StatusServiceUnavailable, "InvalidSecurity", "rid")
		if hs.upstream.calls != 0 {
			t.Errorf("%v: the upstream was called without a key to sign its answer", v)
		}
	}
}

// TestSignResponseThroughProxy runs the real reverse proxy behind a real
// server: a client's Accept-Encoding does not make the upstream compress
// (the transport decompresses what it asked for), an upstream that is
// down, slow or drops the connection mid-body gets a fault, not a reset
// or an unsigned byte.
func TestSignResponseThroughProxy(t *testing.T) {
	slow := make(chan struct{})
	defer close(slow)
	reply := replyEnvelope(wssec.SOAP11, `<m:R xmlns:m="urn:test">`+strings.Repeat("ok ", 200)+`</m:R>`)
	upstreams := map[string]http.HandlerFunc{
		"gzip": func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				_, _ = io.WriteString(w, reply)
				return
			}
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, reply)
			_ = zw.Close()
		},
		"slow": func(w http.ResponseWriter, r *http.Request) {
			// Reading the body lets the server notice the proxy hanging up.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-slow:
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		},
		"drops": func(w http.ResponseWriter, r *http.Request) {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5000\r\n\r\n" + reply[:100])
			_ = brw.Flush()
			_ = conn.Close()
		},
	}
	tests := []struct {
		name   string
		status int
	}{
		{"gzip", 200}, {"slow", 504}, {"drops", 502}, {"down", 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := "http://127.0.0.1:1/ws"
			if h := upstreams[tt.name]; h != nil {
				srv := httptest.NewServer(h)
				defer srv.Close()
				target = srv.URL + "/ws"
			}
			p, err := proxy.New(proxy.Options{Upstream: target, StripPrefix: "/soap/orders", Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			hs := newHarness(t, func(o *Options) {
				o.SignResponse = gatewayIdentity(t)
				o.Upstream = p
				o.Now = fixedNow
			})
			gw := httptest.NewServer(hs.h)
			defer gw.Close()

			req, _ := http.NewRequest(http.MethodPost, gw.URL+"/soap/orders", strings.NewReader(string(sign(t, wssec.SOAP11, getFixture(t).partner, now))))
			req.Header.Set("Content-Type", ContentType11)
			req.Header.Set("Accept-Encoding", "gzip")
			req.Header.Set(RequestIDHeader, "rid")
			res, err := rawRoundTrip(gw.Listener.Addr().String(), req)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			rec := httptest.NewRecorder()
			for k, v := range res.Header {
				rec.Header()[k] = v
			}
			rec.WriteHeader(res.StatusCode)
			_, _ = io.Copy(rec, res.Body)
			if tt.status != http.StatusOK {
				checkUpstreamFault(t, rec, wssec.SOAP11, tt.status, "rid")
				return
			}
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "" {
				t.Fatalf("status %d, Content-Encoding %q", res.StatusCode, res.Header.Get("Content-Encoding"))
			}
			verifyResponse(t, rec.Body.Bytes())
		})
	}
}

// rawRoundTrip sends req on a fresh connection without a transport that
// would negotiate or undo compression on its own.
func rawRoundTrip(addr string, req *http.Request) (*http.Response, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(strings.NewReader(string(body)))
	return res, nil
}
