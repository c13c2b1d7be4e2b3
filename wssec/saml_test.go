package wssec

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"wsgate/internal/pki"
)

var updateSAML = flag.Bool("update-saml", false, "rewrite testdata/wssec/saml-*.xml (and issue testdata/pki/saml-idp once)")

const (
	samlAssertionID = "_a75adf55-01d7-40cc-929f-dbd8372ebdfc"
	samlBodyID      = "id-6a1c2c"
	samlTSID        = "TS-6a1c2a"
	samlSTRID       = "STR-6a1c2d"
)

// samlGoldens builds every SAML golden message. RSA PKCS#1 v1.5 signatures
// are deterministic, so with the committed keys the output is too.
func samlGoldens(t testing.TB) map[string][]byte {
	idp := samlIdentity(t, "saml-idp", *updateSAML)
	partner := samlIdentity(t, "partner-rsa", false)
	untrusted := samlIdentity(t, "untrusted-leaf", false)
	keyUsage := samlIdentity(t, "keyusage", false)
	signed := func(s assertionSpec) string { return xmlString(t, signAssertion(t, buildAssertion(s), idp)) }
	sv := signed(assertionSpec{})
	msg := func(m messageSpec) []byte { return buildMessage(t, m, partner) }
	svSTR := messageSpec{Assertion: sv, STR: true, Refs: []string{samlBodyID, samlTSID, samlSTRID}}
	evil := func(from string) string { return strings.Replace(from, "alice@example.com", "admin@example.com", 1) }
	evilUnsigned := xmlString(t, buildAssertion(assertionSpec{ID: "_evil", NameID: "admin@example.com", Method: ConfirmBearer}))

	out := map[string][]byte{
		"saml-sv-str":    msg(svSTR),
		"saml-sv-direct": msg(messageSpec{Assertion: sv, Refs: []string{samlBodyID, samlTSID, samlAssertionID}}),
		"saml-hok": msg(messageSpec{Assertion: signed(assertionSpec{Method: ConfirmHolderOfKey, HoK: partner.Cert}),
			Refs: []string{samlBodyID, samlTSID}}),
		"saml-hok-keyvalue": msg(messageSpec{Assertion: signed(assertionSpec{Method: ConfirmHolderOfKey, HoK: partner.Cert, HoKKeyValue: true}),
			Refs: []string{samlBodyID, samlTSID}}),
		"saml-hok-keyinfo": msg(messageSpec{Assertion: signed(assertionSpec{Method: ConfirmHolderOfKey, HoK: partner.Cert}),
			Refs: []string{samlBodyID, samlTSID}, KeyInfoSAML: samlAssertionID}),
		"saml-bearer": msg(messageSpec{Assertion: signed(assertionSpec{Method: ConfirmBearer}), Refs: []string{samlBodyID, samlTSID}}),

		"saml-unsigned":        msg(messageSpec{Assertion: xmlString(t, buildAssertion(assertionSpec{})), STR: true, Refs: svSTR.Refs}),
		"saml-tampered":        msg(messageSpec{Assertion: evil(sv), STR: true, Refs: svSTR.Refs}),
		"saml-sha1":            msg(messageSpec{Assertion: signedSHA1(t, buildAssertion(assertionSpec{}), idp), STR: true, Refs: svSTR.Refs}),
		"saml-expired":         msg(messageSpec{Assertion: signed(assertionSpec{NotOnOrAfter: msgCreatedTime.Add(-5 * time.Minute)}), STR: true, Refs: svSTR.Refs}),
		"saml-not-yet":         msg(messageSpec{Assertion: signed(assertionSpec{NotBefore: msgCreatedTime.Add(10 * time.Minute), NotOnOrAfter: msgCreatedTime.Add(time.Hour)}), STR: true, Refs: svSTR.Refs}),
		"saml-audience":        msg(messageSpec{Assertion: signed(assertionSpec{Audience: "urn:wsgate:billing"}), STR: true, Refs: svSTR.Refs}),
		"saml-untrusted":       msg(messageSpec{Assertion: xmlString(t, signAssertion(t, buildAssertion(assertionSpec{}), untrusted)), STR: true, Refs: svSTR.Refs}),
		"saml-issuer-keyusage": msg(messageSpec{Assertion: xmlString(t, signAssertion(t, buildAssertion(assertionSpec{}), keyUsage)), STR: true, Refs: svSTR.Refs}),
		"saml-sv-unsigned":     msg(messageSpec{Assertion: sv, Refs: []string{samlBodyID, samlTSID}}),
		"saml-hok-wrong-key": msg(messageSpec{Assertion: signed(assertionSpec{Method: ConfirmHolderOfKey, HoK: untrusted.Cert}),
			Refs: []string{samlBodyID, samlTSID}}),
		"saml-header-split": msg(messageSpec{Assertion: signed(assertionSpec{Attributes: [][2]string{{"role", "buyer\nX-Auth-Roles: admin"}}}),
			STR: true, Refs: svSTR.Refs}),

		// Assertion-level wrapping.
		"saml-second-assertion": msg(messageSpec{Assertion: evilUnsigned + sv, STR: true, Refs: svSTR.Refs}),
		"saml-second-signed":    msg(messageSpec{Assertion: sv + signed(assertionSpec{ID: "_second", NameID: "admin@example.com"}), STR: true, Refs: svSTR.Refs}),
		// XSW: the evil assertion, carrying the original's ID and signature,
		// in place; the signed original moved into a wrapper in the header.
		"saml-wrapped": msg(messageSpec{Assertion: evil(sv) + `<x:Wrapper xmlns:x="urn:example:evil">` + sv + `</x:Wrapper>`,
			STR: true, Refs: svSTR.Refs}),
		// ... or into the evil assertion's Advice.
		"saml-wrapped-advice": msg(messageSpec{Assertion: strings.Replace(evil(sv), "</saml2:Subject>",
			"</saml2:Subject><saml2:Advice>"+sv+"</saml2:Advice>", 1), STR: true, Refs: svSTR.Refs}),
		// ... or into a header block of its own.
		"saml-wrapped-header": headerAssertion(t, msg(messageSpec{Assertion: evil(sv), STR: true, Refs: svSTR.Refs}), sv),
		// ... or into the Body.
		"saml-in-body": msg(messageSpec{Assertion: evil(sv), STR: true, Refs: svSTR.Refs, BodyExtra: sv}),
		// The signature references another ID than the assertion's.
		"saml-reference-other-id": msg(messageSpec{Assertion: strings.Replace(sv, `ID="`+samlAssertionID+`"`, `ID="_evil"`, 1),
			Refs: []string{samlBodyID, samlTSID, "_evil"}}),
		// CVE-2017-11427: the IdP signed NameID admin@example.com.evil.example;
		// a comment makes a first-text-node reader see admin@example.com.
		"saml-nameid-comment": msg(messageSpec{Assertion: strings.Replace(signed(assertionSpec{NameID: "admin@example.com.evil.example"}),
			"admin@example.com.evil.example", "admin@example.com<!---->.evil.example", 1), STR: true, Refs: svSTR.Refs}),
		// Another element carries the assertion's ID.
		"saml-duplicate-id": duplicateID(t, msg(svSTR)),
	}
	return out
}

