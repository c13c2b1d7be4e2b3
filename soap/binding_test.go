package soap

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"wsgate/internal/reqscope"
	"wsgate/wssec"
)

var versions = []wssec.SOAPVersion{wssec.SOAP11, wssec.SOAP12}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func other(v wssec.SOAPVersion) wssec.SOAPVersion {
	if v == wssec.SOAP12 {
		return wssec.SOAP11
	}
	return wssec.SOAP12
}

// decisions collects what the handler decided, through both channels.
type decisions struct {
	errs []error
	all  []Decision
}

// bindingHarness is a harness whose decisions are recorded.
func bindingHarness(t *testing.T, d *decisions, mutate func(*Options)) *harness {
	t.Helper()
	return newHarness(t, func(o *Options) {
		o.OnDecision = func(dec Decision) {
			d.errs = append(d.errs, dec.Err)
			d.all = append(d.all, dec)
		}
		if mutate != nil {
			mutate(o)
		}
	})
}

// send serves req with a front-door scope and returns the response and the scope.
func send(h http.Handler, req *http.Request) (*httptest.ResponseRecorder, *reqscope.Scope) {
	s := reqscope.New("front-id", "192.0.2.1")
	req = req.WithContext(reqscope.With(req.Context(), s))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, s
}

// checkSOAPFault asserts a fault without a wsse code: class is the SOAP 1.1
// faultcode local name (Client, Server, VersionMismatch, MustUnderstand),
// mapped to its SOAP 1.2 Code/Value (Sender, Receiver, ...).
func checkSOAPFault(t *testing.T, rec *httptest.ResponseRecorder, v wssec.SOAPVersion, status int, class, requestID string) *etree.Element {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d\n%s", rec.Code, status, rec.Body)
	}
	if got := rec.Header().Values(RequestIDHeader); len(got) != 1 || got[0] != requestID {
		t.Errorf("X-Request-ID = %q, want [%s]", got, requestID)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(rec.Body.Bytes()); err != nil {
		t.Fatalf("fault is not XML: %v\n%s", err, rec.Body)
	}
	root := doc.Root()
	find := func(path string) string {
		el := root.FindElement(path)
		if el == nil {
			t.Fatalf("fault lacks %s:\n%s", path, rec.Body)
		}
		return el.Text()
	}
	if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("Content-Length = %q, body is %d bytes", got, rec.Body.Len())
	}
	if v == wssec.SOAP12 {
		value := map[string]string{"Client": "Sender", "Server": "Receiver"}[class]
		if value == "" {
			value = class
		}
		if ct := rec.Header().Get("Content-Type"); ct != ContentType12 || root.NamespaceURI() != wssec.NSSOAP12 {
			t.Errorf("Content-Type %q, envelope namespace %q; want SOAP 1.2", ct, root.NamespaceURI())
		}
		if got := find("./Body/Fault/Code/Value"); got != "env:"+value {
			t.Errorf("Code/Value = %q, want env:%s", got, value)
		}
		if root.FindElement("./Body/Fault/Code/Subcode") != nil {
			t.Errorf("fault carries a wsse Subcode:\n%s", rec.Body)
		}
		if find("./Body/Fault/Reason/Text") == "" {
			t.Error("empty Reason")
		}
		if got := find("./Body/Fault/Detail/RequestID"); got != requestID {
			t.Errorf("Detail/RequestID = %q", got)
		}
		return root
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType11 || root.NamespaceURI() != wssec.NSSOAP11 {
		t.Errorf("Content-Type %q, envelope namespace %q; want SOAP 1.1", ct, root.NamespaceURI())
	}
	if got := find("./Body/Fault/faultcode"); got != "soap:"+class {
		t.Errorf("faultcode = %q, want soap:%s", got, class)
	}
	if find("./Body/Fault/faultstring") == "" {
		t.Error("empty faultstring")
	}
	if got := find("./Body/Fault/detail/RequestID"); got != requestID {
		t.Errorf("detail/RequestID = %q", got)
	}
	return root
}

