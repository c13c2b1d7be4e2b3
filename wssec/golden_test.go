package wssec

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The golden files in testdata/wssec are written by
// `go run ./internal/gentestdata`; every message is created at
// 2026-01-01T00:00:00Z and judged one minute later.
var goldenNow = time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)

const goldenDir = "../testdata/wssec"

// goldenCerts is a fixed CertificateSource.
type goldenCerts []*x509.Certificate

func (c goldenCerts) Certificates() ([]*x509.Certificate, error) { return c, nil }

// goldenUsers is a fixed PasswordSource.
type goldenUsers map[string]string

func (u goldenUsers) Password(name string) (string, bool, error) {
	p, ok := u[name]
	return p, ok, nil
}

func goldenCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../testdata/pki", name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func goldenMessage(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name+".xml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenCase is one row of the acceptance/rejection table.
type goldenCase struct {
	file   string
	policy func(*Policy)               // adjusts the default policy
	pin    bool                        // trust the partner RSA leaf directly as well as the CA
	users  PasswordSource              // set Verifier.Users
	want   error                       // nil: must verify
	fault  string                      // expected FaultCode (wsse local name) when want != nil
	signer string                      // expected signer certificate (testdata/pki name) when want == nil
	check  func(*testing.T, *Verified) // extra checks on success
	// forward: the message is one of issue 11's sanitizing cases; what it
	// forwards must be exactly testdata/wssec/forwarded/FILE.{strip,keep}.xml.
	forward bool
}

func goldenVerifier(t testing.TB, c goldenCase) *Verifier {
	trust := goldenCerts{goldenCert(t, "ca")}
	if c.pin {
		trust = append(trust, goldenCert(t, "partner-rsa"))
	}
	v := &Verifier{
		Policy: Policy{
			RequireSigned: []Part{PartBody, PartTimestamp},
			TimestampTTL:  300 * time.Second,
			FutureSkew:    60 * time.Second,
		},
		Trust: trust,
		Users: c.users,
		Now:   func() time.Time { return goldenNow },
	}
	if c.policy != nil {
		c.policy(&v.Policy)
	}
	return v
}

func allowSHA1(p *Policy)         { p.AllowSHA1 = true }
func requireAddressing(p *Policy) { p.RequireSigned = append(p.RequireSigned, PartAddressing) }

