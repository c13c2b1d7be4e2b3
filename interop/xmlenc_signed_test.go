package interop

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"wsgate/wssec"
)

// Signed and encrypted messages from other stacks, in both orders, through
// wssec's Verifier: sign-then-encrypt puts the EncryptedKey before the
// Signature (decrypt, then verify the plaintext), encrypt-then-sign after it
// (verify the ciphertext, then decrypt). Either way the verified, decrypted
// Body is the one that was signed, and a tampered ciphertext is refused.

type signedEncMsg struct {
	name   string
	data   []byte
	pinned bool // signer referenced by SKI/IssuerSerial: the leaf is pinned
	order  string
}

// verifyDecrypting verifies m with decryption on, and checks the result.
func verifyDecrypting(t *testing.T, p *testPKI, m signedEncMsg) {
	t.Helper()
	trust := staticTrust{p.CA.Cert}
	if m.pinned {
		trust = append(trust, p.Leaf.Cert)
	}
	v := &wssec.Verifier{
		Policy: wssec.Policy{
			RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp},
			// encPlain11's unsigned mustUnderstand header.
			ForwardUnsignedHeaders: []wssec.HeaderName{{Namespace: "urn:example:orders", Local: "Trace"}},
			Decrypt: &wssec.DecryptPolicy{Identity: gatewayIdentity(t),
				RequireEncrypted: []wssec.Part{wssec.PartBody}},
		},
		Trust: trust,
		Now:   time.Now,
	}
	got, err := v.Verify(t.Context(), m.data)
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, m.data)
	}
	if !got.Signer.Equal(p.Leaf.Cert) {
		t.Errorf("Signer = %s", got.Signer.Subject)
	}
	out, err := got.Bytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(">100<")) || bytes.Contains(out, []byte("EncryptedData")) || bytes.Contains(out, []byte("EncryptedKey")) {
		t.Fatalf("forwarded envelope is not the decrypted one:\n%s", out)
	}
	// A bit flipped in the Body ciphertext: the GCM tag fails either way.
	bad := flipBodyCipher(t, m.data)
	if _, err := v.Verify(t.Context(), bad); !errors.Is(err, wssec.ErrDecryptionFailed) && !errors.Is(err, wssec.ErrDigestMismatch) {
		t.Fatalf("tampered ciphertext: err = %v", err)
	}
	// Without decryption the route refuses the EncryptedKey.
	v.Policy.Decrypt = nil
	if _, err := v.Verify(t.Context(), m.data); !errors.Is(err, wssec.ErrUnprocessedSecurityElement) {
		t.Fatalf("route without decrypt: err = %v", err)
	}
}

// flipBodyCipher changes one base64 character in the middle of the last
// CipherValue (the Body's EncryptedData comes last in the document).
func flipBodyCipher(t *testing.T, msg []byte) []byte {
	t.Helper()
	i := bytes.LastIndex(msg, []byte("CipherValue>"))
	j := bytes.LastIndex(msg[:i], []byte("CipherValue>"))
	if i < 0 || j < 0 {
		t.Fatal("no CipherValue")
	}
	out := bytes.Clone(msg)
	k := j + len("CipherValue>") + (i-j)/2
	for out[k] == '\n' || out[k] == '\r' || out[k] == ' ' {
		k++
	}
	if out[k] == 'A' {
		out[k] = 'B'
	} else {
		out[k] = 'A'
	}
	return out
}

// xmlsec1SignedEncrypted: xmlsec1 signs (the wss-ski template: Body and
// Timestamp, exc-c14n, RSA-SHA256) and encrypts (the Body content), in
// both orders, SOAP 1.1.
func xmlsec1SignedEncrypted(t *testing.T, p *testPKI) []signedEncMsg {
	xmlsec1 := requireXmlsec1(t)
	var msgs []signedEncMsg
	// Sign, then encrypt: the EncryptedKey goes first in the header.
	for _, m := range xmlsec1Messages(t, p) {
		if m.SOAP12 && strings.Contains(m.Name, "issuerserial") || !m.SOAP12 {
			msgs = append(msgs, signedEncMsg{name: m.Name + "/sign-then-encrypt", pinned: m.Pinned, order: "se",
				data: xmlsec1Encrypt(t, xmlsec1, string(m.Data), "issuerserial", wssec.AlgAES128GCM, false)})
		}
	}
	// Encrypt, then sign: fill the template, encrypt the Body content, put
	// the EncryptedKey after the Signature, then sign.
	now := time.Now().UTC()
	data := tmplData{
		Created: now.Format("2006-01-02T15:04:05Z"),
		Expires: now.Add(5 * time.Minute).Format("2006-01-02T15:04:05Z"),
		SKI:     base64.StdEncoding.EncodeToString(p.Leaf.Cert.SubjectKeyId),
		Nonce:   "es-" + rand.Text(),
	}
	funcs := template.FuncMap{"xml": func(s string) (string, error) {
		var b bytes.Buffer
		err := xml.EscapeText(&b, []byte(s))
		return b.String(), err
	}}
	tmpl, err := template.New("wss-ski.tmpl.xml").Funcs(funcs).ParseFiles("wss-ski.tmpl.xml")
	if err != nil {
		t.Fatal(err)
	}
	var filled bytes.Buffer
	if err := tmpl.Execute(&filled, data); err != nil {
		t.Fatal(err)
	}
	enc := xmlsec1Encrypt(t, xmlsec1, filled.String(), "ski", wssec.AlgAES256GCM, true)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "es.xml"), filepath.Join(dir, "es.signed.xml")
	writeFile(t, in, enc)
	cmd := exec.Command(xmlsec1, "--sign", "--privkey-pem", p.KeyFile+","+p.CertFile,
		"--id-attr:Id", wssec.NSSOAP11+":Body", "--id-attr:Id", wssec.NSWSU+":Timestamp", "--output", out, in)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xmlsec1 --sign: %v\n%s", err, b)
	}
	signed, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, signedEncMsg{name: "xmlsec1-ski/encrypt-then-sign", data: signed, pinned: true, order: "es"})
	return msgs
}