// TestHTTPBindingRefused: the method, Content-Type, charset and
// Content-Encoding rules, and the envelope's version against the
// Content-Type, for messages of both SOAP versions that would otherwise
// verify. Each refusal has its sentinel, status and fault, is logged at
// WARN as rejected, and never reaches the upstream.
func TestHTTPBindingRefused(t *testing.T) {
	type tc struct {
		name   string
		req    func(r *http.Request, v wssec.SOAPVersion)
		err    error
		status int
		class  string                                      // SOAP 1.1 faultcode local name
		faultV func(v wssec.SOAPVersion) wssec.SOAPVersion // the fault's version
	}
	v11 := func(wssec.SOAPVersion) wssec.SOAPVersion { return wssec.SOAP11 }
	same := func(v wssec.SOAPVersion) wssec.SOAPVersion { return v }
	setCT := func(ct string) func(*http.Request, wssec.SOAPVersion) {
		return func(r *http.Request, _ wssec.SOAPVersion) { r.Header.Set("Content-Type", ct) }
	}
	method := func(m string) func(*http.Request, wssec.SOAPVersion) {
		return func(r *http.Request, _ wssec.SOAPVersion) { r.Method = m }
	}
	encoding := func(ce ...string) func(*http.Request, wssec.SOAPVersion) {
		return func(r *http.Request, _ wssec.SOAPVersion) { r.Header["Content-Encoding"] = ce }
	}
	tests := []tc{
		{"GET", method(http.MethodGet), ErrMethodNotAllowed, 405, "Client", v11},
		{"GET ?wsdl without a WSDL", func(r *http.Request, _ wssec.SOAPVersion) {
			r.Method, r.URL.RawQuery = http.MethodGet, "wsdl"
		}, ErrMethodNotAllowed, 405, "Client", v11},
		{"PUT", method(http.MethodPut), ErrMethodNotAllowed, 405, "Client", v11},
		{"DELETE", method(http.MethodDelete), ErrMethodNotAllowed, 405, "Client", v11},
		{"PATCH", method(http.MethodPatch), ErrMethodNotAllowed, 405, "Client", v11},
		{"OPTIONS", method(http.MethodOptions), ErrMethodNotAllowed, 405, "Client", v11},
		{"lower-case post", method("post"), ErrMethodNotAllowed, 405, "Client", v11},
		{"no Content-Type", func(r *http.Request, _ wssec.SOAPVersion) { r.Header.Del("Content-Type") },
			ErrMediaType, 415, "Client", v11},
		{"empty Content-Type", setCT(""), ErrMediaType, 415, "Client", v11},
		{"application/json", setCT("application/json"), ErrMediaType, 415, "Client", v11},
		{"application/xml", setCT("application/xml; charset=utf-8"), ErrMediaType, 415, "Client", v11},
		{"text/plain", setCT("text/plain"), ErrMediaType, 415, "Client", v11},
		{"multipart/related (MTOM)", setCT(`multipart/related; type="application/xop+xml"; boundary=x`),
			ErrMediaType, 415, "Client", v11},
		{"text/xml look-alike", setCT("text/xmlx"), ErrMediaType, 415, "Client", v11},
		{"malformed parameters", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", strings.SplitN(contentTypeFor(v), ";", 2)[0]+"; charset")
		}, ErrMediaType, 415, "Client", same},
		{"two charsets", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", contentTypeFor(v)+"; charset=latin1")
		}, ErrMediaType, 415, "Client", v11},
		{"two action parameters", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", contentTypeFor(v)+`; action="urn:test:Hello"; action="urn:test:Delete"`)
		}, ErrMediaType, 415, "Client", v11},
		{"two Content-Type headers", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Add("Content-Type", contentTypeFor(v))
		}, ErrMediaType, 415, "Client", same},
		{"charset ISO-8859-1", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", strings.Replace(contentTypeFor(v), "utf-8", "ISO-8859-1", 1))
		}, ErrCharset, 415, "Client", same},
		{"charset utf-16", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", strings.Replace(contentTypeFor(v), "utf-8", `"utf-16"`, 1))
		}, ErrCharset, 415, "Client", same},
		{"charset utf8 (not a registered name)", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", strings.Replace(contentTypeFor(v), "utf-8", "utf8", 1))
		}, ErrCharset, 415, "Client", same},
		{"Content-Encoding gzip", encoding("gzip"), ErrContentEncoding, 415, "Client", same},
		{"Content-Encoding deflate", encoding("deflate"), ErrContentEncoding, 415, "Client", same},
		{"Content-Encoding br", encoding("br"), ErrContentEncoding, 415, "Client", same},
		{"Content-Encoding identity, gzip", encoding("identity, gzip"), ErrContentEncoding, 415, "Client", same},
		{"Content-Encoding identity then gzip", encoding("identity", "GZIP"), ErrContentEncoding, 415, "Client", same},
		{"Content-Encoding empty", encoding(""), ErrContentEncoding, 415, "Client", same},
		{"envelope of the other version", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", contentTypeFor(other(v)))
		}, ErrVersionMismatch, 415, "VersionMismatch", same},
		{"envelope of the other version, parameters", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", strings.SplitN(contentTypeFor(other(v)), ";", 2)[0]+`; action="urn:test:Hello"`)
		}, ErrVersionMismatch, 415, "VersionMismatch", same},
		{"declared length over the cap", func(r *http.Request, _ wssec.SOAPVersion) {
			r.ContentLength = DefaultMaxBodyBytes + 1
		}, wssec.ErrTooLarge, 413, "", same},
	}
	f := getFixture(t)
	for _, tt := range tests {
		for _, v := range versions {
			t.Run(tt.name+"/"+v.String(), func(t *testing.T) {
				var d decisions
				hs := bindingHarness(t, &d, nil)
				req := httptest.NewRequest(http.MethodPost, "/soap/orders", bytes.NewReader(sign(t, v, f.partner, now)))
				req.Header.Set("Content-Type", contentTypeFor(v))
				tt.req(req, v)
				rec, scope := send(hs.h, req)

				if tt.class == "" {
					checkFault(t, rec, tt.faultV(v), tt.status, "InvalidSecurity", "front-id")
				} else {
					checkSOAPFault(t, rec, tt.faultV(v), tt.status, tt.class, "front-id")
				}
				if hs.upstream.calls != 0 {
					t.Errorf("upstream was called %d times", hs.upstream.calls)
				}
				if len(d.errs) != 1 || !errors.Is(d.errs[0], tt.err) {
					t.Errorf("decisions = %v, want one %v", d.errs, tt.err)
				}
				if o, reason := scope.Outcome(); o != reqscope.Rejected || reason != FaultName(tt.err) {
					t.Errorf("scope outcome = %s %q, want rejected %q", o, reason, FaultName(tt.err))
				}
				if len(d.all) == 1 && (d.all[0].Outcome != reqscope.Rejected || d.all[0].Reason != FaultName(tt.err)) {
					t.Errorf("decision = %+v", d.all[0])
				}
				if tt.status == 405 {
					if got := rec.Header().Values("Allow"); !equalStrings(got, []string{"POST"}) {
						t.Errorf("Allow = %q", got)
					}
				}
				log := hs.logs.String()
				for _, want := range []string{`"level":"WARN"`, `"outcome":"rejected"`, `"request_id":"front-id"`,
					`"status":` + strconv.Itoa(tt.status)} {
					if !strings.Contains(log, want) {
						t.Errorf("audit log lacks %s:\n%s", want, log)
					}
				}
				if strings.Contains(log, "World") {
					t.Errorf("audit log holds the body:\n%s", log)
				}
			})
		}
	}
}