func goldenCases() []goldenCase {
	alice := goldenUsers{"alice": "secret"}
	const (
		invalid     = "InvalidSecurity"
		failed      = "FailedCheck"
		alg         = "UnsupportedAlgorithm"
		token       = "InvalidSecurityToken"
		expired     = "MessageExpired"
		authn       = "FailedAuthentication"
		noToken     = "SecurityTokenUnavailable"
		unsupported = "UnsupportedSecurityToken"
		rsaLeaf     = "partner-rsa"
		ecdsaLef    = "partner-ecdsa"
	)
	cases := []goldenCase{
		// Accepted.
		{file: "valid-soap11-rsa", signer: rsaLeaf, check: checkOrderBody("42")},
		{file: "valid-soap12-rsa", signer: rsaLeaf, check: checkOrderBody("42")},
		{file: "valid-soap11-ecdsa", signer: ecdsaLef, check: checkOrderBody("42")},
		{file: "valid-wsa", signer: rsaLeaf, check: checkOrderBody("42")},
		{file: "valid-wsa", policy: requireAddressing, signer: rsaLeaf},
		{file: "valid-ski", pin: true, signer: rsaLeaf},
		{file: "valid-thumbprint", pin: true, signer: rsaLeaf},
		{file: "valid-issuerserial", pin: true, signer: rsaLeaf},
		{file: "valid-bst-linebreaks", signer: rsaLeaf},
		{file: "valid-sha1", policy: allowSHA1, signer: rsaLeaf},
		{file: "valid-large", signer: rsaLeaf, check: checkLargeBody},
		{file: "valid-usernametoken-digest", users: alice, signer: rsaLeaf, check: checkUsername("alice")},
		{file: "valid-usernametoken-text", users: alice, signer: rsaLeaf, check: checkUsername("alice")},

		// Policy and algorithm refusals of otherwise sound messages.
		{file: "valid-sha1", want: ErrSHA1NotAllowed, fault: alg},
		{file: "valid-soap11-rsa", policy: requireAddressing, want: ErrAddressingNotSigned, fault: invalid},
		{file: "valid-soap11-rsa", users: alice, want: ErrUsernameTokenMissing, fault: authn},
		{file: "valid-ski", want: ErrTokenUnavailable, fault: noToken},
		{file: "usernametoken-badpass", users: alice, want: ErrAuthenticationFailed, fault: authn},

		// Cryptographic failures.
		{file: "tampered-body", want: ErrDigestMismatch, fault: failed},
		{file: "tampered-timestamp", want: ErrDigestMismatch, fault: failed},
		{file: "tampered-signature", want: ErrInvalidSignature, fault: failed},
		{file: "tampered-signedinfo", want: ErrInvalidSignature, fault: failed},

		// Freshness.
		{file: "expired", want: ErrTimestampExpired, fault: expired},
		{file: "future", want: ErrTimestampFuture, fault: expired},
		{file: "unsigned-timestamp", want: ErrTimestampNotSigned, fault: invalid},
		{file: "no-timestamp", want: ErrTimestampMissing, fault: invalid},

		// Trust.
		{file: "untrusted-cert", want: ErrUntrustedCertificate, fault: token},
		{file: "expired-cert", want: ErrCertificateExpired, fault: token},
		{file: "weak-key", want: ErrWeakKey, fault: token},
		{file: "keyusage", want: ErrCertificateKeyUsage, fault: token},
		{file: "ski-unknown", pin: true, want: ErrTokenUnavailable, fault: noToken},

		// Algorithms outside the allow-list.
		{file: "withcomments", want: ErrUnsupportedAlgorithm, fault: alg},
		{file: "hmac", want: ErrUnsupportedAlgorithm, fault: alg},
		{file: "md5-digest", want: ErrUnsupportedAlgorithm, fault: alg},

		// Shape.
		{file: "duplicate-id", want: ErrDuplicateID, fault: invalid},
		{file: "second-body", want: ErrMultipleBodies, fault: invalid},
		{file: "second-security", want: ErrMultipleSecurityHeaders, fault: invalid},
		{file: "signature-token-only", want: ErrBodyNotSigned, fault: invalid},

		// XML Signature Wrapping: every digest and the signature still verify.
		// The look-alike walk refuses them before the check by node identity.
		{file: "xsw-body-in-header", want: ErrLookAlike, fault: invalid},
		{file: "xsw-body-in-security", want: ErrUnprocessedSecurityElement, fault: unsupported},
		{file: "xsw-body-new-id", want: ErrLookAlike, fault: invalid},
		{file: "xsw-body-in-signature-object", want: ErrUnprocessedSecurityElement, fault: unsupported},
		{file: "xsw-body-in-body", want: ErrLookAlike, fault: invalid},
		{file: "xsw-timestamp", want: ErrLookAlike, fault: invalid},
		{file: "xsw-id-attr", want: ErrLookAlike, fault: invalid},

		// Hostile or malformed input.
		{file: "doctype", want: ErrDTD, fault: invalid},
		{file: "billion-laughs", want: ErrDTD, fault: invalid},
		{file: "deep", want: ErrTooDeep, fault: invalid},
		{file: "not-xml", want: ErrNotXML, fault: invalid},
		{file: "empty", want: ErrNotXML, fault: invalid},
		{file: "not-envelope", want: ErrNotEnvelope, fault: invalid},
		{file: "no-security", want: ErrNoSecurityHeader, fault: invalid},

		// Issue 11: a route without UsernameToken checking accepts a message
		// carrying one, but forwards no unchecked token.
		{file: "valid-usernametoken-text", signer: rsaLeaf, forward: true},
		{file: "valid-wsa", signer: rsaLeaf, forward: true, check: checkAction("urn:example:orders:GetOrder")},
	}
	return append(cases, attackGoldenCases()...)
}

