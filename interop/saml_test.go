package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"wsgate/internal/pki"
	"wsgate/wssec"
)

// requirePyXmlsec checks that Debian's python3 can import xmlsec and lxml.
func requirePyXmlsec(t *testing.T) {
	t.Helper()
	out, err := exec.Command(pythonPath, "-c", "import xmlsec, lxml").CombinedOutput()
	if err != nil {
		missingTool(t, pythonPath+" with xmlsec", fmt.Errorf("%v: %s", err, bytes.TrimSpace(out)))
	}
}

// samlTmplData fills saml-wss4j.tmpl.xml, a message in WSS4J's SAML shape:
// saml2 prefix, the assertion signed by the IdP (enveloped, exc-c14n with
// InclusiveNamespaces), a BinarySecurityToken of the sender, a Timestamp, a
// SecurityTokenReference with TokenType SAMLV2.0 and a SAMLID KeyIdentifier,
// and the sender's signature.
type samlTmplData struct {
	AssertionID, Created, Expires string
	IdPCert, PartnerCert, HoKCert string
	Subject, Method, Nonce        string
	Refs                          []string
}

type samlPKI struct {
	*testPKI
	IdP                 *pki.Identity
	IdPKeyFile, IdPCert string
}

func newSAMLPKI(t *testing.T) *samlPKI {
	t.Helper()
	p := newTestPKI(t)
	now := time.Now()
	idp, err := pki.Issuer{}.Issue(pki.Options{CommonName: "interop IdP", Key: pki.RSA2048,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.KeyPEM(idp.Key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &samlPKI{testPKI: p, IdP: idp, IdPKeyFile: filepath.Join(dir, "idp-key.pem"), IdPCert: filepath.Join(dir, "idp.pem")}
	writeFile(t, s.IdPKeyFile, keyPEM)
	writeFile(t, s.IdPCert, pki.CertPEM(idp.Cert))
	return s
}

// pySAMLMessage fills the template and signs both signatures with
// python-xmlsec (saml_sign.py), then checks both with xmlsec1 so that a
// broken fixture is reported here, not blamed on wsgate.
func pySAMLMessage(t *testing.T, p *samlPKI, d samlTmplData) []byte {
	t.Helper()
	requirePyXmlsec(t)
	xmlsec1 := requireXmlsec1(t)
	now := time.Now().UTC()
	d.AssertionID = "_" + strings.ToLower(rand.Text())
	d.Created = now.Format("2006-01-02T15:04:05.000Z")
	d.Expires = now.Add(5 * time.Minute).Format("2006-01-02T15:04:05.000Z")
	d.IdPCert = base64.StdEncoding.EncodeToString(p.IdP.Cert.Raw)
	d.PartnerCert = base64.StdEncoding.EncodeToString(p.Leaf.Cert.Raw)
	d.Nonce = rand.Text()
	if d.Subject == "" {
		d.Subject = "alice"
	}
	for i, r := range d.Refs {
		if r == "ASSERTION" {
			d.Refs[i] = d.AssertionID
		}
	}
	tmpl, err := template.ParseFiles("saml-wss4j.tmpl.xml")
	if err != nil {
		t.Fatal(err)
	}
	var filled bytes.Buffer
	if err := tmpl.Execute(&filled, d); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.xml"), filepath.Join(dir, "signed.xml")
	writeFile(t, in, filled.Bytes())
	cmd := exec.Command(pythonPath, "saml_sign.py", "--idp-key", p.IdPKeyFile, "--idp-cert", p.IdPCert,
		"--key", p.KeyFile, "--cert", p.CertFile, "--in", in, "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("saml_sign.py: %v\n%s", err, b)
	}
	for _, c := range []struct{ node, cert string }{{"SIG-SAML", p.IdPCert}, {"SIG-MSG", p.CertFile}} {
		check := exec.Command(xmlsec1, "--verify", "--pubkey-cert-pem", c.cert, "--node-xpath", "//*[@Id='"+c.node+"']",
			"--id-attr:ID", wssec.NSSAML2+":Assertion",
			"--id-attr:Id", wssec.NSSOAP11+":Body",
			"--id-attr:Id", wssec.NSWSU+":Timestamp",
			"--id-attr:Id", wssec.NSWSSE+":SecurityTokenReference", out)
		if b, err := check.CombinedOutput(); err != nil {
			t.Fatalf("xmlsec1 --verify %s of python-xmlsec's signature: %v\n%s", c.node, err, b)
		}
	}
	signed, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func samlVerifier(p *samlPKI, confirmation ...string) *wssec.Verifier {
	return &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  staticTrust{p.CA.Cert},
		SAML: &wssec.SAMLPolicy{
			Trust:        staticTrust{p.IdP.Cert},
			Audience:     []string{"urn:wsgate:orders"},
			Confirmation: confirmation,
			Required:     true,
		},
		Now: time.Now,
	}
}

// Assertions signed by python-xmlsec (libxmlsec1), in WSS4J's message shape,
// verify through wsgate: sender-vouches through the SAMLID token reference
// and through a direct reference, holder-of-key through the subject's key.
func TestSAMLPythonXmlsec(t *testing.T) {
	p := newSAMLPKI(t)
	partnerCert := base64.StdEncoding.EncodeToString(p.Leaf.Cert.Raw)
	cases := []struct {
		name   string
		data   samlTmplData
		method string
	}{
		{"wss4j-sender-vouches-str", samlTmplData{Method: wssec.ConfirmSenderVouches, Refs: []string{"STR-1", "TS-1", "Body-1"}},
			wssec.ConfirmSenderVouches},
		{"sender-vouches-direct", samlTmplData{Method: wssec.ConfirmSenderVouches, Refs: []string{"ASSERTION", "TS-1", "Body-1"}},
			wssec.ConfirmSenderVouches},
		{"holder-of-key", samlTmplData{Method: wssec.ConfirmHolderOfKey, HoKCert: partnerCert, Refs: []string{"TS-1", "Body-1"}},
			wssec.ConfirmHolderOfKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := pySAMLMessage(t, p, c.data)
			res, err := samlVerifier(p).Verify(context.Background(), msg)
			if err != nil {
				t.Fatalf("refused: %v\n%s", err, msg)
			}
			defer res.Release()
			a := res.Assertion
			if a == nil || a.Confirmation != c.method || a.Subject != "alice" || a.Issuer != "https://sts.example.com/wss4j" ||
				len(a.Attributes["role"]) != 1 || a.Attributes["role"][0] != "buyer" {
				t.Fatalf("assertion = %+v", a)
			}
			// The body is still ours to tamper with: the same message with
			// the amount changed must fail, so the test is not vacuous.
			if _, err := samlVerifier(p).Verify(context.Background(), tamper(t, msg)); err == nil {
				t.Fatal("tampered message accepted")
			}
		})
	}
}

// The same shapes, refused where the policy or the binding says so.
func TestSAMLPythonXmlsecRefused(t *testing.T) {
	p := newSAMLPKI(t)
	sv := pySAMLMessage(t, p, samlTmplData{Method: wssec.ConfirmSenderVouches, Refs: []string{"STR-1", "TS-1", "Body-1"}})
	unbound := pySAMLMessage(t, p, samlTmplData{Method: wssec.ConfirmSenderVouches, Refs: []string{"TS-1", "Body-1"}})
	cases := []struct {
		name string
		msg  []byte
		v    *wssec.Verifier
		want error
	}{
		{"bearer only", sv, samlVerifier(p, "bearer"), wssec.ErrSAMLConfirmation},
		{"sender did not sign the assertion", unbound, samlVerifier(p), wssec.ErrSAMLConfirmation},
		{"other audience", sv, func() *wssec.Verifier { v := samlVerifier(p); v.SAML.Audience = []string{"urn:x"}; return v }(), wssec.ErrSAMLAudience},
		{"other IdP", sv, func() *wssec.Verifier { v := samlVerifier(p); v.SAML.Trust = staticTrust{p.CA.Cert}; return v }(), wssec.ErrSAMLIssuer},
		{"no SAML policy", sv, func() *wssec.Verifier { v := samlVerifier(p); v.SAML = nil; return v }(), wssec.ErrUnprocessedSecurityElement},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.v.Verify(context.Background(), c.msg)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// wsgate's own SAML goldens (assertions signed by goxmldsig) verify in
// xmlsec1: what wsgate accepts is standard XML-DSig, not a private dialect.
func TestSAMLGoldenAssertionsVerifyInXmlsec1(t *testing.T) {
	xmlsec1 := requireXmlsec1(t)
	for _, name := range []string{"saml-sv-str", "saml-hok", "saml-bearer"} {
		in := filepath.Join("..", "testdata", "wssec", name+".xml")
		cmd := exec.Command(xmlsec1, "--verify", "--pubkey-cert-pem", filepath.Join("..", "testdata", "pki", "saml-idp.pem"),
			"--id-attr:ID", wssec.NSSAML2+":Assertion",
			"--node-xpath", "//*[local-name()='Assertion']/*[local-name()='Signature']", in)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: xmlsec1 --verify: %v\n%s", name, err, b)
		}
	}
	// And xmlsec1 refuses the tampered one, so the check above means something.
	cmd := exec.Command(xmlsec1, "--verify", "--pubkey-cert-pem", filepath.Join("..", "testdata", "pki", "saml-idp.pem"),
		"--id-attr:ID", wssec.NSSAML2+":Assertion",
		"--node-xpath", "//*[local-name()='Assertion']/*[local-name()='Signature']",
		filepath.Join("..", "testdata", "wssec", "saml-tampered.xml"))
	if err := cmd.Run(); err == nil {
		t.Error("xmlsec1 accepted the tampered assertion")
	}
}