// TestHTTPBindingAccepted: the parameters the contract allows.
func TestHTTPBindingAccepted(t *testing.T) {
	tests := []struct {
		name string
		req  func(r *http.Request, v wssec.SOAPVersion)
	}{
		{"charset quoted, upper case", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", strings.Replace(contentTypeFor(v), "utf-8", `"UTF-8"`, 1))
		}},
		{"no charset", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", strings.SplitN(contentTypeFor(v), ";", 2)[0])
		}},
		{"media type in upper case", func(r *http.Request, v wssec.SOAPVersion) {
			r.Header.Set("Content-Type", strings.ToUpper(contentTypeFor(v)))
		}},
		{"Content-Encoding identity", func(r *http.Request, _ wssec.SOAPVersion) {
			r.Header.Set("Content-Encoding", "Identity")
		}},
		{"chunked", func(r *http.Request, _ wssec.SOAPVersion) {
			r.ContentLength = -1
			r.TransferEncoding = []string{"chunked"}
		}},
	}
	f := getFixture(t)
	for _, tt := range tests {
		for _, v := range versions {
			t.Run(tt.name+"/"+v.String(), func(t *testing.T) {
				var d decisions
				hs := bindingHarness(t, &d, nil)
				req := httptest.NewRequest(http.MethodPost, "/soap/orders", bytes.NewReader(sign(t, v, f.partner, now)))
				req.Header.Set("Content-Type", contentTypeFor(v))
				tt.req(req, v)
				rec, scope := send(hs.h, req)
				if rec.Code != http.StatusAccepted || hs.upstream.calls != 1 {
					t.Fatalf("status %d, upstream calls %d\n%s", rec.Code, hs.upstream.calls, rec.Body)
				}
				if len(d.errs) != 1 || d.errs[0] != nil {
					t.Errorf("decisions = %v", d.errs)
				}
				if o, _ := scope.Outcome(); o != reqscope.Accepted {
					t.Errorf("scope outcome = %s", o)
				}
				checkForwardedEntity(t, hs.upstream, v, "")
			})
		}
	}
}

// checkForwardedEntity asserts the upstream request's HTTP metadata was
// made from the forwarded bytes: exactly one Content-Type of the SOAP
// version (with the signed action in 1.2), SOAPAction in 1.1 only, the
// length, and no header describing the client's representation.
func checkForwardedEntity(t *testing.T, up *recorder, v wssec.SOAPVersion, action string) {
	t.Helper()
	h := up.header
	wantCT, wantSA := ContentType11, []string{`"` + action + `"`}
	if v == wssec.SOAP12 {
		wantCT, wantSA = ContentType12, nil
		if action != "" {
			wantCT += `; action="` + action + `"`
		}
	}
	if got := h.Values("Content-Type"); !equalStrings(got, []string{wantCT}) {
		t.Errorf("forwarded Content-Type = %q, want %q", got, wantCT)
	}
	if got := h.Values("SOAPAction"); !equalStrings(got, wantSA) {
		t.Errorf("forwarded SOAPAction = %q, want %q", got, wantSA)
	}
	if got := h.Values("Content-Length"); !equalStrings(got, []string{strconv.Itoa(len(up.body))}) || up.clen != int64(len(up.body)) {
		t.Errorf("forwarded Content-Length = %q / %d, body is %d bytes", got, up.clen, len(up.body))
	}
	if len(up.te) != 0 || len(up.trailer) != 0 {
		t.Errorf("forwarded Transfer-Encoding %q, trailer %v", up.te, up.trailer)
	}
	for _, k := range []string{"Content-Encoding", "Content-Transfer-Encoding", "Content-MD5", "Digest",
		"Content-Digest", "Repr-Digest", "Content-Range", "Transfer-Encoding", "Trailer"} {
		if got := h.Values(k); len(got) != 0 {
			t.Errorf("forwarded %s: %q", k, got)
		}
	}
}