// attackGoldenCases are the rows of issue 11's attack messages (written by
// internal/gentestdata/attacks.go), each in SOAP 1.1 and 1.2.
func attackGoldenCases() []goldenCase {
	const (
		invalid     = "InvalidSecurity"
		unsupported = "UnsupportedSecurityToken"
		rsaLeaf     = "partner-rsa"
	)
	refused := map[string]error{
		// Class 1: envelope shape.
		"shape-element-before-header": ErrEnvelopeShape,
		"shape-element-between":       ErrEnvelopeShape,
		"shape-element-after-body":    ErrEnvelopeShape,
		"shape-nonamespace-body":      ErrEnvelopeShape,
		"shape-foreign-body":          ErrEnvelopeShape,
		"shape-multiref":              ErrEnvelopeShape,
		"shape-text-in-envelope":      ErrEnvelopeShape,
		"shape-text-in-header":        ErrEnvelopeShape,
		"shape-second-header":         ErrEnvelopeShape,
		"shape-encodingstyle":         ErrEnvelopeShape,
		// Class 3: look-alikes.
		"lookalike-soap-body-in-header":   ErrLookAlike,
		"lookalike-any-body-in-header":    ErrLookAlike,
		"lookalike-security-200207":       ErrLookAlike,
		"lookalike-security-200204":       ErrLookAlike,
		"lookalike-security-200306":       ErrLookAlike,
		"lookalike-security-wsse11":       ErrLookAlike,
		"lookalike-security-nested":       ErrLookAlike,
		"lookalike-usernametoken-outside": ErrLookAlike,
		"lookalike-timestamp-outside":     ErrLookAlike,
		"lookalike-timestamp-foreign-ns":  ErrLookAlike,
		"lookalike-action-nested":         ErrLookAlike,
		"lookalike-action-foreign-ns":     ErrLookAlike,
		"mustunderstand-unknown":          ErrMustUnderstand,
		"mustunderstand-true":             ErrMustUnderstand,
		"mustunderstand-next":             ErrMustUnderstand,
		"mustunderstand-other-role":       ErrMustUnderstand,
		"mustunderstand-role-none-11":     ErrMustUnderstand, // 1.1 has no role none
		"duplicate-xml-id":                ErrDuplicateID,
		"duplicate-lowercase-id":          ErrDuplicateID,
		"duplicate-id-in-body":            ErrDuplicateID,
		// Class 4: addressing.
		"wsa-200408-unsigned": ErrAddressingMalformed,
		"wsa-second-action":   ErrAddressingMalformed,
		// Class 6: Security content not processed.
		"security-encryptedkey":          ErrUnprocessedSecurityElement,
		"security-referencelist":         ErrUnprocessedSecurityElement,
		"security-encrypteddata":         ErrUnprocessedSecurityElement,
		"security-saml-assertion":        ErrUnprocessedSecurityElement,
		"security-signatureconfirmation": ErrUnprocessedSecurityElement,
		"security-unknown-element":       ErrUnprocessedSecurityElement,
		"security-timestamp-foreign-ns":  ErrUnprocessedSecurityElement,
		"security-signature-object":      ErrUnprocessedSecurityElement,
	}
	forwarded := []string{
		"sanitize-comment-in-text", "sanitize-cdata", "sanitize-comments-everywhere",
		"sanitize-unsigned-header", "sanitize-envelope-attributes", "sanitize-unreferenced-bst",
		"mustunderstand-role-none-12", "wsa-200408-action-unsigned",
	}
	var cases []goldenCase
	for _, v := range []string{"-11", "-12"} {
		for name, err := range refused {
			if strings.HasSuffix(name, "-11") || strings.HasSuffix(name, "-12") {
				if strings.HasSuffix(name, v) {
					cases = append(cases, goldenCase{file: name, want: err, fault: FaultCode(err)})
				}
				continue
			}
			fault := invalid
			if err == ErrUnprocessedSecurityElement {
				fault = unsupported
			}
			cases = append(cases, goldenCase{file: name + v, want: err, fault: fault})
		}
		for _, name := range forwarded {
			if strings.HasSuffix(name, "-11") || strings.HasSuffix(name, "-12") {
				if strings.HasSuffix(name, v) {
					cases = append(cases, goldenCase{file: name, signer: rsaLeaf, forward: true})
				}
				continue
			}
			cases = append(cases, goldenCase{file: name + v, signer: rsaLeaf, forward: true})
		}
		for _, name := range []string{"valid-wsa-200408", "valid-wsa-200403"} {
			cases = append(cases, goldenCase{file: name + v, policy: requireAddressing, signer: rsaLeaf,
				forward: true, check: checkAction("urn:example:orders:GetOrder")})
		}
		cases = append(cases,
			// The unsigned 2004/08 Action comes first: it is not signed.
			goldenCase{file: "wsa-200408-unsigned" + v, policy: requireAddressing, want: ErrAddressingNotSigned, fault: invalid},
			goldenCase{file: "wsa-200408-action-unsigned" + v, policy: requireAddressing, want: ErrAddressingNotSigned, fault: invalid},
		)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].file < cases[j].file })
	return cases
}

