package wssec

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// testNow is the instant the golden messages are judged at.
var testNow = time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

type staticCerts []*x509.Certificate

func (s staticCerts) Certificates() ([]*x509.Certificate, error) { return s, nil }

func readPEMCerts(tb testing.TB, names ...string) staticCerts {
	tb.Helper()
	var out staticCerts
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "pki", name))
		if err != nil {
			tb.Fatal(err)
		}
		for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, cert)
		}
	}
	return out
}

func readPEMKey(tb testing.TB, name string) crypto.Signer {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "pki", name))
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(data)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return key.(crypto.Signer)
}

func golden(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "wssec", name))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func defaultVerifier(tb testing.TB) *Verifier {
	return &Verifier{
		Policy: Policy{RequireSigned: []Part{PartBody, PartTimestamp}},
		Trust:  readPEMCerts(tb, "trust.pem"),
		Now:    fixedNow,
	}
}

func TestParseEnvelopeHardening(t *testing.T) {
	const soap11 = `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">%s</s:Envelope>`
	deep := strings.Repeat("<a>", 70) + strings.Repeat("</a>", 70)
	manyAttrs := "<a"
	for i := range 70 {
		manyAttrs += fmt.Sprintf(` x%d="1"`, i)
	}
	manyAttrs += "/>"
	tests := []struct {
		name   string
		msg    string
		limits Limits
		want   error
	}{
		{"empty", "", Limits{}, ErrNotXML},
		{"whitespace", " \n ", Limits{}, ErrNotXML},
		{"text", "hello", Limits{}, ErrNotXML},
		{"unclosed", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`, Limits{}, ErrNotXML},
		{"two roots", fmt.Sprintf(soap11, "<s:Body/>") + "<x/>", Limits{}, ErrNotXML},
		{"duplicate attribute", fmt.Sprintf(soap11, `<s:Body a="1" a="2"/>`), Limits{}, ErrNotXML},
		{"too large", fmt.Sprintf(soap11, "<s:Body/>"), Limits{MaxBytes: 10}, ErrTooLarge},
		{"too deep", fmt.Sprintf(soap11, "<s:Body>"+deep+"</s:Body>"), Limits{}, ErrTooDeep},
		{"too many elements", fmt.Sprintf(soap11, "<s:Body>"+strings.Repeat("<a/>", 20)+"</s:Body>"), Limits{MaxElements: 10}, ErrTooManyElements},
		{"too many attributes", fmt.Sprintf(soap11, "<s:Body>"+manyAttrs+"</s:Body>"), Limits{}, ErrTooManyElements},
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]>` + fmt.Sprintf(soap11, "<s:Body>&a;</s:Body>"), Limits{}, ErrDTD},
		{"doctype after comment", `<?xml version="1.0"?><!-- c --><!DOCTYPE x>` + fmt.Sprintf(soap11, "<s:Body/>"), Limits{}, ErrDTD},
		{"processing instruction", fmt.Sprintf(soap11, "<s:Body><?evil x?></s:Body>"), Limits{}, ErrDTD},
		{"latin1", `<?xml version="1.0" encoding="ISO-8859-1"?>` + fmt.Sprintf(soap11, "<s:Body/>"), Limits{}, ErrUnsupportedEncoding},
		{"not soap", `<Envelope><Body/></Envelope>`, Limits{}, ErrNotEnvelope},
		{"no body", fmt.Sprintf(soap11, "<s:Header/>"), Limits{}, ErrNotEnvelope},
		{"header after body", fmt.Sprintf(soap11, "<s:Body/><s:Header/>"), Limits{}, ErrEnvelopeShape},
		{"two headers", fmt.Sprintf(soap11, "<s:Header/><s:Header/><s:Body/>"), Limits{}, ErrEnvelopeShape},
		{"two bodies", fmt.Sprintf(soap11, "<s:Body/><s:Body/>"), Limits{}, ErrMultipleBodies},
		{"soap12 stray element", `<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/><x/></e:Envelope>`, Limits{}, ErrEnvelopeShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEnvelope([]byte(tt.msg), tt.limits)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseEnvelopeVersions(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		want SOAPVersion
	}{
		{`<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`, SOAP11},
		{`<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Header/><Body/></Envelope>`, SOAP12},
	} {
		env, err := ParseEnvelope([]byte(tt.msg), Limits{})
		if err != nil || env.Version != tt.want || env.Body == nil {
			t.Errorf("%q: got %v, %v", tt.msg, env, err)
		}
		if DetectVersion([]byte(tt.msg)) != tt.want {
			t.Errorf("DetectVersion(%q) != %v", tt.msg, tt.want)
		}
	}
}

func TestParseDN(t *testing.T) {
	tests := []struct {
		a, b  string
		equal bool
	}{
		{"CN=client", "cn=client", true},
		{"CN=wsgate test CA,O=wsgate demo", "O=wsgate demo, CN=wsgate test CA", true},
		{"CN=a\\,b,O=x", `CN="a,b", O=x`, true},
		{"CN=a;O=x", "CN=a,O=x", true},
		{"2.5.4.3=client", "CN=client", true},
		{"E=a@example.com,CN=x", "EMAILADDRESS=a@example.com,CN=x", true},
		{"CN=a,O=x", "CN=a,O=y", false},
		{"CN=a", "CN=a,O=x", false},
	}
	for _, tt := range tests {
		a, errA := parseDN(tt.a)
		b, errB := parseDN(tt.b)
		if errA != nil || errB != nil {
			t.Fatalf("%q / %q: %v / %v", tt.a, tt.b, errA, errB)
		}
		if a.equal(b) != tt.equal {
			t.Errorf("%q == %q: got %v", tt.a, tt.b, !tt.equal)
		}
	}
	for _, bad := range []string{"", "client", "FOO=bar"} {
		if _, err := parseDN(bad); err == nil {
			t.Errorf("parseDN(%q) succeeded", bad)
		}
	}
}

func TestTimestampRules(t *testing.T) {
	const wsu = `xmlns:wsu="` + NSWSU + `"`
	p := Policy{}
	tests := []struct {
		name   string
		xml    string
		policy Policy
		want   error
	}{
		{"ok", `<wsu:Created>2026-01-01T00:00:00Z</wsu:Created><wsu:Expires>2026-01-01T00:05:00Z</wsu:Expires>`, p, nil},
		{"ok without expires", `<wsu:Created>2026-01-01T00:00:00.123Z</wsu:Created>`, p, nil},
		{"no created", `<wsu:Expires>2026-01-01T00:05:00Z</wsu:Expires>`, p, ErrTimestampMalformed},
		{"two created", `<wsu:Created>2026-01-01T00:00:00Z</wsu:Created><wsu:Created>2026-01-01T00:00:00Z</wsu:Created>`, p, ErrTimestampMalformed},
		{"two expires", `<wsu:Created>2026-01-01T00:00:00Z</wsu:Created><wsu:Expires>2026-01-01T00:05:00Z</wsu:Expires><wsu:Expires>2026-01-01T00:05:00Z</wsu:Expires>`, p, ErrTimestampMalformed},
		{"expires before created", `<wsu:Created>2026-01-01T00:00:00Z</wsu:Created><wsu:Expires>2025-12-31T23:59:00Z</wsu:Expires>`, p, ErrTimestampMalformed},
		{"not utc", `<wsu:Created>2026-01-01T01:00:00+01:00</wsu:Created>`, p, ErrTimestampMalformed},
		{"garbage", `<wsu:Created>yesterday</wsu:Created>`, p, ErrTimestampMalformed},
		{"extra child", `<wsu:Created>2026-01-01T00:00:00Z</wsu:Created><wsu:Other/>`, p, ErrTimestampMalformed},
		{"expires required", `<wsu:Created>2026-01-01T00:00:00Z</wsu:Created>`, Policy{RequireExpires: true}, ErrTimestampMalformed},
		{"too old", `<wsu:Created>2025-12-31T23:55:00Z</wsu:Created>`, p, ErrTimestampExpired},
		{"expired", `<wsu:Created>2026-01-01T00:00:00Z</wsu:Created><wsu:Expires>2026-01-01T00:00:00Z</wsu:Expires>`, Policy{FutureSkew: time.Second}, ErrTimestampExpired},
		{"future", `<wsu:Created>2026-01-01T00:02:01Z</wsu:Created>`, p, ErrTimestampFuture},
		{"within future skew", `<wsu:Created>2026-01-01T00:02:00Z</wsu:Created>`, p, nil},
		{"custom ttl", `<wsu:Created>2026-01-01T00:00:00Z</wsu:Created>`, Policy{TimestampTTL: 30 * time.Second}, ErrTimestampExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := etree.NewDocument()
			if err := doc.ReadFromString(`<wsu:Timestamp ` + wsu + `>` + tt.xml + `</wsu:Timestamp>`); err != nil {
				t.Fatal(err)
			}
			ts, err := parseTimestamp(doc.Root())
			if err == nil {
				err = ts.checkFreshness(tt.policy, testNow)
			}
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMemoryReplayCache(t *testing.T) {
	now := testNow
	c := NewMemoryReplayCache(func() time.Time { return now })
	ctx := context.Background()
	k1, k2 := replayKey("t", []byte("a")), replayKey("t", []byte("b"))
	if seen, err := c.Remember(ctx, k1, now.Add(time.Minute)); seen || err != nil {
		t.Fatalf("first: %v %v", seen, err)
	}
	if seen, _ := c.Remember(ctx, k1, now.Add(time.Minute)); !seen {
		t.Fatal("second sighting not reported")
	}
	if seen, _ := c.Remember(ctx, k2, now.Add(time.Minute)); seen {
		t.Fatal("distinct key reported as seen")
	}
	now = now.Add(2 * time.Minute)
	if seen, _ := c.Remember(ctx, k1, now.Add(time.Minute)); seen {
		t.Fatal("expired entry still reported")
	}
	c.maxEntries = 2
	if _, err := c.Remember(ctx, replayKey("t", []byte("c")), now.Add(time.Minute)); err != nil {
		t.Fatalf("after sweep: %v", err)
	}
	if _, err := c.Remember(ctx, replayKey("t", []byte("d")), now.Add(time.Minute)); !errors.Is(err, ErrReplayUnavailable) {
		t.Fatalf("full cache: got %v, want ErrReplayUnavailable", err)
	}
	if replayKey("t", []byte("ab"), []byte("c")) == replayKey("t", []byte("a"), []byte("bc")) {
		t.Fatal("replay key is ambiguous across field boundaries")
	}
}

func TestVerifiedBytesStripsOnlyTheProcessedHeader(t *testing.T) {
	v := defaultVerifier(t)
	res, err := v.Verify(context.Background(), golden(t, "valid-soap11-rsa.xml"))
	if err != nil {
		t.Fatal(err)
	}
	stripped, err := res.Bytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stripped, []byte("Security")) || !bytes.Contains(stripped, []byte("Body")) {
		t.Fatalf("strip: %s", stripped)
	}
	full, err := res.Bytes(false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(full, []byte("wsse:Security")) {
		t.Fatal("Bytes(true) modified the tree")
	}
	// What was forwarded still verifies: the tree round-trips.
	if _, err := v.Verify(context.Background(), full); err != nil {
		t.Fatalf("re-verify serialized tree: %v", err)
	}
	env, err := ParseEnvelope(stripped, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := excC14N(res.Body, "")
	c2, _ := excC14N(env.Body, "")
	if !bytes.Equal(c1, c2) {
		t.Fatal("forwarded Body differs from the verified Body")
	}
}

func TestTrustUnavailable(t *testing.T) {
	v := defaultVerifier(t)
	v.Trust = failingCerts{}
	_, err := v.Verify(context.Background(), golden(t, "valid-soap11-rsa.xml"))
	if !errors.Is(err, ErrTrustUnavailable) || ClientError(err) {
		t.Fatalf("got %v", err)
	}
}

type failingCerts struct{}

func (failingCerts) Certificates() ([]*x509.Certificate, error) {
	return nil, errors.New("secrets: not loaded")
}

func TestFaultCodes(t *testing.T) {
	tests := map[error]string{
		ErrDigestMismatch:          "FailedCheck",
		ErrInvalidSignature:        "FailedCheck",
		ErrSHA1NotAllowed:          "UnsupportedAlgorithm",
		ErrUnsupportedAlgorithm:    "UnsupportedAlgorithm",
		ErrTimestampExpired:        "MessageExpired",
		ErrTimestampFuture:         "MessageExpired",
		ErrUntrustedCertificate:    "InvalidSecurityToken",
		ErrCertificateExpired:      "InvalidSecurityToken",
		ErrWeakKey:                 "InvalidSecurityToken",
		ErrTokenUnavailable:        "SecurityTokenUnavailable",
		ErrAuthenticationFailed:    "FailedAuthentication",
		ErrReplay:                  "InvalidSecurity",
		ErrBodyNotSigned:           "InvalidSecurity",
		ErrNotXML:                  "InvalidSecurity",
		ErrMultipleSecurityHeaders: "InvalidSecurity",
	}
	for err, want := range tests {
		if got := FaultCode(fmt.Errorf("ctx: %w", err)); got != want {
			t.Errorf("FaultCode(%v) = %s, want %s", err, got, want)
		}
	}
}

// signedEnvelope signs a SOAP 1.1 envelope whose Body holds about bodySize
// bytes, with the test partner's RSA-2048 key, as of testNow.
func signedEnvelope(tb testing.TB, bodySize int) []byte {
	tb.Helper()
	var body strings.Builder
	for body.Len() < bodySize {
		fmt.Fprintf(&body, "<ord:line n=\"%d\">widget</ord:line>", body.Len())
	}
	msg := `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Header/><soapenv:Body><ord:order>` +
		body.String() + `</ord:order></soapenv:Body></soapenv:Envelope>`
	s := &Signer{
		Chain: readPEMCerts(tb, "partner-rsa.pem"),
		Key:   readPEMKey(tb, "partner-rsa.key.pem"),
		Now:   func() time.Time { return testNow.Add(-30 * time.Second) },
	}
	out, err := s.SignBytes([]byte(msg), Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestVerifyLargeBody(t *testing.T) {
	msg := signedEnvelope(t, 5<<20)
	res, err := defaultVerifier(t).Verify(context.Background(), msg)
	if err != nil {
		t.Fatalf("5 MB body: %v", err)
	}
	if res.Body == nil || len(res.Body.ChildElements()) != 1 {
		t.Fatal("verified Body missing")
	}
}

// BenchmarkVerify measures a 2 KB envelope (RSA-2048, Body + Timestamp
// signed; the Security header adds its own ~2.5 KB); compare with
// BenchmarkRawRSAVerify for the cost of the XML work.
func BenchmarkVerify(b *testing.B) { benchmarkVerify(b, 2<<10) }

func BenchmarkVerify1MB(b *testing.B) { benchmarkVerify(b, 1<<20) }

func benchmarkVerify(b *testing.B, bodySize int) {
	msg, v := string(signedEnvelope(b, bodySize)), defaultVerifier(b)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		verifyAsGateway(b, v, msg)
	}
}

// BenchmarkVerifyParallel is BenchmarkVerify on every core; compare with
// BenchmarkRawRSAVerifyParallel, since the garbage collector's share shows
// only when all cores are busy.
func BenchmarkVerifyParallel(b *testing.B) {
	msg, v := string(signedEnvelope(b, 2<<10)), defaultVerifier(b)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			verifyAsGateway(b, v, msg)
		}
	})
}

// verifyAsGateway verifies msg the way the SOAP edge does: the body read
// into a string (so the parser keeps it without a copy), the tree released
// once the verified envelope has been serialized.
func verifyAsGateway(b *testing.B, v *Verifier, msg string) {
	env, err := ParseEnvelope(msg, v.Policy.Limits)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := v.VerifyEnvelope(context.Background(), env); err != nil {
		b.Fatal(err)
	}
	env.Release()
}

func BenchmarkRawRSAVerify(b *testing.B) {
	pub, digest, sig := rawRSASignature(b)
	for b.Loop() {
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawRSAVerifyParallel(b *testing.B) {
	pub, digest, sig := rawRSASignature(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// rawRSASignature is an RSA-2048 PKCS#1 v1.5 SHA-256 signature by the key
// that signs the benchmark envelopes.
func rawRSASignature(b *testing.B) (pub *rsa.PublicKey, digest, sig []byte) {
	key := readPEMKey(b, "partner-rsa.key.pem").(*rsa.PrivateKey)
	d := sha256.Sum256([]byte("signed info"))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, d[:])
	if err != nil {
		b.Fatal(err)
	}
	return &key.PublicKey, d[:], sig
}

// TestForwardUnsignedHeaders: an unsigned header block reaches the upstream
// only when the route lists it, and then its mustUnderstand is the
// upstream's to honour; unlisted, it is dropped, or refused with a
// MustUnderstand error that names it.
func TestForwardUnsignedHeaders(t *testing.T) {
	base := string(goldenMessage(t, "valid-soap11-rsa"))
	const block = `<x:Transfer xmlns:x="urn:example:attacker" soapenv:mustUnderstand="%s">666</x:Transfer>`
	withBlock := func(mu string) []byte {
		return []byte(strings.Replace(base, "<soapenv:Header>", "<soapenv:Header>"+fmt.Sprintf(block, mu), 1))
	}
	allow := []HeaderName{{Namespace: "urn:example:attacker", Local: "Transfer"}}
	for _, tt := range []struct {
		name    string
		msg     []byte
		allowed []HeaderName
		want    error
		forward bool
	}{
		{"dropped", withBlock("0"), nil, nil, false},
		{"mustUnderstand refused", withBlock("1"), nil, ErrMustUnderstand, false},
		{"allowed", withBlock("0"), allow, nil, true},
		{"allowed mustUnderstand", withBlock("1"), allow, nil, true},
		{"allowed by namespace", withBlock("true"), []HeaderName{{Namespace: "urn:example:attacker"}}, nil, true},
		{"other name", withBlock("1"), []HeaderName{{Namespace: "urn:example:attacker", Local: "Role"}}, ErrMustUnderstand, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := goldenVerifier(t, goldenCase{})
			v.Policy.ForwardUnsignedHeaders = tt.allowed
			res, err := v.Verify(context.Background(), tt.msg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil {
				var nu interface{ NotUnderstood() HeaderName }
				if !errors.As(err, &nu) || nu.NotUnderstood() != (HeaderName{"urn:example:attacker", "Transfer"}) {
					t.Fatalf("%v does not name the header block", err)
				}
				if FaultCode(err) != "InvalidSecurity" {
					t.Fatalf("FaultCode = %q", FaultCode(err))
				}
				return
			}
			defer res.Release()
			for _, strip := range []bool{true, false} {
				out, err := res.Bytes(strip)
				if err != nil {
					t.Fatal(err)
				}
				if got := bytes.Contains(out, []byte("x:Transfer")); got != tt.forward {
					t.Fatalf("Bytes(%t) forwards the block: %t\n%s", strip, got, out)
				}
			}
		})
	}
}

// TestBytesAfterRelease: a released Verified writes nothing, and says so.
func TestBytesAfterRelease(t *testing.T) {
	res, err := goldenVerifier(t, goldenCase{}).Verify(context.Background(), goldenMessage(t, "valid-soap11-rsa"))
	if err != nil {
		t.Fatal(err)
	}
	res.Release()
	if out, err := res.Bytes(true); err == nil || out != nil {
		t.Fatalf("Bytes after Release = %q, %v", out, err)
	}
	res.Release()

	// Releasing the Envelope empties the Verified made from it too.
	env, err := ParseEnvelope(goldenMessage(t, "valid-soap11-rsa"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	res, err = goldenVerifier(t, goldenCase{}).VerifyEnvelope(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	env.Release()
	if res.Security != nil || res.Body != nil || res.headers != nil || res.securityKept != nil {
		t.Fatal("the Verified still points into the released tree")
	}
	if out, err := res.Bytes(false); err == nil || out != nil {
		t.Fatalf("Bytes after the Envelope's Release = %q, %v", out, err)
	}
	res.Release()
}