// TestForwardedEntityHeaders: every header that describes the bytes the
// client sent is removed; what the upstream reads about the body describes
// the body it gets. Content-Language (audience, not encoding) is kept.
func TestForwardedEntityHeaders(t *testing.T) {
	f := getFixture(t)
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			hs := newHarness(t, nil)
			req := httptest.NewRequest(http.MethodPost, "/soap/orders", bytes.NewReader(sign(t, v, f.partner, now)))
			req.Header.Set("Content-Type", strings.SplitN(contentTypeFor(v), ";", 2)[0]+`; charset="UTF-8"; boundary=x; action="urn:evil"`)
			for k, val := range map[string]string{
				"Content-Encoding":          "identity",
				"Content-Transfer-Encoding": "base64",
				"Content-MD5":               "Q2hlY2sgSW50ZWdyaXR5IQ==",
				"Digest":                    "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
				"Content-Digest":            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
				"Repr-Digest":               "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
				"Content-Range":             "bytes 0-10/100",
				"Trailer":                   "Digest",
				"SOAPAction":                `"urn:evil"`,
				"Content-Language":          "de",
			} {
				req.Header.Set(k, val)
			}
			req.Trailer = http.Header{"Digest": {"sha-256=x"}}
			rec, _ := send(hs.h, req)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d\n%s", rec.Code, rec.Body)
			}
			checkForwardedEntity(t, hs.upstream, v, "")
			if got := hs.upstream.header.Get("Content-Language"); got != "de" {
				t.Errorf("Content-Language = %q, want it kept", got)
			}
		})
	}
}

// envelopeWSA is the test envelope with WS-Addressing headers (2005/08).
func envelopeWSA(v wssec.SOAPVersion, action string) string {
	ns := wssec.NSSOAP11
	if v == wssec.SOAP12 {
		ns = wssec.NSSOAP12
	}
	return `<soap:Envelope xmlns:soap="` + ns + `" xmlns:wsa="` + wssec.NSWSA + `"><soap:Header>` +
		`<wsa:To>https://orders.example/soap</wsa:To><wsa:Action>` + action + `</wsa:Action>` +
		`<wsa:MessageID>urn:uuid:6f1b3c2e-8d0a-4c1e-9b7f-0d3c1a2b4e5f</wsa:MessageID></soap:Header><soap:Body>` +
		`<m:Hello xmlns:m="urn:test"><m:Name>World</m:Name></m:Hello></soap:Body></soap:Envelope>`
}

