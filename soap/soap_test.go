package soap

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"wsgate/internal/pki"
	"wsgate/internal/reqscope"
	"wsgate/wssec"
)

// now is the fixed clock of every test.
var now = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return now }

// certs is a static trust source.
type certs []*x509.Certificate

func (c certs) Certificates() ([]*x509.Certificate, error) { return c, nil }

// brokenTrust is a trust source whose backend is down.
type brokenTrust struct{}

func (brokenTrust) Certificates() ([]*x509.Certificate, error) {
	return nil, errors.New("secret never loaded")
}

// recorder is an upstream that records what reached it.
type recorder struct {
	mu       sync.Mutex
	calls    int
	body     []byte
	header   http.Header
	clen     int64
	te       []string
	trailer  http.Header
	response func(w http.ResponseWriter)
}

func (u *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls++
	u.body, _ = io.ReadAll(r.Body)
	u.header = r.Header.Clone()
	u.clen = r.ContentLength
	u.te = r.TransferEncoding
	u.trailer = r.Trailer
	if u.response != nil {
		u.response(w)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set(RequestIDHeader, r.Header.Get(RequestIDHeader)) // echoes it, as many services do
	w.Header().Set("X-Upstream", "yes")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte("<upstream-reply/>"))
}

// fixture is a partner that signs and a gateway that trusts it.
type fixture struct {
	ca, partner, stranger *pki.Identity
}