func checkAction(want string) func(*testing.T, *Verified) {
	return func(t *testing.T, v *Verified) {
		t.Helper()
		if v.Action != want {
			t.Fatalf("Action = %q, want %q", v.Action, want)
		}
	}
}

// checkOrderBody asserts that the verified Body is the envelope's own Body
// and carries the signed order, not some other element.
func checkOrderBody(id string) func(*testing.T, *Verified) {
	return func(t *testing.T, v *Verified) {
		t.Helper()
		op := v.Body.ChildElements()
		if len(op) != 1 || op[0].Tag != "GetOrder" || op[0].NamespaceURI() != "urn:example:orders" {
			t.Fatalf("Body does not hold the signed GetOrder")
		}
		if got := op[0].SelectElement("ID"); got == nil || got.Text() != id {
			t.Fatalf("GetOrder ID is not %q", id)
		}
	}
}

func checkLargeBody(t *testing.T, v *Verified) {
	t.Helper()
	n := 0
	stack := v.Body.ChildElements()
	for len(stack) > 0 {
		el := stack[len(stack)-1]
		stack = append(stack[:len(stack)-1], el.ChildElements()...)
		n++
	}
	if n <= 100000 {
		t.Fatalf("Body has %d elements, want more than 100000", n)
	}
}

func checkUsername(name string) func(*testing.T, *Verified) {
	return func(t *testing.T, v *Verified) {
		t.Helper()
		if v.Username != name {
			t.Fatalf("Username = %q, want %q", v.Username, name)
		}
	}
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		name := c.file
		if c.want != nil {
			name += "/" + strings.TrimPrefix(c.want.Error(), "wssec: ")
		}
		t.Run(name, func(t *testing.T) {
			v := goldenVerifier(t, c)
			got, err := v.Verify(context.Background(), goldenMessage(t, c.file))
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("Verify error = %v, want %v", err, c.want)
				}
				if got != nil {
					t.Errorf("Verify returned a result with error %v", err)
				}
				if fc := FaultCode(err); fc != c.fault {
					t.Errorf("FaultCode = %q, want %q", fc, c.fault)
				}
				if !ClientError(err) {
					t.Errorf("ClientError(%v) = false, want true", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			assertVerifiedShape(t, got)
			if want := goldenCert(t, c.signer); got.Signer == nil || !got.Signer.Equal(want) {
				t.Errorf("Signer = %v, want %s", subjectOf(got.Signer), want.Subject)
			}
			if got.Created.IsZero() {
				t.Error("Created is zero for a message with a signed Timestamp")
			}
			if c.check != nil {
				c.check(t, got)
			}
			checkForwarded(t, v, c, got)
		})
	}
}

var updateGolden = flag.Bool("update", false, "rewrite testdata/wssec/forwarded from what Verified.Bytes writes")