func signXML(t testing.TB, xml string) []byte {
	t.Helper()
	id := getFixture(t).partner
	s := wssec.Signer{Chain: []*x509.Certificate{id.Cert}, Key: id.Key, Now: fixedNow}
	out, err := s.SignBytes([]byte(xml), wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsignedAction adds a wsa:Action after signing: nothing vouches for it.
func unsignedAction(t testing.TB, v wssec.SOAPVersion, action string) []byte {
	t.Helper()
	signed := string(sign(t, v, getFixture(t).partner, now))
	i := strings.Index(signed, "</soap:Header>")
	if i < 0 {
		t.Fatalf("no Header end in\n%s", signed)
	}
	return []byte(signed[:i] + `<wsa:Action xmlns:wsa="` + wssec.NSWSA + `">` + action + `</wsa:Action>` + signed[i:])
}

// TestActionBinding: what a backend dispatches on is verified. With a
// signed wsa:Action, every SOAPAction header and action parameter must be
// empty or equal to it, and the upstream gets the signed one; without one,
// the client's claims are dropped (SOAPAction "" in 1.1, no action in 1.2).
func TestActionBinding(t *testing.T) {
	const signedAction = "urn:test:Hello"
	type tc struct {
		name string
		body func(t *testing.T, v wssec.SOAPVersion) []byte
		// soapAction are the SOAPAction headers sent; ctAction the
		// Content-Type's action parameter ("" none).
		soapAction []string
		ctAction   string
		err        error  // nil: accepted
		forwarded  string // the action the upstream must get
	}
	withWSA := func(t *testing.T, v wssec.SOAPVersion) []byte { return signXML(t, envelopeWSA(v, signedAction)) }
	withPaddedWSA := func(t *testing.T, v wssec.SOAPVersion) []byte {
		return signXML(t, envelopeWSA(v, "\n  "+signedAction+"  \n"))
	}
	plain := func(t *testing.T, v wssec.SOAPVersion) []byte { return sign(t, v, getFixture(t).partner, now) }
	unsigned := func(t *testing.T, v wssec.SOAPVersion) []byte { return unsignedAction(t, v, "urn:test:Delete") }
	tests := []tc{
		{"signed, SOAPAction quoted equal", withWSA, []string{`"urn:test:Hello"`}, "", nil, signedAction},
		{"signed, SOAPAction unquoted equal", withWSA, []string{`urn:test:Hello`}, "", nil, signedAction},
		{"signed, SOAPAction empty quoted", withWSA, []string{`""`}, "", nil, signedAction},
		{"signed, SOAPAction empty", withWSA, []string{``}, "", nil, signedAction},
		{"signed, no SOAPAction", withWSA, nil, "", nil, signedAction},
		{"signed, action parameter equal", withWSA, nil, signedAction, nil, signedAction},
		{"signed with spaces around", withPaddedWSA, []string{`"urn:test:Hello"`}, "", nil, signedAction},
		{"signed, SOAPAction differs", withWSA, []string{`"urn:test:Delete"`}, "", ErrActionMismatch, ""},
		{"signed, SOAPAction unquoted differs", withWSA, []string{`urn:test:Delete`}, "", ErrActionMismatch, ""},
		{"signed, SOAPAction differs in case", withWSA, []string{`"urn:test:hello"`}, "", ErrActionMismatch, ""},
		{"signed, SOAPAction with a prefix", withWSA, []string{`"urn:test:Hello#Delete"`}, "", ErrActionMismatch, ""},
		{"signed, SOAPAction half quoted", withWSA, []string{`"urn:test:Hello`}, "", ErrActionMismatch, ""},
		{"signed, SOAPAction spaces inside quotes", withWSA, []string{`" urn:test:Hello"`}, "", ErrActionMismatch, ""},
		{"signed, second SOAPAction differs", withWSA, []string{`"urn:test:Hello"`, `"urn:test:Delete"`}, "", ErrActionMismatch, ""},
		{"signed, action parameter differs", withWSA, nil, "urn:test:Delete", ErrActionMismatch, ""},
		{"signed, action parameter differs, SOAPAction equal", withWSA, []string{`"urn:test:Hello"`}, "urn:test:Delete", ErrActionMismatch, ""},
		{"signed action not a header value", func(t *testing.T, v wssec.SOAPVersion) []byte {
			return signXML(t, envelopeWSA(v, `urn:test:"Hello"`))
		}, nil, "", ErrActionNotForwardable, ""},
		{"signed action with a space", func(t *testing.T, v wssec.SOAPVersion) []byte {
			return signXML(t, envelopeWSA(v, `urn:test:Hello Delete`))
		}, nil, "", ErrActionNotForwardable, ""},
		{"none signed, SOAPAction dropped", plain, []string{`"urn:test:Delete"`}, "", nil, ""},
		{"none signed, action parameter dropped", plain, nil, "urn:test:Delete", nil, ""},
		{"none signed, both dropped", plain, []string{`"urn:test:Delete"`, `x`}, "urn:test:Delete", nil, ""},
		{"unsigned wsa:Action, SOAPAction dropped", unsigned, []string{`"urn:test:Delete"`}, "urn:test:Delete", nil, ""},
	}
	for _, tt := range tests {
		for _, v := range versions {
			t.Run(tt.name+"/"+v.String(), func(t *testing.T) {
				var d decisions
				hs := bindingHarness(t, &d, nil)
				req := httptest.NewRequest(http.MethodPost, "/soap/orders", bytes.NewReader(tt.body(t, v)))
				ct := contentTypeFor(v)
				if tt.ctAction != "" {
					ct += `; action="` + tt.ctAction + `"`
				}
				req.Header.Set("Content-Type", ct)
				if tt.soapAction != nil {
					req.Header["Soapaction"] = tt.soapAction
				}
				rec, scope := send(hs.h, req)
				if len(d.errs) != 1 {
					t.Fatalf("decisions = %v", d.errs)
				}
				if tt.err != nil {
					checkFault(t, rec, v, http.StatusInternalServerError, "InvalidSecurity", "front-id")
					if !errors.Is(d.errs[0], tt.err) {
						t.Errorf("decision = %v, want %v", d.errs[0], tt.err)
					}
					if hs.upstream.calls != 0 {
						t.Errorf("upstream was called %d times", hs.upstream.calls)
					}
					if o, reason := scope.Outcome(); o != reqscope.Rejected || reason != "InvalidSecurity" {
						t.Errorf("scope outcome = %s %q", o, reason)
					}
					if log := hs.logs.String(); !strings.Contains(log, `"level":"WARN"`) || strings.Contains(log, "World") {
						t.Errorf("audit log:\n%s", log)
					}
					return
				}
				if rec.Code != http.StatusAccepted || hs.upstream.calls != 1 || d.errs[0] != nil {
					t.Fatalf("status %d, upstream calls %d, decision %v\n%s", rec.Code, hs.upstream.calls, d.errs[0], rec.Body)
				}
				checkForwardedEntity(t, hs.upstream, v, tt.forwarded)
				// The forwarded envelope says the same as its headers.
				fwd, err := wssec.ParseEnvelope(hs.upstream.body, wssec.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				var inBody []string
				if fwd.Header != nil {
					for _, el := range fwd.Header.ChildElements() {
						if el.Tag == "Action" {
							inBody = append(inBody, strings.TrimSpace(el.Text()))
						}
					}
				}
				want := []string{}
				if tt.forwarded != "" {
					want = []string{tt.forwarded}
				}
				if !equalStrings(inBody, want) && !(len(inBody) == 0 && len(want) == 0) {
					t.Errorf("forwarded envelope's wsa:Action = %q, want %q", inBody, want)
				}
			})
		}
	}
}

// TestWriteError: the gateway's own responses on a SOAP route are Faults
// with exactly the status asked for, in the version the Content-Type names
// (1.1 when it names none or the method is not POST), with the scope's
// request ID, and a code from the status (or from a soap sentinel).
func TestWriteError(t *testing.T) {
	type tc struct {
		method, ct string
		status     int
		err        error
		wantStatus int
		v          wssec.SOAPVersion
		class      string
	}
	var tests []tc
	for _, st := range []int{400, 404, 405, 413, 415, 429, 500, 502, 503, 504} {
		class := "Client"
		if st >= 500 || st == 429 {
			class = "Server"
		}
		for _, req := range []struct {
			method, ct string
			v          wssec.SOAPVersion
		}{
			{http.MethodPost, "", wssec.SOAP11},
			{http.MethodPost, "application/json", wssec.SOAP11},
			{http.MethodPost, ContentType11, wssec.SOAP11},
			{http.MethodPost, ContentType12, wssec.SOAP12},
			{http.MethodPost, `APPLICATION/SOAP+XML; charset=latin1; action="x"`, wssec.SOAP12},
			{http.MethodPost, `application/soap+xml; charset`, wssec.SOAP12},
			{http.MethodGet, ContentType12, wssec.SOAP11},
		} {
			tests = append(tests, tc{req.method, req.ct, st, errors.New("upstream: dial tcp: refused"), st, req.v, class})
		}
	}
	tests = append(tests,
		tc{http.MethodPost, ContentType12, 415, ErrVersionMismatch, 415, wssec.SOAP12, "VersionMismatch"},
		tc{http.MethodPost, ContentType11, 500, fmt.Errorf("%w: {urn:x}H", wssec.ErrMustUnderstand), 500, wssec.SOAP11, "MustUnderstand"},
		tc{http.MethodPost, ContentType12, 503, ErrBusy, 503, wssec.SOAP12, "Server"},
		tc{http.MethodPost, ContentType11, 200, nil, 500, wssec.SOAP11, "Server"},
		tc{http.MethodPost, ContentType11, 302, nil, 500, wssec.SOAP11, "Server"},
		tc{http.MethodPost, ContentType11, 429, nil, 429, wssec.SOAP11, "Server"},
		// A verification error does not turn a gateway response into a
		// security fault.
		tc{http.MethodPost, ContentType11, 502, wssec.ErrDigestMismatch, 502, wssec.SOAP11, "Server"},
	)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s %s %v", tt.status, tt.method, tt.ct, tt.err), func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/soap/orders", nil)
			if tt.ct != "" {
				req.Header.Set("Content-Type", tt.ct)
			}
			req.Header.Set(RequestIDHeader, "client-sent") // the scope's ID wins
			req = req.WithContext(reqscope.With(req.Context(), reqscope.New("scope-id", "")))
			rec := httptest.NewRecorder()
			rec.Header().Set("Retry-After", "7")
			rec.Header().Set("Content-Encoding", "gzip") // must not describe the fault
			WriteError(rec, req, tt.status, tt.err)
			checkSOAPFault(t, rec, tt.v, tt.wantStatus, tt.class, "scope-id")
			if got := rec.Header().Get("Retry-After"); got != "7" {
				t.Errorf("Retry-After = %q, the caller's 7 must stay", got)
			}
			if got := rec.Header().Get("Content-Encoding"); got != "" {
				t.Errorf("Content-Encoding = %q", got)
			}
			if (tt.wantStatus == 405) != (rec.Header().Get("Allow") == "POST") {
				t.Errorf("Allow = %q", rec.Header().Get("Allow"))
			}
			if tt.err != nil && strings.Contains(rec.Body.String(), tt.err.Error()) {
				t.Errorf("fault leaks the cause:\n%s", rec.Body)
			}
		})
	}
}

