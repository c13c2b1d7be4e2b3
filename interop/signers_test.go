package interop

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"text/template"
	"time"

	"wsgate/wssec"
)

// zeepInput is the unsigned envelope zeep signs; zeep adds the Security header.
const zeepInput = `<?xml version="1.0" encoding="UTF-8"?>
<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Header/><soap-env:Body><m:Transfer xmlns:m="urn:wsgate:interop"><m:From>alice</m:From><m:To>bob</m:To><m:Amount>100</m:Amount></m:Transfer></soap-env:Body></soap-env:Envelope>
`

// zeepMessages signs zeepInput with zeep's BinarySignature and Signature,
// with RSA-SHA1 (zeep's default) and RSA-SHA256, Timestamp included.
func zeepMessages(t *testing.T, p *testPKI) []signedMsg {
	t.Helper()
	requireZeep(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "envelope.xml")
	writeFile(t, in, []byte(zeepInput))
	cases := []struct {
		name, mode, alg string
		sha1, pinned    bool
	}{
		{"zeep-binary-sha1", "binary", "sha1", true, false},
		{"zeep-binary-sha256", "binary", "sha256", false, false},
		{"zeep-issuerserial-sha1", "issuerserial", "sha1", true, true},
		{"zeep-issuerserial-sha256", "issuerserial", "sha256", false, true},
	}
	var msgs []signedMsg
	for _, c := range cases {
		out := filepath.Join(dir, c.name+".xml")
		cmd := exec.Command(pythonPath, "zeep_sign.py", "--mode", c.mode, "--alg", c.alg,
			"--key", p.KeyFile, "--cert", p.CertFile, "--in", in, "--out", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: zeep_sign.py: %v\n%s", c.name, err, b)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, signedMsg{Name: c.name, Data: data, SHA1: c.sha1, Pinned: c.pinned})
	}
	return msgs
}

// tmplData fills the xmlsec1 templates: xmlsec1 signs but fills in neither
// the Timestamp nor the SecurityTokenReference, so Go does.
type tmplData struct {
	Created, Expires   string
	IssuerName, Serial string
	SKI                string
	// Nonce makes each signed Body, hence each signature, unique: two
	// identical signatures are a replay to wsgate.
	Nonce string
}

// xmlsec1Messages fills and signs the *.tmpl.xml templates with xmlsec1
// (exc-c14n with PrefixList, RSA-SHA256, SHA-256 references to Body and
// Timestamp; KeyInfo by IssuerSerial or by SubjectKeyIdentifier; SOAP 1.1,
// and SOAP 1.2 for wss12-*).
func xmlsec1Messages(t *testing.T, p *testPKI) []signedMsg {
	t.Helper()
	xmlsec1 := requireXmlsec1(t)
	now := time.Now().UTC()
	data := tmplData{
		Created:    now.Format("2006-01-02T15:04:05Z"),
		Expires:    now.Add(5 * time.Minute).Format("2006-01-02T15:04:05Z"),
		IssuerName: p.Leaf.Cert.Issuer.String(),
		Serial:     p.Leaf.Cert.SerialNumber.String(),
		SKI:        base64.StdEncoding.EncodeToString(p.Leaf.Cert.SubjectKeyId),
	}
	if len(p.Leaf.Cert.SubjectKeyId) == 0 {
		t.Fatal("partner certificate has no SubjectKeyIdentifier")
	}
	funcs := template.FuncMap{"xml": func(s string) (string, error) {
		var b bytes.Buffer
		err := xml.EscapeText(&b, []byte(s))
		return b.String(), err
	}}
	dir := t.TempDir()
	var msgs []signedMsg
	templates := []struct {
		name, soapNS string
	}{
		{"wss-issuerserial", wssec.NSSOAP11},
		{"wss-ski", wssec.NSSOAP11},
		{"wss12-issuerserial", wssec.NSSOAP12},
	}
	for _, tt := range templates {
		name := tt.name
		data.Nonce = name + "-" + rand.Text()
		tmpl, err := template.New(name + ".tmpl.xml").Funcs(funcs).ParseFiles(name + ".tmpl.xml")
		if err != nil {
			t.Fatal(err)
		}
		var filled bytes.Buffer
		if err := tmpl.Execute(&filled, data); err != nil {
			t.Fatal(err)
		}
		in := filepath.Join(dir, name+".in.xml")
		out := filepath.Join(dir, name+".signed.xml")
		writeFile(t, in, filled.Bytes())
		cmd := exec.Command(xmlsec1, "--sign",
			"--privkey-pem", p.KeyFile+","+p.CertFile,
			"--id-attr:Id", tt.soapNS+":Body",
			"--id-attr:Id", wssec.NSWSU+":Timestamp",
			"--output", out, in)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: xmlsec1 --sign: %v\n%s", name, err, b)
		}
		// Self-check, so a broken signer is reported here and not blamed on wsgate.
		check := exec.Command(xmlsec1, "--verify",
			"--pubkey-cert-pem", p.CertFile,
			"--id-attr:Id", tt.soapNS+":Body",
			"--id-attr:Id", wssec.NSWSU+":Timestamp",
			out)
		if b, err := check.CombinedOutput(); err != nil {
			t.Fatalf("%s: xmlsec1 --verify of its own signature: %v\n%s", name, err, b)
		}
		signed, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, signedMsg{Name: "xmlsec1-" + name, Data: signed, Pinned: true,
			SOAP12: tt.soapNS == wssec.NSSOAP12})
	}
	return msgs
}

// checkInProcess verifies m with a wssec.Verifier: it must verify as signed by
// the partner leaf, a tampered Body must fail its digest, and a SHA-1 message
// must be refused where SHA-1 is not allowed.
func checkInProcess(t *testing.T, p *testPKI, m signedMsg) {
	t.Helper()
	ctx := t.Context()
	got, err := verifierFor(p, m, m.SHA1).Verify(ctx, m.Data)
	if err != nil {
		t.Fatalf("Verify: %v\nmessage:\n%s", err, m.Data)
	}
	if got.Signer == nil || !got.Signer.Equal(p.Leaf.Cert) {
		t.Errorf("Signer = %v, want the partner leaf %s", got.Signer, p.Leaf.Cert.Subject)
	}
	if got.Created.IsZero() {
		t.Error("Created is zero, want the signed Timestamp's Created")
	}

	_, err = verifierFor(p, m, m.SHA1).Verify(ctx, tamper(t, m.Data))
	if !errors.Is(err, wssec.ErrDigestMismatch) {
		t.Errorf("tampered Body: err = %v, want %v", err, wssec.ErrDigestMismatch)
	}

	if m.SHA1 {
		_, err = verifierFor(p, m, false).Verify(ctx, m.Data)
		if !errors.Is(err, wssec.ErrSHA1NotAllowed) {
			t.Errorf("SHA-1 without allow_sha1: err = %v, want %v", err, wssec.ErrSHA1NotAllowed)
		}
	}
}

func TestZeepSignedVerifies(t *testing.T) {
	p := newTestPKI(t)
	for _, m := range zeepMessages(t, p) {
		t.Run(m.Name, func(t *testing.T) { checkInProcess(t, p, m) })
	}
}

func TestXmlsec1SignedVerifies(t *testing.T) {
	p := newTestPKI(t)
	for _, m := range xmlsec1Messages(t, p) {
		t.Run(m.Name, func(t *testing.T) { checkInProcess(t, p, m) })
	}
}