func signedSHA1(t testing.TB, a *etree.Element, id *pki.Identity) string {
	t.Helper()
	ctx, err := dsig.NewSigningContext(id.Key, [][]byte{id.Cert.Raw})
	if err != nil {
		t.Fatal(err)
	}
	ctx.IdAttribute = "ID"
	ctx.Hash = crypto.SHA1
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	s, err := ctx.SignEnveloped(a)
	if err != nil {
		t.Fatal(err)
	}
	return xmlString(t, s)
}

// headerAssertion puts assertion in a header block of its own, before Security.
func headerAssertion(t testing.TB, msg []byte, assertion string) []byte {
	t.Helper()
	return bytes.Replace(msg, []byte("<soap:Header>"),
		[]byte(`<soap:Header><x:Wrapper xmlns:x="urn:example:evil">`+assertion+`</x:Wrapper>`), 1)
}

func duplicateID(t testing.TB, msg []byte) []byte {
	t.Helper()
	return bytes.Replace(msg, []byte("<soap:Header>"),
		[]byte(`<soap:Header><x:Info xmlns:x="urn:example:evil" ID="`+samlAssertionID+`">x</x:Info>`), 1)
}

func TestSAMLGoldens(t *testing.T) {
	goldens := samlGoldens(t)
	if *updateSAML {
		for name, data := range goldens {
			if err := os.WriteFile(filepath.Join(goldenDir, name+".xml"), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %d SAML golden files", len(goldens))
	}
	for name, data := range goldens {
		got, err := os.ReadFile(filepath.Join(goldenDir, name+".xml"))
		if err != nil {
			t.Fatalf("%s: %v (run with -update-saml)", name, err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s: golden differs from what the generator writes now (run with -update-saml)", name)
		}
	}
}

// samlCase is one row of the SAML acceptance/rejection table.
type samlCase struct {
	file   string
	policy func(*SAMLPolicy)
	hok    bool  // the message signature's KeyInfo names the assertion
	want   error // nil: accepted
	fault  string
	method string // accepted confirmation
	check  func(*testing.T, *Assertion)
}

func samlPolicy(t testing.TB) *SAMLPolicy {
	return &SAMLPolicy{
		Trust:    goldenCerts{goldenCert(t, "saml-idp")},
		Audience: []string{"urn:wsgate:orders"},
	}
}

// runSAML verifies a golden message's assertion through the core API, with
// testBinding standing in for the message verifier.
func runSAML(t *testing.T, p *SAMLPolicy, msg []byte, hok bool, now time.Time) (*Assertion, error) {
	t.Helper()
	env, err := ParseEnvelope(msg, Limits{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	defer env.Release()
	var key crypto.PublicKey
	if hok {
		var sec, keyInfo *etree.Element
		for _, h := range samlChildren(env.Header) {
			if samlIs(h, NSWSSE, "Security") {
				sec = h
			}
		}
		for _, c := range samlChildren(sec) {
			if samlIs(c, NSDSig, "Signature") {
				keyInfo = samlChildren(c)[2]
			}
		}
		cert, ok, err := p.HolderOfKeySigner(env.Envelope, sec, keyInfo, now)
		if !ok {
			t.Fatal("HolderOfKeySigner did not recognize the SAML KeyIdentifier")
		}
		if err != nil {
			return nil, err
		}
		key = cert.PublicKey
	}
	binding, sec, err := testBinding(t, env, goldenCerts{goldenCert(t, "ca")}, key)
	if err != nil {
		// The message itself does not verify; the SAML step must still
		// refuse the assertion on its own.
		binding = SAMLMessage{Body: env.Body}
	}
	return p.Verify(env.Envelope, sec, binding, now)
}

func TestSAMLGoldenTable(t *testing.T) {
	cases := []samlCase{
		{file: "saml-sv-str", method: ConfirmSenderVouches, check: func(t *testing.T, a *Assertion) {
			if a.ID != samlAssertionID || a.Issuer != "https://idp.example.com/sts" || a.Subject != "alice@example.com" {
				t.Errorf("assertion = %+v", a)
			}
			if !slices.Equal(a.Attributes["role"], []string{"buyer", "approver"}) ||
				!slices.Equal(a.Attributes["department"], []string{"Purchasing"}) {
				t.Errorf("attributes = %v", a.Attributes)
			}
			if !slices.Equal(a.Values("NameID"), []string{"alice@example.com"}) || !slices.Equal(a.Values("role"), []string{"buyer", "approver"}) ||
				a.Values("missing") != nil {
				t.Errorf("Values: %v %v", a.Values("NameID"), a.Values("role"))
			}
			if a.IssuerCert == nil || !a.IssuerCert.Equal(goldenCert(t, "saml-idp")) {
				t.Error("issuer certificate not reported")
			}
			if !a.NotOnOrAfter.Equal(msgCreatedTime.Add(5 * time.Minute)) {
				t.Errorf("NotOnOrAfter = %v", a.NotOnOrAfter)
			}
		}},
		{file: "saml-sv-direct", method: ConfirmSenderVouches},
		{file: "saml-hok", method: ConfirmHolderOfKey},
		{file: "saml-hok-keyvalue", method: ConfirmHolderOfKey},
		{file: "saml-hok-keyinfo", hok: true, method: ConfirmHolderOfKey},
		{file: "saml-hok-keyinfo", hok: true, policy: func(p *SAMLPolicy) { p.Confirmation = []string{"sender-vouches"} },
			want: ErrSAMLConfirmation, fault: "FailedAuthentication"},
		{file: "saml-bearer", policy: func(p *SAMLPolicy) { p.Confirmation = []string{"bearer"} }, method: ConfirmBearer},
		{file: "saml-bearer", want: ErrSAMLConfirmation, fault: "FailedAuthentication"},
		{file: "saml-sv-str", policy: func(p *SAMLPolicy) { p.Confirmation = []string{"holder-of-key", "bearer"} },
			want: ErrSAMLConfirmation, fault: "FailedAuthentication"},

		{file: "saml-unsigned", want: ErrSAMLSignature, fault: "InvalidSecurityToken"},
		{file: "saml-tampered", want: ErrSAMLSignature, fault: "InvalidSecurityToken"},
		{file: "saml-sha1", want: ErrUnsupportedAlgorithm, fault: "UnsupportedAlgorithm"},
		{file: "saml-sha1", policy: func(p *SAMLPolicy) { p.AllowSHA1 = true }, method: ConfirmSenderVouches},
		{file: "saml-expired", want: ErrSAMLExpired, fault: "InvalidSecurityToken"},
		{file: "saml-not-yet", want: ErrSAMLExpired, fault: "InvalidSecurityToken"},
		{file: "saml-audience", want: ErrSAMLAudience, fault: "FailedAuthentication"},
		{file: "saml-sv-str", policy: func(p *SAMLPolicy) { p.Audience = nil }, want: ErrSAMLAudience, fault: "FailedAuthentication"},
		{file: "saml-untrusted", want: ErrSAMLIssuer, fault: "InvalidSecurityToken"},
		{file: "saml-sv-str", policy: func(p *SAMLPolicy) { p.Trust = goldenCerts{goldenCert(t, "ca")} },
			want: ErrSAMLIssuer, fault: "InvalidSecurityToken"},
		{file: "saml-issuer-keyusage", policy: func(p *SAMLPolicy) { p.Trust = goldenCerts{goldenCert(t, "keyusage")} },
			want: ErrCertificateKeyUsage, fault: "InvalidSecurityToken"},
		{file: "saml-sv-unsigned", want: ErrSAMLConfirmation, fault: "FailedAuthentication"},
		{file: "saml-hok-wrong-key", want: ErrSAMLConfirmation, fault: "FailedAuthentication"},
		{file: "saml-header-split", want: ErrSAMLMalformed, fault: "InvalidSecurityToken"},

		{file: "saml-second-assertion", want: ErrSAMLWrapping, fault: "InvalidSecurityToken"},
		{file: "saml-second-signed", want: ErrSAMLWrapping, fault: "InvalidSecurityToken"},
		{file: "saml-wrapped", want: ErrSAMLWrapping, fault: "InvalidSecurityToken"},
		{file: "saml-wrapped-advice", want: ErrSAMLWrapping, fault: "InvalidSecurityToken"},
		{file: "saml-wrapped-header", want: ErrSAMLWrapping, fault: "InvalidSecurityToken"},
		{file: "saml-in-body", want: ErrSAMLWrapping, fault: "InvalidSecurityToken"},
		{file: "saml-reference-other-id", want: ErrSAMLWrapping, fault: "InvalidSecurityToken"},
		{file: "saml-nameid-comment", want: ErrSAMLComment, fault: "InvalidSecurityToken"},
		{file: "saml-duplicate-id", want: ErrDuplicateID, fault: "InvalidSecurityToken"},
	}
	for _, c := range cases {
		name := c.file
		if c.policy != nil {
			name += "/policy"
		}
		t.Run(name, func(t *testing.T) {
			p := samlPolicy(t)
			if c.policy != nil {
				c.policy(p)
			}
			a, err := runSAML(t, p, goldenMessage(t, c.file), c.hok, goldenNow)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if a == nil || a.Confirmation != c.method {
					t.Fatalf("assertion %+v, want confirmation %s", a, c.method)
				}
				if c.check != nil {
					c.check(t, a)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			t.Logf("refused: %v", err)
			if a != nil {
				t.Fatal("an assertion came back with an error")
			}
			if got := FaultCode(err); got != c.fault {
				t.Errorf("FaultCode = %s, want %s (err %v)", got, c.fault, err)
			}
			if !ClientError(err) {
				t.Errorf("ClientError = false for %v", err)
			}
		})
	}
}

// The validated copy goxmldsig returns has no comment left: the NameID is
// read whole, as the IdP signed it, even where the refusal of comments did
// not apply.
func TestSAMLCommentValidatedCopyReadsWhole(t *testing.T) {
	env, err := ParseEnvelope(goldenMessage(t, "saml-nameid-comment"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Release()
	var el *etree.Element
	for _, e := range env.Doc.FindElements("//Assertion") {
		el = e
	}
	if err := refuseComments(el); !errors.Is(err, ErrSAMLComment) {
		t.Fatalf("refuseComments = %v", err)
	}
	ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{goldenCert(t, "saml-idp")}})
	ctx.IdAttribute = "ID"
	ctx.Clock = dsig.NewFakeClockAt(goldenNow)
	validated, err := ctx.Validate(el)
	if err != nil {
		t.Fatalf("goxmldsig refused the comment-injected assertion: %v", err)
	}
	a, err := parseValidatedAssertion(validated, samlAssertionID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject != "admin@example.com.evil.example" {
		t.Fatalf("NameID read as %q, want the whole signed text", a.Subject)
	}
	// A first-text-node reader (lxml's .text, the 2018 victims) would
	// have seen the truncated value in the message tree.
	nameID := el.FindElement(".//NameID")
	if first, ok := nameID.Child[0].(*etree.CharData); !ok || first.Data != "admin@example.com" {
		t.Fatalf("fixture does not exercise truncation: first child %#v", nameID.Child[0])
	}
}

func TestSAMLRequired(t *testing.T) {
	partner := samlIdentity(t, "partner-rsa", false)
	msg := buildMessage(t, messageSpec{Refs: []string{samlBodyID, samlTSID}}, partner)
	p := samlPolicy(t)
	a, err := runSAML(t, p, msg, false, goldenNow)
	if a != nil || err != nil {
		t.Fatalf("optional SAML: %v, %v", a, err)
	}
	p.Required = true
	_, err = runSAML(t, p, msg, false, goldenNow)
	if !errors.Is(err, ErrSAMLMissing) || FaultCode(err) != "FailedAuthentication" {
		t.Fatalf("required SAML: %v (%s)", err, FaultCode(err))
	}
}

// The clock and skew decide the window, not the wall clock.
func TestSAMLConditionsClock(t *testing.T) {
	msg := goldenMessage(t, "saml-sv-str")
	for _, c := range []struct {
		now  time.Time
		skew time.Duration
		ok   bool
	}{
		{msgCreatedTime.Add(-59 * time.Second), 0, true}, // default skew 60s
		{msgCreatedTime.Add(-61 * time.Second), 0, false},
		{msgCreatedTime.Add(5*time.Minute + 59*time.Second), 0, true},
		{msgCreatedTime.Add(6 * time.Minute), 0, false},
		{msgCreatedTime.Add(5*time.Minute + 10*time.Second), 5 * time.Second, false},
		{msgCreatedTime.Add(-9 * time.Minute), 10 * time.Minute, true},
	} {
		p := samlPolicy(t)
		p.Skew = c.skew
		_, err := runSAML(t, p, msg, false, c.now)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrSAMLExpired)) {
			t.Errorf("now %s skew %s: err = %v", c.now.Format(time.RFC3339), c.skew, err)
		}
	}
}

func TestSAMLIssuerRevoked(t *testing.T) {
	idp := goldenCert(t, "saml-idp")
	fp := sha256.Sum256(idp.Raw)
	rev, err := NewRevocation(RevocationConfig{DenySHA256: [][32]byte{fp}})
	if err != nil {
		t.Fatal(err)
	}
	p := samlPolicy(t)
	p.Revocation = rev
	_, err = runSAML(t, p, goldenMessage(t, "saml-sv-str"), false, goldenNow)
	if !errors.Is(err, ErrCertificateRevoked) || FaultCode(err) != "InvalidSecurityToken" {
		t.Fatalf("denied issuer: %v (%s)", err, FaultCode(err))
	}
}

func TestSAMLTrustUnavailable(t *testing.T) {
	p := samlPolicy(t)
	p.Trust = samlFailingCerts{}
	_, err := runSAML(t, p, goldenMessage(t, "saml-sv-str"), false, goldenNow)
	if !errors.Is(err, ErrTrustUnavailable) || ClientError(err) {
		t.Fatalf("err = %v, ClientError %v", err, ClientError(err))
	}
}

type samlFailingCerts struct{}

func (samlFailingCerts) Certificates() ([]*x509.Certificate, error) {
	return nil, errors.New("vault sealed")
}

func TestSAMLConfirmationNames(t *testing.T) {
	for _, n := range []string{"holder-of-key", "sender-vouches", "bearer", ConfirmBearer} {
		if !ValidConfirmation(n) {
			t.Errorf("%s refused", n)
		}
	}
	if ValidConfirmation("urn:oasis:names:tc:SAML:2.0:cm:whatever") {
		t.Error("unknown method accepted")
	}
}

// samlRouteVerifier is a SOAP route with a SAML policy, as the gateway
// builds it.
func samlRouteVerifier(t testing.TB, adjust func(*Verifier)) *Verifier {
	v := &Verifier{
		Policy: Policy{RequireSigned: []Part{PartBody, PartTimestamp}},
		Trust:  goldenCerts{goldenCert(t, "ca")},
		SAML:   samlPolicy(t),
		Now:    func() time.Time { return goldenNow },
	}
	if adjust != nil {
		adjust(v)
	}
	return v
}

// Through VerifyEnvelope: the SAML step runs with the real message signer
// and the nodes the real signature covered.
func TestSAMLVerifier(t *testing.T) {
	revoked := func(cert string) func(*Verifier) {
		return func(v *Verifier) {
			r, err := NewRevocation(RevocationConfig{Deny: []*x509.Certificate{goldenCert(t, cert)}})
			if err != nil {
				t.Fatal(err)
			}
			v.Revocation = r
		}
	}
	cases := []struct {
		file   string
		adjust func(*Verifier)
		want   error
		method string
	}{
		{file: "saml-sv-str", method: ConfirmSenderVouches},
		{file: "saml-sv-direct", method: ConfirmSenderVouches},
		{file: "saml-hok", method: ConfirmHolderOfKey},
		{file: "saml-hok-keyvalue", method: ConfirmHolderOfKey},
		{file: "saml-hok-keyinfo", method: ConfirmHolderOfKey},
		{file: "saml-bearer", adjust: func(v *Verifier) { v.SAML.Confirmation = []string{"bearer"} }, method: ConfirmBearer},
		{file: "saml-bearer", want: ErrSAMLConfirmation},
		{file: "saml-sv-unsigned", want: ErrSAMLConfirmation},
		{file: "saml-hok-wrong-key", want: ErrSAMLConfirmation},
		{file: "saml-wrapped", want: ErrUnprocessedSecurityElement}, // the Wrapper, before the assertion
		{file: "saml-wrapped-advice", want: ErrSAMLWrapping},
		{file: "saml-wrapped-header", want: ErrSAMLWrapping},
		{file: "saml-in-body", want: ErrSAMLWrapping},
		{file: "saml-duplicate-id", want: ErrDuplicateID},
		{file: "saml-second-assertion", want: ErrSAMLWrapping},
		{file: "saml-nameid-comment", want: ErrSAMLComment},
		{file: "saml-tampered", want: ErrSAMLSignature},
		{file: "saml-reference-other-id", want: ErrSAMLWrapping},
		{file: "saml-audience", want: ErrSAMLAudience},
		// A SOAP route without a SAML policy does not process assertions.
		{file: "saml-sv-str", adjust: func(v *Verifier) { v.SAML = nil }, want: ErrUnprocessedSecurityElement},
		{file: "saml-hok-keyinfo", adjust: func(v *Verifier) { v.SAML = nil }, want: ErrUnprocessedSecurityElement},
		// Revocation applies to the message signer and to the issuer.
		{file: "saml-sv-str", adjust: revoked("partner-rsa"), want: ErrCertificateRevoked},
		{file: "saml-hok-keyinfo", adjust: revoked("partner-rsa"), want: ErrCertificateRevoked},
		{file: "saml-sv-str", adjust: revoked("saml-idp"), want: ErrCertificateRevoked},
		{file: "saml-sv-str", adjust: revoked("keyusage")},
	}
	for _, c := range cases {
		name := c.file
		if c.adjust != nil {
			name += "/adjusted"
		}
		t.Run(name, func(t *testing.T) {
			res, err := samlRouteVerifier(t, c.adjust).Verify(context.Background(), goldenMessage(t, c.file))
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("err = %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			defer res.Release()
			if c.method != "" && (res.Assertion == nil || res.Assertion.Confirmation != c.method || res.Assertion.Subject != "alice@example.com") {
				t.Fatalf("assertion = %+v", res.Assertion)
			}
			if !res.Signer.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(goldenCert(t, "partner-rsa").PublicKey) {
				t.Error("the signer is not the partner's key")
			}
			// The forwarded Security keeps the verified assertion; the
			// stripped form carries none.
			kept, err := res.Bytes(false)
			if err != nil {
				t.Fatal(err)
			}
			if c.method != "" && !bytes.Contains(kept, []byte(`ID="`+samlAssertionID+`"`)) {
				t.Error("the processed assertion was not forwarded in Security")
			}
			stripped, err := res.Bytes(true)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(stripped, []byte("Assertion")) {
				t.Error("stripped envelope still carries an assertion")
			}
		})
	}
}

// OneTimeUse: the second use of the assertion is a replay.
func TestSAMLOneTimeUse(t *testing.T) {
	idp := samlIdentity(t, "saml-idp", false)
	partner := samlIdentity(t, "partner-rsa", false)
	a := xmlString(t, signAssertion(t, buildAssertion(assertionSpec{OneTimeUse: true}), idp))
	first := buildMessage(t, messageSpec{Assertion: a, STR: true, Refs: []string{samlBodyID, samlTSID, samlSTRID}}, partner)
	// The same assertion in a new message (another Body), so that only the
	// assertion repeats, not the message.
	second := buildMessage(t, messageSpec{Assertion: a, STR: true, Refs: []string{samlBodyID, samlSTRID}}, partner)
	cache := NewMemoryReplayCache(func() time.Time { return goldenNow })
	v := samlRouteVerifier(t, func(v *Verifier) { v.Replay = cache; v.Policy.RequireSigned = []Part{PartBody} })
	res, err := v.Verify(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Assertion.OneTimeUse {
		t.Error("OneTimeUse not reported")
	}
	res.Release()
	if _, err := v.Verify(context.Background(), second); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use: %v", err)
	}
	v.Replay = nil
	if _, err := v.Verify(context.Background(), first); !errors.Is(err, ErrSAMLMalformed) {
		t.Fatalf("OneTimeUse without a replay cache: %v", err)
	}
}

// Concurrent verifications on one SAML route share the policy and the
// trust caches only (run with -race).
func TestSAMLVerifierConcurrent(t *testing.T) {
	v := samlRouteVerifier(t, nil)
	msgs := [][]byte{goldenMessage(t, "saml-sv-str"), goldenMessage(t, "saml-hok-keyinfo"), goldenMessage(t, "saml-wrapped-advice")}
	var wg sync.WaitGroup
	errs := make(chan error, 3*8)
	for i := 0; i < 8; i++ {
		for j, m := range msgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := v.Verify(context.Background(), m)
				switch {
				case j < 2 && err != nil:
					errs <- err
				case j < 2:
					if res.Assertion == nil || res.Assertion.Subject != "alice@example.com" {
						errs <- errors.New("wrong assertion")
					}
					res.Release()
				case !errors.Is(err, ErrSAMLWrapping):
					errs <- fmt.Errorf("wrapped: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Every ID-like attribute spelling counts toward a duplicate.
func TestSAMLCountID(t *testing.T) {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<r xmlns:wsu="` + NSWSU + `"><a ID="x"/><b Id="x"/><c wsu:Id="x"/><d xml:id="x"/><e id="x"/><f AssertionID="x"/><g Name="x"/></r>`); err != nil {
		t.Fatal(err)
	}
	if n := countID(doc.Root(), "x"); n != 6 {
		t.Fatalf("countID = %d, want 6", n)
	}
}

func TestSAMLPolicyCheck(t *testing.T) {
	if err := samlPolicy(t).Check(); err != nil {
		t.Fatal(err)
	}
	err := (&SAMLPolicy{Confirmation: []string{"bearer", "artifact"}, Skew: -time.Second}).Check()
	for _, want := range []string{"trust", "audience", `"artifact"`, "skew"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check() = %v, want it to name %s", err, want)
		}
	}
}