func TestXmlsec1SignedAndEncryptedVerifies(t *testing.T) {
	p := newTestPKI(t)
	for _, m := range xmlsec1SignedEncrypted(t, p) {
		t.Run(m.name, func(t *testing.T) { verifyDecrypting(t, p, m) })
	}
}

// TestPythonSignedAndEncryptedVerifies: zeep signs (BinarySignature,
// RSA-SHA256) and python-xmlsec encrypts, in both orders. zeep puts its
// Signature first in the header, so signing an encrypted message gives the
// encrypt-then-sign layout.
func TestPythonSignedAndEncryptedVerifies(t *testing.T) {
	requireZeep(t)
	p := newTestPKI(t)
	for _, plain := range []string{encPlain11, encPlain12} {
		v := "11"
		if plain == encPlain12 {
			v = "12"
		}
		for _, order := range []string{"se", "es"} {
			t.Run("soap"+v+"/"+order, func(t *testing.T) {
				dir := t.TempDir()
				in, mid, out := filepath.Join(dir, "in.xml"), filepath.Join(dir, "mid.xml"), filepath.Join(dir, "out.xml")
				writeFile(t, in, []byte(plain))
				sign := func(src, dst string) {
					cmd := exec.Command(pythonPath, "zeep_sign.py", "--mode", "binary", "--alg", "sha256",
						"--key", p.KeyFile, "--cert", p.CertFile, "--in", src, "--out", dst)
					if b, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("zeep_sign.py: %v\n%s", err, b)
					}
				}
				encrypt := func(src, dst string) {
					cmd := exec.Command(pythonPath, "xmlenc_python.py", "--cert", encCertFile, "--in", src, "--out", dst)
					if b, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("xmlenc_python.py: %v\n%s", err, b)
					}
				}
				if order == "se" {
					sign(in, mid)
					encrypt(mid, out)
				} else {
					encrypt(in, mid)
					sign(mid, out)
				}
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				verifyDecrypting(t, p, signedEncMsg{name: order, data: data, order: order})
			})
		}
	}
}

// TestWSS4JSignedAndEncrypted: WSS4J 1.6 signs (BST, RSA-SHA256, Body and
// Timestamp) and encrypts, in both orders, for wssec; and what wssec signs
// then encrypts (the bridge's order) WSS4J decrypts and verifies.
func TestWSS4JSignedAndEncrypted(t *testing.T) {
	run := wss4j(t)
	p := newTestPKI(t)
	dir := t.TempDir()
	for _, order := range []string{"se", "es"} {
		for _, plain := range []string{encPlain11, encPlain12} {
			name := order + map[bool]string{true: "/soap12", false: "/soap11"}[plain == encPlain12]
			t.Run("wss4j-"+name, func(t *testing.T) {
				in := filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".in.xml")
				out := filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".out.xml")
				writeFile(t, in, []byte(plain))
				run("encrypt", "--cert", encCertFile, "--keyid", "issuerserial", "--sign-key", p.KeyFile,
					"--sign-cert", p.CertFile, "--order", order, "--in", in, "--out", out)
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				verifyDecrypting(t, p, signedEncMsg{name: name, data: data, order: order})
			})
		}
	}
	// What wssec signs and encrypts, in both orders, WSS4J decrypts and verifies.
	for _, c := range []struct {
		name string
		f    func(*wssec.Envelope, *wssec.Signer, *x509.Certificate, wssec.EncryptOptions) ([]byte, error)
	}{{"wsgate-sign-then-encrypt", wssec.SignThenEncrypt}, {"wsgate-encrypt-then-sign", wssec.EncryptThenSign}} {
		t.Run(c.name, func(t *testing.T) {
			env, err := wssec.ParseEnvelope(encPlain11, wssec.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			signer := &wssec.Signer{Chain: []*x509.Certificate{p.Leaf.Cert}, Key: p.Leaf.Key}
			msg, err := c.f(env, signer, gatewayIdentity(t).cert, wssec.EncryptOptions{})
			if err != nil {
				t.Fatal(err)
			}
			in, out := filepath.Join(dir, c.name+".xml"), filepath.Join(dir, c.name+".dec.xml")
			writeFile(t, in, msg)
			log := run("decrypt", "--key", encKeyFile, "--cert", encCertFile, "--trust", p.CAFile, "--in", in, "--out", out)
			// WSS4J's actions: 2 signature, 4 encryption, 32 timestamp.
			for _, action := range []string{"action 2\n", "action 4\n", "action 32\n"} {
				if !strings.Contains(string(log), action) {
					t.Fatalf("WSS4J did not process %q:\n%s", action, log)
				}
			}
			dec, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			// The Body gained the signer's wsu:Id: compare its content.
			got, want := bodyContent(t, dec), bodyContent(t, []byte(encPlain11))
			if got != want {
				t.Fatalf("WSS4J decrypted Body\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// bodyContent is the canonical form of the Body's children.
func bodyContent(t *testing.T, msg []byte) string {
	t.Helper()
	_, doc := bodyCanonical(t, msg)
	var b strings.Builder
	for _, c := range findBody(doc).ChildElements() {
		b.WriteString(canonical(c))
	}
	return b.String()
}