// notUnderstoodErr is a MustUnderstand error that names its header block.
type notUnderstoodErr struct{ h wssec.HeaderName }

func (e notUnderstoodErr) Error() string                   { return "not understood" }
func (e notUnderstoodErr) Unwrap() error                   { return wssec.ErrMustUnderstand }
func (e notUnderstoodErr) NotUnderstood() wssec.HeaderName { return e.h }

// TestMustUnderstandFault: an unknown mandatory header block is answered
// with the SOAP MustUnderstand fault, in SOAP 1.2 with a NotUnderstood
// header naming the block when the error names it (and it is a sane QName).
func TestMustUnderstandFault(t *testing.T) {
	tests := []struct {
		err  error
		want string // NotUnderstood qname's namespace, "" for none
	}{
		{fmt.Errorf("%w: {urn:x}H", wssec.ErrMustUnderstand), ""},
		{notUnderstoodErr{wssec.HeaderName{Namespace: `urn:x"&<`, Local: "Audit"}}, `urn:x"&<`},
		{fmt.Errorf("wrapped: %w", notUnderstoodErr{wssec.HeaderName{Namespace: "urn:x", Local: "Au dit"}}), ""},
		{notUnderstoodErr{wssec.HeaderName{Namespace: "", Local: "Audit"}}, ""},
	}
	for _, tt := range tests {
		for _, v := range versions {
			rec := httptest.NewRecorder()
			writeFault(rec, faultFor(tt.err, v), "rid")
			root := checkSOAPFault(t, rec, v, 500, "MustUnderstand", "rid")
			nu := root.FindElement("./Header/NotUnderstood")
			if v == wssec.SOAP11 || tt.want == "" {
				if nu != nil {
					t.Errorf("%v: unexpected NotUnderstood:\n%s", tt.err, rec.Body)
				}
				continue
			}
			if nu == nil || nu.Space != "env" || nu.SelectAttrValue("qname", "") != "h:Audit" ||
				nu.SelectAttrValue("xmlns:h", "") != tt.want {
				t.Errorf("%v: NotUnderstood wrong:\n%s", tt.err, rec.Body)
			}
		}
	}
}

