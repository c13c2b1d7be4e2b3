package wssec

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// Outbound sender-vouches (Signer.SAMLAssertion) and the STR-Transform
// (WSS 1.0 §8.3) that WSS4J signs a sender-vouches assertion with.

// svAssertion is the IdP-signed sender-vouches assertion of the SAML goldens.
func svAssertion(t testing.TB) []byte {
	t.Helper()
	idp := samlIdentity(t, "saml-idp", false)
	return []byte(xmlString(t, signAssertion(t, buildAssertion(assertionSpec{}), idp)))
}

const svEnvelope = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>` +
	`<m:placeOrder xmlns:m="urn:example:orders"><m:item>widget</m:item><m:amount>100</m:amount></m:placeOrder></soap:Body></soap:Envelope>`

// svSigner is the bridge's signer: the partner's key, a fixed clock and
// deterministic IDs, so that what it signs can be a golden file.
func svSigner(t testing.TB, assertion []byte, mode string) *Signer {
	t.Helper()
	partner := samlIdentity(t, "partner-rsa", false)
	n := 0
	return &Signer{
		Chain: []*x509.Certificate{partner.Cert}, Key: partner.Key,
		Now:           func() time.Time { return msgCreatedTime },
		NewID:         func() string { n++; return fmt.Sprintf("6a1c%02d", n) },
		SAMLAssertion: assertion, SAMLReference: mode,
	}
}

func svSign(t testing.TB, mode string) []byte {
	t.Helper()
	out, err := svSigner(t, svAssertion(t), mode).SignBytes([]byte(svEnvelope), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The STR-Transform golden is what the signer writes in WSS4J's shape;
// -update-saml rewrites it.
const strGolden = "saml-str-transform"

func TestSAMLSTRGolden(t *testing.T) {
	data := svSign(t, SAMLRefSTRTransform)
	file := filepath.Join(goldenDir, strGolden+".xml")
	if *updateSAML {
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update-saml)", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s: golden differs from what the signer writes now (run with -update-saml)", strGolden)
	}
	// WSS4J's shape: the SAMLID token reference in Security, signed
	// through the STR-Transform with exc-c14n parameters.
	for _, want := range []string{
		`<wsse:KeyIdentifier ValueType="` + ValueTypeSAMLID + `">` + samlAssertionID + `</wsse:KeyIdentifier>`,
		`<ds:Transform Algorithm="` + algSTRTransform + `"><wsse:TransformationParameters><ds:CanonicalizationMethod Algorithm="` + AlgExcC14N + `"/></wsse:TransformationParameters></ds:Transform>`,
	} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("golden lacks %s", want)
		}
	}
}

// Round trip: both reference modes verify on a sender-vouches route, and
// the assertion is what the backend is told about.
func TestSignSAMLSenderVouchesRoundTrip(t *testing.T) {
	for _, mode := range []string{"", SAMLRefID, SAMLRefSTRTransform} {
		t.Run("mode="+mode, func(t *testing.T) {
			msg := svSign(t, mode)
			v := samlRouteVerifier(t, func(v *Verifier) { v.SAML.Confirmation = []string{"sender-vouches"} })
			res, err := v.Verify(context.Background(), msg)
			if err != nil {
				t.Fatalf("refused: %v\n%s", err, msg)
			}
			defer res.Release()
			if a := res.Assertion; a == nil || a.Confirmation != ConfirmSenderVouches || a.Subject != "alice@example.com" || a.ID != samlAssertionID {
				t.Fatalf("assertion = %+v", res.Assertion)
			}
			fwd, err := res.Bytes(false)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(fwd, []byte(`ID="`+samlAssertionID+`"`)) {
				t.Error("the verified assertion is not forwarded")
			}
			// Without a SAML policy the route refuses what it cannot process.
			if _, err := samlRouteVerifier(t, func(v *Verifier) { v.SAML = nil }).Verify(context.Background(), msg); !errors.Is(err, ErrUnprocessedSecurityElement) {
				t.Errorf("route without SAML: err = %v", err)
			}
		})
	}
}

// The direct mode references the assertion by its own ID and never adds a
// wsu:Id to it (which would break the issuer's signature).
func TestSignSAMLDirectReference(t *testing.T) {
	msg := string(svSign(t, SAMLRefID))
	if !strings.Contains(msg, `URI="#`+samlAssertionID+`"`) {
		t.Error("no Reference to the assertion's ID")
	}
	if strings.Contains(msg, "STR-Transform") || strings.Count(msg, "SecurityTokenReference>") != 1 {
		t.Error("the direct mode wrote a SAML token reference")
	}
	start := strings.Index(msg, "<saml2:Assertion")
	if start < 0 || strings.Contains(msg[start:start+strings.Index(msg[start:], ">")], "wsu:Id") {
		t.Error("no assertion, or it got a wsu:Id")
	}
}

func TestSignSAMLConfig(t *testing.T) {
	good := svAssertion(t)
	unsigned := []byte(xmlString(t, buildAssertion(assertionSpec{})))
	cases := []struct {
		name      string
		assertion []byte
		mode      string
		env       string
		limits    Limits
		want      []error
	}{
		{name: "not an assertion", assertion: []byte(`<x:Assertion xmlns:x="urn:other" ID="a"/>`), want: []error{ErrSignerConfig}},
		{name: "no ID", assertion: []byte(`<saml2:Assertion xmlns:saml2="` + NSSAML2 + `"/>`), want: []error{ErrSignerConfig}},
		{name: "unsigned", assertion: unsigned, want: []error{ErrSignerConfig}},
		{name: "DTD", assertion: append([]byte(`<!DOCTYPE a [<!ENTITY x "y">]>`), good...), want: []error{ErrSignerConfig, ErrDTD}},
		{name: "not XML", assertion: []byte(`<saml2:Assertion`), want: []error{ErrSignerConfig, ErrNotXML}},
		{name: "too large", assertion: good, limits: Limits{MaxBytes: 100}, want: []error{ErrSignerConfig, ErrTooLarge}},
		{name: "unknown mode", assertion: good, mode: "xpath", want: []error{ErrSignerConfig}},
		{name: "ID clash", assertion: good, want: []error{ErrDuplicateID},
			env: strings.Replace(svEnvelope, "<m:item>", `<m:item ID="`+samlAssertionID+`">`, 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := svSigner(t, c.assertion, c.mode)
			s.SAMLLimits = c.limits
			env := c.env
			if env == "" {
				env = svEnvelope
			}
			_, err := s.SignBytes([]byte(env), Limits{})
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Fatalf("err = %v, want %v", err, w)
				}
			}
		})
	}
}

// strGoldenEdit returns the STR-Transform golden with old replaced by new
// (exactly once).
func strGoldenEdit(t *testing.T, old, new string) []byte {
	t.Helper()
	msg := goldenMessage(t, strGolden)
	if bytes.Count(msg, []byte(old)) != 1 {
		t.Fatalf("%q is not in the golden exactly once", old)
	}
	return bytes.Replace(msg, []byte(old), []byte(new), 1)
}

func TestSAMLSTRTransformVerify(t *testing.T) {
	kiOpen := `<wsse:KeyIdentifier ValueType="` + ValueTypeSAMLID + `">`
	strTransform := `<ds:Transform Algorithm="` + algSTRTransform + `">`
	params := `<wsse:TransformationParameters><ds:CanonicalizationMethod Algorithm="` + AlgExcC14N + `"/></wsse:TransformationParameters>`
	cases := []struct {
		name   string
		msg    func(t *testing.T) []byte
		adjust func(*Verifier)
		want   error
	}{
		{name: "golden", msg: func(t *testing.T) []byte { return goldenMessage(t, strGolden) }},
		// The assertion is what the STR-Transform digests: any change to
		// it fails the message signature before its own is looked at.
		{name: "tampered assertion", want: ErrDigestMismatch,
			msg: func(t *testing.T) []byte { return strGoldenEdit(t, ">alice@example.com<", ">mallory@example.com<") }},
		{name: "tampered attribute", want: ErrDigestMismatch,
			msg: func(t *testing.T) []byte { return strGoldenEdit(t, ">approver<", ">admin<") }},
		// The STR's own bytes are not signed, only what it dereferences
		// to: pointing it at anything but the processed assertion fails.
		{name: "STR names the Body", want: ErrSAMLWrapping,
			msg: func(t *testing.T) []byte {
				return strGoldenEdit(t, kiOpen+samlAssertionID, kiOpen+"id-6a1c05")
			}},
		{name: "STR names the Timestamp", want: ErrSAMLWrapping,
			msg: func(t *testing.T) []byte { return strGoldenEdit(t, kiOpen+samlAssertionID, kiOpen+"TS-6a1c02") }},
		{name: "STR names the BinarySecurityToken", want: ErrSAMLWrapping,
			msg: func(t *testing.T) []byte { return strGoldenEdit(t, kiOpen+samlAssertionID, kiOpen+"X509-6a1c01") }},
		{name: "STR names nothing", want: ErrReferenceNotFound,
			msg: func(t *testing.T) []byte { return strGoldenEdit(t, kiOpen+samlAssertionID, kiOpen+"_nowhere") }},
		{name: "STR names a foreign assertion", want: ErrSAMLWrapping,
			msg: func(t *testing.T) []byte {
				msg := strGoldenEdit(t, kiOpen+samlAssertionID, kiOpen+"_evil")
				evil := xmlString(t, buildAssertion(assertionSpec{ID: "_evil", NameID: "mallory@example.com"}))
				return bytes.Replace(msg, []byte("<wsse:BinarySecurityToken"), []byte(evil+"<wsse:BinarySecurityToken"), 1)
			}},
		// The transform applies to a token reference in the Security
		// header only: not to the Body, nor to the one in KeyInfo.
		{name: "STR-Transform on the Body", want: ErrReferenceNotFound,
			msg: func(t *testing.T) []byte {
				msg := goldenMessage(t, strGolden)
				// The Body's reference gets the STR-Transform (SignedInfo
				// changes, but shape and targets are checked first).
				i := bytes.Index(msg, []byte(`URI="#id-`))
				j := bytes.Index(msg[i:], []byte(`<ds:Transform Algorithm="`+AlgExcC14N+`">`))
				k := bytes.Index(msg[i+j:], []byte(`</ds:Transform>`))
				out := append([]byte{}, msg[:i+j]...)
				out = append(out, strTransform+params+`</ds:Transform>`...)
				return append(out, msg[i+j+k+len(`</ds:Transform>`):]...)
			}},
		{name: "STR-Transform on KeyInfo's reference", want: ErrReferenceNotFound,
			msg: func(t *testing.T) []byte {
				return strGoldenEdit(t, `<ds:Reference URI="#STR-6a1c03">`, `<ds:Reference URI="#STR-6a1c07">`)
			}},
		// Parameters: exc-c14n only, one CanonicalizationMethod, nothing else.
		{name: "inclusive c14n parameter", want: ErrUnsupportedAlgorithm,
			msg: func(t *testing.T) []byte {
				return strGoldenEdit(t, params, `<wsse:TransformationParameters><ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/></wsse:TransformationParameters>`)
			}},
		{name: "with-comments parameter", want: ErrUnsupportedAlgorithm,
			msg: func(t *testing.T) []byte {
				return strGoldenEdit(t, params, `<wsse:TransformationParameters><ds:CanonicalizationMethod Algorithm="`+AlgExcC14N+`WithComments"/></wsse:TransformationParameters>`)
			}},
		{name: "no parameters", want: ErrUnsupportedAlgorithm,
			msg: func(t *testing.T) []byte { return strGoldenEdit(t, params, "") }},
		{name: "two CanonicalizationMethods", want: ErrUnsupportedAlgorithm,
			msg: func(t *testing.T) []byte {
				return strGoldenEdit(t, params, `<wsse:TransformationParameters><ds:CanonicalizationMethod Algorithm="`+AlgExcC14N+`"/><ds:CanonicalizationMethod Algorithm="`+AlgExcC14N+`"/></wsse:TransformationParameters>`)
			}},
		{name: "parameters in another namespace", want: ErrUnsupportedAlgorithm,
			msg: func(t *testing.T) []byte {
				return strGoldenEdit(t, params, `<x:TransformationParameters xmlns:x="urn:x"><ds:CanonicalizationMethod Algorithm="`+AlgExcC14N+`"/></x:TransformationParameters>`)
			}},
		{name: "STR-Transform then exc-c14n", want: ErrUnsupportedAlgorithm,
			msg: func(t *testing.T) []byte {
				return strGoldenEdit(t, params+`</ds:Transform>`, params+`</ds:Transform><ds:Transform Algorithm="`+AlgExcC14N+`"/>`)
			}},
		{name: "too many transforms", want: ErrTooManyTransforms, adjust: func(v *Verifier) { v.Policy.Limits.MaxTransforms = 1 },
			msg: func(t *testing.T) []byte {
				return strGoldenEdit(t, params+`</ds:Transform>`, params+`</ds:Transform><ds:Transform Algorithm="`+AlgExcC14N+`"/>`)
			}},
		// A route that does not allow sender-vouches refuses it.
		{name: "route without sender-vouches", want: ErrSAMLConfirmation,
			adjust: func(v *Verifier) { v.SAML.Confirmation = []string{"holder-of-key"} },
			msg:    func(t *testing.T) []byte { return goldenMessage(t, strGolden) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := samlRouteVerifier(t, c.adjust)
			res, err := v.Verify(context.Background(), c.msg(t))
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
			if res.Assertion == nil || res.Assertion.Confirmation != ConfirmSenderVouches {
				t.Fatalf("assertion = %+v", res.Assertion)
			}
		})
	}
}