// checkForwarded holds every accepted message's forwarded envelopes to the
// rule of issue 11: no comment, no CDATA, a Security holding only what was
// processed, and still verifying; and, for the sanitizing cases, byte for
// byte what testdata/wssec/forwarded holds.
func checkForwarded(t *testing.T, v *Verifier, c goldenCase, got *Verified) {
	t.Helper()
	for _, strip := range []bool{true, false} {
		out, err := got.Bytes(strip)
		if err != nil {
			t.Fatalf("Bytes(%t): %v", strip, err)
		}
		if bytes.Contains(out, []byte("<!--")) || bytes.Contains(out, []byte("<![CDATA[")) {
			t.Fatalf("Bytes(%t) forwards a comment or CDATA: %s", strip, out)
		}
		if strip == bytes.Contains(out, []byte("Security")) {
			t.Fatalf("Bytes(%t): Security present = %t", strip, !strip)
		}
		if !strip {
			if _, err := v.Verify(context.Background(), out); err != nil {
				t.Fatalf("the forwarded envelope does not verify again: %v", err)
			}
		}
		if !c.forward {
			continue
		}
		suffix := ".keep.xml"
		if strip {
			suffix = ".strip.xml"
		}
		path := filepath.Join(goldenDir, "forwarded", c.file+suffix)
		if *updateGolden {
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./wssec -run TestGolden -update writes it)", err)
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("Bytes(%t):\n got %s\nwant %s", strip, out, want)
		}
	}
}

func subjectOf(c *x509.Certificate) string {
	if c == nil {
		return "<nil>"
	}
	return c.Subject.String()
}

// assertVerifiedShape checks that Verified points into its own document:
// Body is the one soap:Body child of the root Envelope.
func assertVerifiedShape(t *testing.T, v *Verified) {
	t.Helper()
	if v == nil || v.Envelope == nil || v.Doc == nil {
		t.Fatal("Verified has no envelope")
	}
	root := v.Doc.Root()
	if v.Envelope.Envelope != root {
		t.Fatal("Verified.Envelope is not the document root")
	}
	if v.Body == nil || v.Body.Parent() != root || v.Body.Tag != "Body" {
		t.Fatal("Verified.Body is not a child of the root Envelope")
	}
	if ns := v.Body.NamespaceURI(); ns != root.NamespaceURI() {
		t.Fatalf("Body namespace %q, envelope %q", ns, root.NamespaceURI())
	}
	bodies := 0
	for _, c := range root.ChildElements() {
		if c.Tag == "Body" && c.NamespaceURI() == root.NamespaceURI() {
			bodies++
			if c != v.Body {
				t.Fatal("Verified.Body is not the envelope's Body")
			}
		}
	}
	if bodies != 1 {
		t.Fatalf("%d Bodies", bodies)
	}
	if v.Security == nil || v.Security.Tag != "Security" {
		t.Fatal("Verified.Security is not a Security header")
	}
}

// TestGoldenCoversEveryFile keeps the table and the generator in step.
func TestGoldenCoversEveryFile(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("only %d golden files in %s; run go run ./internal/gentestdata", len(files), goldenDir)
	}
	covered := map[string]bool{}
	for _, c := range goldenCases() {
		covered[c.file] = true
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".xml")
		if strings.HasPrefix(name, "saml-") {
			continue // saml_test.go's table covers those
		}
		if !covered[name] {
			t.Errorf("%s has no row in goldenCases", name)
		}
		delete(covered, name)
	}
	for name := range covered {
		t.Errorf("goldenCases names %s, which is not in %s", name, goldenDir)
	}
}

func TestGoldenReplay(t *testing.T) {
	clock := func() time.Time { return goldenNow }
	cache := NewMemoryReplayCache(clock)
	msg := goldenMessage(t, "valid-soap11-rsa")
	for i, want := range []error{nil, ErrReplay} {
		// A fresh Verifier each time: the cache, not the Verifier, remembers.
		v := goldenVerifier(t, goldenCase{})
		v.Replay = cache
		_, err := v.Verify(context.Background(), msg)
		if !errors.Is(err, want) {
			t.Fatalf("verification %d: error = %v, want %v", i+1, err, want)
		}
		if want != nil && FaultCode(err) != "InvalidSecurity" {
			t.Errorf("FaultCode = %q, want InvalidSecurity", FaultCode(err))
		}
	}
	// A different message is not a replay of the first.
	v := goldenVerifier(t, goldenCase{})
	v.Replay = cache
	if _, err := v.Verify(context.Background(), goldenMessage(t, "valid-soap12-rsa")); err != nil {
		t.Fatalf("a different message: %v", err)
	}
}
