package interop

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"wsgate/internal/pki"
	"wsgate/wssec"
)

// pythonPath is Debian's interpreter: python3-zeep and python3-xmlsec load
// only there, not in whatever python3 comes first on PATH.
const pythonPath = "/usr/bin/python3"

const installHint = "apt-get install -y xmlsec1 python3-zeep python3-xmlsec"

// missingTool fails the test under CI (a CI run must never hide a missing
// interop stack) and skips it elsewhere.
func missingTool(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not available (%v) and CI is set; install with: %s", what, err, installHint)
	}
	t.Skipf("%s is not available (%v); install with: %s", what, err, installHint)
}

// requireXmlsec1 returns the xmlsec1 path or fails/skips.
func requireXmlsec1(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("xmlsec1")
	if err != nil {
		missingTool(t, "xmlsec1", err)
	}
	return p
}

// requireZeep checks that Debian's python3 can import zeep and xmlsec.
func requireZeep(t *testing.T) {
	t.Helper()
	out, err := exec.Command(pythonPath, "-c", "import zeep, xmlsec, lxml").CombinedOutput()
	if err != nil {
		missingTool(t, pythonPath+" with zeep and xmlsec", fmt.Errorf("%v: %s", err, bytes.TrimSpace(out)))
	}
}

// testPKI is a fresh CA and partner leaf, valid around now, with PEM files.
type testPKI struct {
	CA, Leaf                  *pki.Identity
	CAFile, CertFile, KeyFile string
	CAPEM, CertPEM            []byte
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	now := time.Now()
	is := pki.Issuer{Now: func() time.Time { return now }}
	ca, err := is.Issue(pki.Options{CommonName: "wsgate interop CA", IsCA: true,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour)}, nil)
	if err != nil {
		t.Fatalf("issue CA: %v", err)
	}
	leaf, err := is.Issue(pki.Options{CommonName: "interop-partner", Key: pki.RSA2048,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, ca)
	if err != nil {
		t.Fatalf("issue leaf: %v", err)
	}
	keyPEM, err := pki.KeyPEM(leaf.Key)
	if err != nil {
		t.Fatalf("key PEM: %v", err)
	}
	dir := t.TempDir()
	p := &testPKI{
		CA: ca, Leaf: leaf,
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "partner.pem"),
		KeyFile:  filepath.Join(dir, "partner-key.pem"),
		CAPEM:    pki.CertPEM(ca.Cert),
		CertPEM:  pki.CertPEM(leaf.Cert),
	}
	writeFile(t, p.CAFile, p.CAPEM)
	writeFile(t, p.CertFile, p.CertPEM)
	writeFile(t, p.KeyFile, keyPEM)
	return p
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// signedMsg is one message signed by a foreign stack.
type signedMsg struct {
	Name string
	Data []byte
	// SHA1 marks RSA-SHA1/SHA-1 messages: only routes with allow_sha1 accept them.
	SHA1 bool
	// Pinned marks messages whose signer is referenced (IssuerSerial, SKI)
	// rather than carried: the leaf itself must be in the trust set.
	Pinned bool
	// SOAP12 marks SOAP 1.2 envelopes (application/soap+xml).
	SOAP12 bool
}

// tamperedAmount is the Body text every test envelope carries once; changing
// it must break the Body digest.
const (
	amountOriginal = ">100<"
	amountTampered = ">999<"
)

// tamper returns a copy of msg with one Body byte range changed.
func tamper(t *testing.T, msg []byte) []byte {
	t.Helper()
	if n := bytes.Count(msg, []byte(amountOriginal)); n != 1 {
		t.Fatalf("message carries %q %d times, want 1", amountOriginal, n)
	}
	return bytes.Replace(msg, []byte(amountOriginal), []byte(amountTampered), 1)
}

// staticTrust is a fixed trust set.
type staticTrust []*x509.Certificate

func (s staticTrust) Certificates() ([]*x509.Certificate, error) { return s, nil }

// verifierFor builds the in-process verifier matching m's route policy.
func verifierFor(p *testPKI, m signedMsg, allowSHA1 bool) *wssec.Verifier {
	trust := staticTrust{p.CA.Cert}
	if m.Pinned {
		trust = append(trust, p.Leaf.Cert)
	}
	return &wssec.Verifier{
		Policy: wssec.Policy{
			RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp},
			AllowSHA1:     allowSHA1,
		},
		Trust: trust,
		Now:   time.Now,
	}
}

// findBody returns the SOAP 1.1 or 1.2 Body of a parsed envelope.
func findBody(doc *etree.Document) *etree.Element {
	root := doc.Root()
	if root == nil {
		return nil
	}
	for _, c := range root.ChildElements() {
		ns := c.NamespaceURI()
		if c.Tag == "Body" && (ns == wssec.NSSOAP11 || ns == wssec.NSSOAP12) {
			return c
		}
	}
	return nil
}

// hasSecurityHeader reports whether any wsse:Security element is left.
func hasSecurityHeader(el *etree.Element) bool {
	if el.Tag == "Security" && (el.NamespaceURI() == wssec.NSWSSE || el.NamespaceURI() == wssec.NSWSSE11) {
		return true
	}
	for _, c := range el.ChildElements() {
		if hasSecurityHeader(c) {
			return true
		}
	}
	return false
}

// canonical renders el in a prefix-independent form: names by namespace URI,
// attributes sorted, namespace declarations dropped, text kept exactly. Two
// Bodies with the same canonical form carry the same content.
func canonical(el *etree.Element) string {
	var b strings.Builder
	writeCanonical(&b, el)
	return b.String()
}

func writeCanonical(b *strings.Builder, el *etree.Element) {
	fmt.Fprintf(b, "<{%s}%s", el.NamespaceURI(), el.Tag)
	var attrs []string
	for _, a := range el.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		attrs = append(attrs, fmt.Sprintf(" {%s}%s=%q", a.NamespaceURI(), a.Key, a.Value))
	}
	sort.Strings(attrs)
	b.WriteString(strings.Join(attrs, ""))
	b.WriteString(">")
	for _, tok := range el.Child {
		switch tok := tok.(type) {
		case *etree.Element:
			writeCanonical(b, tok)
		case *etree.CharData:
			fmt.Fprintf(b, "%q", tok.Data)
		}
	}
	b.WriteString("</>")
}

// bodyCanonical parses msg and returns its Body's canonical form.
func bodyCanonical(t *testing.T, msg []byte) (string, *etree.Document) {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(msg); err != nil {
		t.Fatalf("parse envelope: %v", err)
	}
	body := findBody(doc)
	if body == nil {
		t.Fatalf("no SOAP Body in:\n%s", msg)
	}
	return canonical(body), doc
}
