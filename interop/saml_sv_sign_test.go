package interop

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"wsgate/wssec"
)

// What `wsgate sign` and the bridge send with bridge.sign.saml_assertion:
// the configured assertion (signed by its IdP) in wsse:Security, covered by
// the message signature by a direct ID Reference, verifies in xmlsec1 with
// the partner certificate, its assertion with the IdP's, and in wssec on a
// sender-vouches route. The assertion is the one of the SAML goldens
// (testdata/wssec), judged at their clock.

var svAssertionRE = regexp.MustCompile(`(?s)<saml2:Assertion\b.*?</saml2:Assertion>`)

var svNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func svSignedMessage(t *testing.T) []byte {
	t.Helper()
	golden, err := os.ReadFile(filepath.Join("..", "testdata", "wssec", "saml-sv-direct.xml"))
	if err != nil {
		t.Fatal(err)
	}
	assertion := svAssertionRE.Find(golden)
	if assertion == nil {
		t.Fatal("no assertion in saml-sv-direct.xml")
	}
	s := ourSigner(t, "partner-rsa")
	s.Now = func() time.Time { return svNow }
	s.SAMLAssertion = assertion
	out, err := s.SignBytes([]byte(ourEnvelope(false, "", ourTransfer)), wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// svXmlsec1 verifies one signature of msg (the one nodeXPath selects)
// with cert, the assertion's ID registered as xmlsec1 needs it.
func svXmlsec1(t *testing.T, xmlsec1 string, msg []byte, cert, nodeXPath string) error {
	t.Helper()
	f := filepath.Join(t.TempDir(), "msg.xml")
	writeFile(t, f, msg)
	out, err := exec.Command(xmlsec1, "--verify", "--pubkey-cert-pem", filepath.Join(pkiDir, cert),
		"--node-xpath", nodeXPath,
		"--id-attr:ID", wssec.NSSAML2+":Assertion",
		"--id-attr:Id", wssec.NSSOAP11+":Body",
		"--id-attr:Id", wssec.NSWSU+":Timestamp", f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xmlsec1: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// svCert loads a committed testdata/pki certificate.
func svCert(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pkiDir, name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	svMessageSig   = "//*[local-name()='Security']/*[local-name()='Signature']"
	svAssertionSig = "//*[local-name()='Assertion']/*[local-name()='Signature']"
)

func TestOurSenderVouchesVerifiesInXmlsec1(t *testing.T) {
	xmlsec1 := requireXmlsec1(t)
	msg := svSignedMessage(t)
	if err := svXmlsec1(t, xmlsec1, msg, "partner-rsa.pem", svMessageSig); err != nil {
		t.Fatalf("message signature: %v\n%s", err, msg)
	}
	if !bytes.Contains(msg, []byte(`<ds:Reference URI="#_a75adf55-01d7-40cc-929f-dbd8372ebdfc">`)) {
		t.Fatal("the message signature does not reference the assertion")
	}
	// Embedded in Security, the IdP's signature still verifies.
	if err := svXmlsec1(t, xmlsec1, msg, "saml-idp.pem", svAssertionSig); err != nil {
		t.Fatalf("assertion signature: %v", err)
	}
	// xmlsec1 refuses a changed assertion (the message signature covers
	// it), a tampered Body, and another signer's certificate.
	changed := bytes.Replace(msg, []byte(">alice@example.com<"), []byte(">mallory@example.com<"), 1)
	if err := svXmlsec1(t, xmlsec1, changed, "partner-rsa.pem", svMessageSig); err == nil {
		t.Error("xmlsec1 accepts a changed assertion")
	}
	if err := svXmlsec1(t, xmlsec1, tamper(t, msg), "partner-rsa.pem", svMessageSig); err == nil {
		t.Error("xmlsec1 accepts a tampered Body")
	}
	if err := svXmlsec1(t, xmlsec1, msg, "partner-ecdsa.pem", svMessageSig); err == nil {
		t.Error("xmlsec1 accepts the message with another certificate")
	}
}

func TestOurSenderVouchesVerifiesInWssec(t *testing.T) {
	msg := svSignedMessage(t)
	v := &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  staticTrust{svCert(t, "ca")},
		SAML: &wssec.SAMLPolicy{Trust: staticTrust{svCert(t, "saml-idp")},
			Audience: []string{"urn:wsgate:orders"}, Confirmation: []string{"sender-vouches"}},
		Now: func() time.Time { return svNow.Add(time.Minute) },
	}
	res, err := v.Verify(context.Background(), msg)
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	defer res.Release()
	if a := res.Assertion; a == nil || a.Confirmation != wssec.ConfirmSenderVouches || a.Subject != "alice@example.com" {
		t.Fatalf("assertion = %+v", res.Assertion)
	}
}