var (
	fixtureOnce sync.Once
	fixtureVal  *fixture
	fixtureErr  error
)

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixtureOnce.Do(func() {
		is := pki.Issuer{Now: fixedNow}
		f := &fixture{}
		if f.ca, fixtureErr = is.Issue(pki.Options{CommonName: "test CA", IsCA: true}, nil); fixtureErr != nil {
			return
		}
		if f.partner, fixtureErr = is.Issue(pki.Options{CommonName: "partner"}, f.ca); fixtureErr != nil {
			return
		}
		if f.stranger, fixtureErr = is.Issue(pki.Options{CommonName: "stranger"}, nil); fixtureErr != nil {
			return
		}
		fixtureVal = f
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureVal
}

func envelope(v wssec.SOAPVersion) string {
	ns := wssec.NSSOAP11
	if v == wssec.SOAP12 {
		ns = wssec.NSSOAP12
	}
	return `<soap:Envelope xmlns:soap="` + ns + `"><soap:Header/><soap:Body>` +
		`<m:Hello xmlns:m="urn:test"><m:Name>World</m:Name></m:Hello></soap:Body></soap:Envelope>`
}

// sign signs the test envelope as id at clock time at.
func sign(t testing.TB, v wssec.SOAPVersion, id *pki.Identity, at time.Time) []byte {
	t.Helper()
	s := wssec.Signer{Chain: []*x509.Certificate{id.Cert}, Key: id.Key, Now: func() time.Time { return at }}
	out, err := s.SignBytes([]byte(envelope(v)), wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type harness struct {
	h        *Handler
	upstream *recorder
	logs     *bytes.Buffer
}

func newHarness(t testing.TB, mutate func(*Options)) *harness {
	t.Helper()
	f := getFixture(t)
	up := &recorder{}
	logs := &bytes.Buffer{}
	opts := Options{
		Route: "orders",
		Verifier: &wssec.Verifier{
			Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
			Trust:  certs{f.ca.Cert},
			Replay: wssec.NewMemoryReplayCache(fixedNow),
			Now:    fixedNow,
		},
		StripSecurityHeader: true,
		Upstream:            up,
		Logger:              slog.New(slog.NewJSONHandler(logs, nil)),
		NewRequestID:        func() string { return "generated-id" },
	}
	if mutate != nil {
		mutate(&opts)
	}
	return &harness{h: New(opts), upstream: up, logs: logs}
}

func post(h http.Handler, body []byte, contentType, requestID string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/soap/orders", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("SOAPAction", `"urn:test:Hello"`)
	if requestID != "" {
		req.Header.Set(RequestIDHeader, requestID)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func contentTypeFor(v wssec.SOAPVersion) string {
	if v == wssec.SOAP12 {
		return ContentType12
	}
	return ContentType11
}

func TestAcceptedIsForwardedVerifiedAndStripped(t *testing.T) {
	for _, v := range []wssec.SOAPVersion{wssec.SOAP11, wssec.SOAP12} {
		t.Run(v.String(), func(t *testing.T) {
			hs := newHarness(t, nil)
			signed := sign(t, v, getFixture(t).partner, now)
			rec := post(hs.h, signed, contentTypeFor(v), "client-id-1")

			// The upstream response comes back unchanged.
			if rec.Code != http.StatusAccepted || rec.Body.String() != "<upstream-reply/>" ||
				rec.Header().Get("X-Upstream") != "yes" || rec.Header().Get("Content-Type") != "text/xml; charset=utf-8" {
				t.Fatalf("response = %d %q %v", rec.Code, rec.Body, rec.Header())
			}
			if got := rec.Header().Values(RequestIDHeader); len(got) != 1 || got[0] != "client-id-1" {
				t.Errorf("X-Request-ID = %q, want exactly [client-id-1]", got)
			}

			up := hs.upstream
			if up.calls != 1 {
				t.Fatalf("upstream calls = %d, want 1", up.calls)
			}
			if bytes.Contains(up.body, []byte("Security")) || bytes.Contains(up.body, []byte("Signature")) {
				t.Errorf("forwarded body still carries the Security header:\n%s", up.body)
			}
			if !bytes.Contains(up.body, []byte("<m:Name>World</m:Name>")) {
				t.Errorf("forwarded body lost the Body:\n%s", up.body)
			}
			if up.clen != int64(len(up.body)) || up.header.Get("Content-Length") != strconv.Itoa(len(up.body)) {
				t.Errorf("Content-Length = %d / %q, body is %d bytes", up.clen, up.header.Get("Content-Length"), len(up.body))
			}
			// No wsa:Action is signed: the client's SOAPAction is not
			// forwarded; SOAP 1.1 gets "" (the Body says the intent).
			wantAction := []string{`""`}
			if v == wssec.SOAP12 {
				wantAction = nil
			}
			if got := up.header.Values("Content-Type"); len(got) != 1 || got[0] != contentTypeFor(v) {
				t.Errorf("forwarded Content-Type = %q", got)
			}
			if got := up.header.Values("SOAPAction"); !equalStrings(got, wantAction) {
				t.Errorf("forwarded SOAPAction = %q, want %q", got, wantAction)
			}
			if up.header.Get(RequestIDHeader) != "client-id-1" {
				t.Errorf("forwarded X-Request-ID = %q", up.header.Get(RequestIDHeader))
			}
			// What is forwarded parses as an envelope of the same version.
			env, err := wssec.ParseEnvelope(up.body, wssec.Limits{})
			if err != nil || env.Version != v {
				t.Errorf("forwarded envelope: version %v, err %v", env, err)
			}
			log := hs.logs.String()
			for _, want := range []string{`"outcome":"accepted"`, `"route":"orders"`, `"request_id":"client-id-1"`,
				`"soap_version":"` + v.String() + `"`, `"signer":"CN=partner,O=wsgate demo"`} {
				if !strings.Contains(log, want) {
					t.Errorf("audit log lacks %s:\n%s", want, log)
				}
			}
		})
	}
}

func TestKeepSecurityHeaderWhenNotStripping(t *testing.T) {
	hs := newHarness(t, func(o *Options) { o.StripSecurityHeader = false })
	rec := post(hs.h, sign(t, wssec.SOAP11, getFixture(t).partner, now), ContentType11, "")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d: %s", rec.Code, rec.Body)
	}
	if !bytes.Contains(hs.upstream.body, []byte("Signature")) {
		t.Errorf("Security header was stripped:\n%s", hs.upstream.body)
	}
}

func TestRejected(t *testing.T) {
	f := getFixture(t)
	type tc struct {
		name   string
		mutate func(*Options)
		body   func(t *testing.T, v wssec.SOAPVersion) []byte
		code   string
		status int // for a message whose SOAP version can be told
	}
	tests := []tc{
		{"not xml", nil, func(t *testing.T, v wssec.SOAPVersion) []byte {
			return []byte(strings.TrimSuffix(envelope(v), "</soap:Envelope>") + "<oops")
		}, "InvalidSecurity", 500},
		{"doctype", nil, func(t *testing.T, v wssec.SOAPVersion) []byte {
			return []byte(`<!DOCTYPE soap:Envelope [<!ENTITY x "y">]>` + envelope(v))
		}, "InvalidSecurity", 500},
		{"too large", func(o *Options) { o.MaxBodyBytes = 512 }, func(t *testing.T, v wssec.SOAPVersion) []byte {
			return sign(t, v, f.partner, now)
		}, "InvalidSecurity", 413},
		{"tampered", nil, func(t *testing.T, v wssec.SOAPVersion) []byte {
			return bytes.Replace(sign(t, v, f.partner, now), []byte("World"), []byte("Mallory"), 1)
		}, "FailedCheck", 500},
		{"unsigned", nil, func(t *testing.T, v wssec.SOAPVersion) []byte {
			return []byte(envelope(v))
		}, "InvalidSecurity", 500},
		{"expired", nil, func(t *testing.T, v wssec.SOAPVersion) []byte {
			return sign(t, v, f.partner, now.Add(-time.Hour))
		}, "MessageExpired", 500},
		{"untrusted signer", nil, func(t *testing.T, v wssec.SOAPVersion) []byte {
			return sign(t, v, f.stranger, now)
		}, "InvalidSecurityToken", 500},
		{"trust unavailable", func(o *Options) { o.Verifier.Trust = brokenTrust{} }, func(t *testing.T, v wssec.SOAPVersion) []byte {
			return sign(t, v, f.partner, now)
		}, "InvalidSecurity", 503},
	}
	for _, tt := range tests {
		for _, v := range []wssec.SOAPVersion{wssec.SOAP11, wssec.SOAP12} {
			t.Run(tt.name+"/"+v.String(), func(t *testing.T) {
				hs := newHarness(t, tt.mutate)
				body := tt.body(t, v)
				rec := post(hs.h, body, contentTypeFor(v), "")
				checkFault(t, rec, v, tt.status, tt.code, "generated-id")
				if hs.upstream.calls != 0 {
					t.Errorf("upstream was called %d times", hs.upstream.calls)
				}
				log := hs.logs.String()
				outcome, level := "rejected", "WARN"
				if tt.status == http.StatusServiceUnavailable {
					outcome, level = "unavailable", "ERROR"
				}
				for _, want := range []string{`"outcome":"` + outcome + `"`, `"fault_code":"` + tt.code + `"`,
					`"request_id":"generated-id"`, `"reason":"`, `"level":"` + level + `"`} {
					if !strings.Contains(log, want) {
						t.Errorf("audit log lacks %s:\n%s", want, log)
					}
				}
				if strings.Contains(log, "World") || strings.Contains(log, "Mallory") {
					t.Errorf("audit log leaks the body:\n%s", log)
				}
			})
		}
	}
}

func TestReplayRejected(t *testing.T) {
	hs := newHarness(t, nil)
	signed := sign(t, wssec.SOAP11, getFixture(t).partner, now)
	if rec := post(hs.h, signed, ContentType11, ""); rec.Code != http.StatusAccepted {
		t.Fatalf("first: status %d: %s", rec.Code, rec.Body)
	}
	rec := post(hs.h, signed, ContentType11, "")
	checkFault(t, rec, wssec.SOAP11, 500, "InvalidSecurity", "generated-id")
	if hs.upstream.calls != 1 {
		t.Errorf("upstream calls = %d, want 1", hs.upstream.calls)
	}
}

// A message that names no SOAP version gets a 400 in the SOAP 1.1 shape,
// whatever its Content-Type says.
func TestUnknownVersionIs400(t *testing.T) {
	for _, body := range []string{"", "hello", "<x/>", `<Envelope xmlns="urn:nope"><Body/></Envelope>`} {
		for _, ct := range []string{ContentType11, ContentType12} {
			hs := newHarness(t, nil)
			rec := post(hs.h, []byte(body), ct, "")
			checkFault(t, rec, wssec.SOAPUnknown, 400, "InvalidSecurity", "generated-id")
			if hs.upstream.calls != 0 {
				t.Errorf("%q: upstream called", body)
			}
		}
	}
}

func TestRequestID(t *testing.T) {
	tests := []struct{ sent, want string }{
		{"abc-123_X.y", "abc-123_X.y"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), "generated-id"},
		{"", "generated-id"},
		{"<script>", "generated-id"},
		{"a b", "generated-id"},
		{"id\"><x", "generated-id"},
		{"é", "generated-id"},
	}
	for _, tt := range tests {
		hs := newHarness(t, nil)
		rec := post(hs.h, []byte("not xml"), ContentType11, tt.sent)
		if got := rec.Header().Get(RequestIDHeader); got != tt.want {
			t.Errorf("sent %q: X-Request-ID = %q, want %q", tt.sent, got, tt.want)
		}
		checkFault(t, rec, wssec.SOAPUnknown, 400, "InvalidSecurity", tt.want)
	}
}

// Without a front door the handler makes its own scope; the default ID is
// reqscope's random one.
func TestDefaultRequestIDIsRandom(t *testing.T) {
	hs := newHarness(t, func(o *Options) { o.NewRequestID = nil })
	a := post(hs.h, []byte("x"), ContentType11, "").Header().Get(RequestIDHeader)
	b := post(hs.h, []byte("x"), ContentType11, "").Header().Get(RequestIDHeader)
	if a == b || len(a) != 32 || !reqscope.SaneID(a) {
		t.Errorf("request IDs = %q, %q", a, b)
	}
}

func TestFaultFor(t *testing.T) {
	tests := []struct {
		err    error
		v      wssec.SOAPVersion
		status int
		code   string
	}{
		{wssec.ErrDigestMismatch, wssec.SOAP11, 500, "FailedCheck"},
		{wssec.ErrInvalidSignature, wssec.SOAP12, 500, "FailedCheck"},
		{wssec.ErrSHA1NotAllowed, wssec.SOAP11, 500, "UnsupportedAlgorithm"},
		{wssec.ErrAuthenticationFailed, wssec.SOAP11, 500, "FailedAuthentication"},
		{wssec.ErrTokenUnavailable, wssec.SOAP11, 500, "SecurityTokenUnavailable"},
		{wssec.ErrCertificateExpired, wssec.SOAP11, 500, "InvalidSecurityToken"},
		{wssec.ErrTimestampFuture, wssec.SOAP11, 500, "MessageExpired"},
		{wssec.ErrReplay, wssec.SOAP11, 500, "InvalidSecurity"},
		{wssec.ErrNotXML, wssec.SOAPUnknown, 400, "InvalidSecurity"},
		{errReadBody, wssec.SOAPUnknown, 400, "InvalidSecurity"},
		{wssec.ErrTrustUnavailable, wssec.SOAP11, 503, "InvalidSecurity"},
		{wssec.ErrReplayUnavailable, wssec.SOAP12, 503, "InvalidSecurity"},
		{wssec.ErrTooLarge, wssec.SOAP11, 413, "InvalidSecurity"},
		{wssec.ErrTooLarge, wssec.SOAPUnknown, 413, "InvalidSecurity"},
		{errSigningUnavailable, wssec.SOAP11, 503, "InvalidSecurity"},
	}
	for _, tt := range tests {
		f := faultFor(tt.err, tt.v)
		if f.status != tt.status || f.wsse != tt.code || f.name != tt.code || f.reason == "" {
			t.Errorf("faultFor(%v) = %+v, want %d %s", tt.err, f, tt.status, tt.code)
		}
		if (tt.status == 503) != (f.reason == reasonUnavailable) {
			t.Errorf("faultFor(%v) reason = %q", tt.err, f.reason)
		}
	}
}

// checkFault asserts the response is a well-formed SOAP Fault of the given shape.
func checkFault(t *testing.T, rec *httptest.ResponseRecorder, v wssec.SOAPVersion, status int, code, requestID string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d\n%s", rec.Code, status, rec.Body)
	}
	if got := rec.Header().Get(RequestIDHeader); got != requestID {
		t.Errorf("X-Request-ID = %q, want %q", got, requestID)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(rec.Body.Bytes()); err != nil {
		t.Fatalf("fault is not XML: %v\n%s", err, rec.Body)
	}
	root := doc.Root()
	text := func(path string) string {
		el := root.FindElement(path)
		if el == nil {
			t.Errorf("fault lacks %s:\n%s", path, rec.Body)
			return ""
		}
		return el.Text()
	}
	if got := root.SelectAttrValue("xmlns:wsse", ""); got != wssec.NSWSSE {
		t.Errorf("xmlns:wsse = %q", got)
	}
	if v == wssec.SOAP12 {
		if ct := rec.Header().Get("Content-Type"); ct != ContentType12 {
			t.Errorf("Content-Type = %q", ct)
		}
		if root.NamespaceURI() != wssec.NSSOAP12 {
			t.Errorf("envelope namespace = %q", root.NamespaceURI())
		}
		wantValue := "env:Sender"
		if status == http.StatusServiceUnavailable {
			wantValue = "env:Receiver"
		}
		if got := text("./Body/Fault/Code/Value"); got != wantValue {
			t.Errorf("Code/Value = %q, want %q", got, wantValue)
		}
		if got := text("./Body/Fault/Code/Subcode/Value"); got != "wsse:"+code {
			t.Errorf("Subcode/Value = %q, want wsse:%s", got, code)
		}
		checkReason(t, text("./Body/Fault/Reason/Text"), status, code)
		if got := text("./Body/Fault/Detail/RequestID"); got != requestID {
			t.Errorf("Detail/RequestID = %q", got)
		}
		return
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType11 {
		t.Errorf("Content-Type = %q", ct)
	}
	if root.NamespaceURI() != wssec.NSSOAP11 {
		t.Errorf("envelope namespace = %q", root.NamespaceURI())
	}
	if got := text("./Body/Fault/faultcode"); got != "wsse:"+code {
		t.Errorf("faultcode = %q, want wsse:%s", got, code)
	}
	checkReason(t, text("./Body/Fault/faultstring"), status, code)
	if got := text("./Body/Fault/detail/RequestID"); got != requestID {
		t.Errorf("detail/RequestID = %q", got)
	}
}

func checkReason(t *testing.T, got string, status int, code string) {
	t.Helper()
	want := faultStrings[code]
	if status == http.StatusServiceUnavailable {
		want = reasonUnavailable
	}
	if got != want {
		t.Errorf("fault reason = %q, want %q", got, want)
	}
}

// FuzzHandler feeds arbitrary bodies to the edge: it must never panic, never
// forward an unverified message, and always answer with a fault.
func FuzzHandler(f *testing.F) {
	f.Add([]byte(envelope(wssec.SOAP11)), ContentType11)
	f.Add([]byte(envelope(wssec.SOAP12)), ContentType12)
	f.Add([]byte(envelope(wssec.SOAP12)), ContentType11)
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`), "text/xml")
	f.Add([]byte("not xml"), `application/soap+xml; charset="UTF-8"; action="urn:x"`)
	f.Add([]byte("not xml"), "text/xml; charset=latin1")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		hs := newHarness(t, func(o *Options) { o.Logger = nil })
		rec := post(hs.h, body, contentType, "")
		if hs.upstream.calls != 0 {
			t.Fatalf("unsigned input reached the upstream: %q", body)
		}
		if rec.Code != 400 && rec.Code != 415 && rec.Code != 500 {
			t.Fatalf("status %d for %q as %q", rec.Code, body, contentType)
		}
		ct := rec.Header().Get("Content-Type")
		if ct != ContentType11 && ct != ContentType12 {
			t.Fatalf("Content-Type %q", ct)
		}
	})
}