// TestMustUnderstandEndToEnd: a signed message with an unsigned
// mustUnderstand header targeted at wsgate gets the MustUnderstand fault
// and never reaches the upstream.
func TestMustUnderstandEndToEnd(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			mu := "1"
			if v == wssec.SOAP12 {
				mu = "true"
			}
			signed := string(sign(t, v, getFixture(t).partner, now))
			i := strings.Index(signed, "</soap:Header>")
			msg := signed[:i] + `<x:Audit xmlns:x="urn:audit" soap:mustUnderstand="` + mu + `">on</x:Audit>` + signed[i:]
			var d decisions
			hs := bindingHarness(t, &d, nil)
			req := httptest.NewRequest(http.MethodPost, "/soap/orders", strings.NewReader(msg))
			req.Header.Set("Content-Type", contentTypeFor(v))
			rec, scope := send(hs.h, req)
			root := checkSOAPFault(t, rec, v, 500, "MustUnderstand", "front-id")
			nu := root.FindElement("./Header/NotUnderstood")
			if v == wssec.SOAP12 && (nu == nil || nu.SelectAttrValue("qname", "") != "h:Audit" ||
				nu.SelectAttrValue("xmlns:h", "") != "urn:audit") {
				t.Errorf("SOAP 1.2 fault does not name the header block:\n%s", rec.Body)
			}
			if v == wssec.SOAP11 && nu != nil {
				t.Errorf("SOAP 1.1 fault with a NotUnderstood header:\n%s", rec.Body)
			}
			if hs.upstream.calls != 0 || len(d.errs) != 1 || !errors.Is(d.errs[0], wssec.ErrMustUnderstand) {
				t.Errorf("upstream calls %d, decisions %v", hs.upstream.calls, d.errs)
			}
			if o, reason := scope.Outcome(); o != reqscope.Rejected || reason != NameMustUnderstand {
				t.Errorf("scope outcome = %s %q", o, reason)
			}
		})
	}
}

// TestScopeDecisions: behind the front door the handler uses the scope's
// request ID everywhere and records its verdict there: accepted, rejected
// with the fault code, unavailable for the gateway's own failures.
func TestScopeDecisions(t *testing.T) {
	f := getFixture(t)
	tests := []struct {
		name    string
		mutate  func(*Options)
		body    []byte
		outcome reqscope.Outcome
		reason  string
		level   string
	}{
		{"accepted", nil, sign(t, wssec.SOAP11, f.partner, now), reqscope.Accepted, "", "INFO"},
		{"tampered", nil, bytes.Replace(sign(t, wssec.SOAP11, f.partner, now), []byte("World"), []byte("Mallory"), 1),
			reqscope.Rejected, "FailedCheck", "WARN"},
		{"trust unavailable", func(o *Options) { o.Verifier.Trust = brokenTrust{} }, sign(t, wssec.SOAP11, f.partner, now),
			reqscope.Unavailable, "InvalidSecurity", "ERROR"},
		{"busy", func(o *Options) {
			b := NewBudget(1)
			_, _ = b.Acquire(context.Background(), 1)
			o.Budget, o.BudgetWait = b, time.Millisecond
		}, sign(t, wssec.SOAP11, f.partner, now), reqscope.Unavailable, NameServiceUnavailable, "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d decisions
			hs := bindingHarness(t, &d, tt.mutate)
			req := httptest.NewRequest(http.MethodPost, "/soap/orders", bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", ContentType11)
			req.Header.Set(RequestIDHeader, "client-id")
			rec, scope := send(hs.h, req)
			if got := rec.Header().Values(RequestIDHeader); !equalStrings(got, []string{"front-id"}) {
				t.Errorf("X-Request-ID = %q", got)
			}
			if o, reason := scope.Outcome(); o != tt.outcome || reason != tt.reason {
				t.Errorf("scope outcome = %s %q, want %s %q", o, reason, tt.outcome, tt.reason)
			}
			if len(d.all) != 1 || d.all[0].Outcome != tt.outcome || d.all[0].Reason != tt.reason {
				t.Errorf("decisions = %+v, want one %s %q", d.all, tt.outcome, tt.reason)
			}
			log := hs.logs.String()
			if !strings.Contains(log, `"level":"`+tt.level+`"`) || !strings.Contains(log, `"request_id":"front-id"`) {
				t.Errorf("audit log:\n%s", log)
			}
			if tt.outcome == reqscope.Accepted {
				if got := hs.upstream.header.Get(RequestIDHeader); got != "front-id" {
					t.Errorf("forwarded X-Request-ID = %q", got)
				}
			} else if hs.upstream.calls != 0 {
				t.Errorf("upstream calls = %d", hs.upstream.calls)
			}
		})
	}
}