// The STR-Transform output: the token's exc-c14n form with the default
// namespace declared on its apex (xmlns="" when none is in scope).
func TestWriteSTRTransform(t *testing.T) {
	cases := []struct{ in, want string }{
		{`<a:T xmlns:a="urn:a" x="1"><a:c/></a:T>`, `<a:T xmlns="" xmlns:a="urn:a" x="1"><a:c></a:c></a:T>`},
		{`<a:T xmlns:a="urn:a"/>`, `<a:T xmlns="" xmlns:a="urn:a"></a:T>`},
		{`<T xmlns="urn:d"><c/></T>`, `<T xmlns="urn:d"><c></c></T>`},
		// A default namespace in scope is always rendered (WSS4J's "#default").
		{`<r xmlns="urn:d"><a:T xmlns:a="urn:a"/></r>`, `<a:T xmlns="urn:d" xmlns:a="urn:a"></a:T>`},
	}
	for _, c := range cases {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(c.in); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		token := doc.Root()
		if token.Tag == "r" {
			token = token.ChildElements()[0]
		}
		if err := writeSTRTransform(&b, token, ""); err != nil {
			t.Fatal(err)
		}
		if b.String() != c.want {
			t.Errorf("%s: got %s, want %s", c.in, b.String(), c.want)
		}
	}
}

// FuzzVerifySAML runs the SAML route verifier (STR-Transform included) on
// the SAML goldens and their mutations: no panic, and whatever is accepted
// carries an assertion confirmed by a method the route allows.
func FuzzVerifySAML(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "wssec", "saml-*.xml"))
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	v := samlRouteVerifier(f, nil)
	f.Fuzz(func(t *testing.T, msg []byte) {
		res, err := v.Verify(context.Background(), msg)
		if err != nil {
			return
		}
		defer res.Release()
		if res.Signer == nil || res.Body == nil || res.Body.Parent() != res.Envelope.Envelope {
			t.Fatal("accepted a message without a signer or with a detached Body")
		}
		if a := res.Assertion; a != nil && a.Confirmation != ConfirmSenderVouches && a.Confirmation != ConfirmHolderOfKey {
			t.Fatalf("accepted confirmation %q", a.Confirmation)
		}
	})
}