// TestWSDLHook: GET ?wsdl goes to Options.WSDL when one is set; any other
// GET is still 405, and POST is unaffected.
func TestWSDLHook(t *testing.T) {
	hs := newHarness(t, func(o *Options) {
		o.WSDL = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/xml")
			_, _ = w.Write([]byte("<definitions/>"))
		})
	})
	for _, q := range []string{"wsdl", "WSDL"} {
		rec, _ := send(hs.h, httptest.NewRequest(http.MethodGet, "/soap/orders?"+q, nil))
		if rec.Code != http.StatusOK || rec.Body.String() != "<definitions/>" {
			t.Errorf("GET ?%s = %d %s", q, rec.Code, rec.Body)
		}
	}
	for _, target := range []string{"/soap/orders", "/soap/orders?wsdl=1", "/soap/orders?xsd"} {
		rec, _ := send(hs.h, httptest.NewRequest(http.MethodGet, target, nil))
		checkSOAPFault(t, rec, wssec.SOAP11, 405, "Client", "front-id")
	}
	rec, _ := send(hs.h, httptest.NewRequest(http.MethodPost, "/soap/orders?wsdl", nil))
	checkSOAPFault(t, rec, wssec.SOAP11, 415, "Client", "front-id")
	if hs.upstream.calls != 0 {
		t.Errorf("upstream calls = %d", hs.upstream.calls)
	}
}

// FuzzBinding feeds arbitrary HTTP metadata and signed actions to the
// binding checks: no panic; what passes is a SOAP media type in UTF-8; the
// forwarded action is the signed one or nothing; and every header value the
// upstream gets is a valid HTTP field value.
func FuzzBinding(f *testing.F) {
	f.Add(ContentType11, "", `"urn:a"`, "urn:a")
	f.Add(ContentType12+`; action="urn:a"`, "identity", "", "urn:a")
	f.Add(`text/xml; charset*=utf-8''utf-8`, "gzip", `""`, "")
	f.Add(`application/soap+xml; action="a\"b"`, "", "a", `a"b`)
	f.Fuzz(func(t *testing.T, ct, ce, soapAction, signed string) {
		r := httptest.NewRequest(http.MethodPost, "/soap/orders", nil)
		r.Header.Set("Content-Type", ct)
		if ce != "" {
			r.Header.Set("Content-Encoding", ce)
		}
		r.Header.Set("SOAPAction", soapAction)
		b, err := readBinding(r)
		if err != nil {
			if !errors.Is(err, ErrMediaType) && !errors.Is(err, ErrCharset) && !errors.Is(err, ErrContentEncoding) {
				t.Fatalf("readBinding(%q, %q) = %v", ct, ce, err)
			}
			return
		}
		if b.version != wssec.SOAP11 && b.version != wssec.SOAP12 {
			t.Fatalf("readBinding(%q) version %v", ct, b.version)
		}
		action, err := forwardedAction(signed, b, r)
		if err != nil {
			if !errors.Is(err, ErrActionMismatch) && !errors.Is(err, ErrActionNotForwardable) {
				t.Fatalf("forwardedAction = %v", err)
			}
			return
		}
		if action != signed {
			t.Fatalf("forwarded action %q, signed %q", action, signed)
		}
		out := forwardRequest(r, []byte("<x/>"), b.version, action, "rid")
		for k, vs := range out.Header {
			for _, v := range vs {
				if !validFieldValue(v) {
					t.Fatalf("forwarded %s: %q is not a valid field value", k, v)
				}
			}
		}
	})
}

// validFieldValue is RFC 9110's field-value: visible ASCII, obs-text,
// spaces and tabs, no CR, LF or NUL.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
