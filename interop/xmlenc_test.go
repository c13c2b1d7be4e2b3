package interop

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"wsgate/wssec"
)

// XML Encryption interop: what xmlsec1, python-xmlsec (libxmlsec1) and
// Apache WSS4J 1.6 encrypt decrypts in wssec, and what wssec encrypts
// decrypts in xmlsec1 and WSS4J. The gateway's encryption identity is the
// one of wssec's golden files.

const (
	encCertFile = "../testdata/wssec/xmlenc/gateway-enc.pem"
	encKeyFile  = "../testdata/wssec/xmlenc/gateway-enc.key.pem"

	javaHint = "apt-get install -y default-jdk-headless libwss4j-java libxml-security-java"
)

// Envelopes to encrypt: the Body content uses a prefix the Envelope
// declares, and there is a header block to encrypt.
const (
	encPlain11 = `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Header><ord:Trace soapenv:mustUnderstand="1">t-1</ord:Trace></soapenv:Header><soapenv:Body><ord:Transfer><ord:From>alice</ord:From><ord:Amount>100</ord:Amount><ord:Note xml:lang="en">rush &amp; "gift"</ord:Note></ord:Transfer></soapenv:Body></soapenv:Envelope>`
	encPlain12 = `<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header><Trace xmlns="urn:example:orders">t-1</Trace></env:Header><env:Body><Transfer xmlns="urn:example:orders"><From>alice</From><Amount>100</Amount></Transfer></env:Body></env:Envelope>`
)

type fileIdentity struct {
	cert *x509.Certificate
	key  crypto.Decrypter
}

func (f fileIdentity) Certificate() *x509.Certificate { return f.cert }
func (f fileIdentity) Decrypter() crypto.Decrypter    { return f.key }

func gatewayIdentity(t *testing.T) fileIdentity {
	t.Helper()
	cb, err := os.ReadFile(encCertFile)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(encKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(cb)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode(kb)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return fileIdentity{cert: cert, key: key.(crypto.Decrypter)}
}

// decryptsTo decrypts msg with wssec and checks that the Body (and, when
// it was encrypted, the Trace header) is plain's again.
func decryptsTo(t *testing.T, msg []byte, plain string, pol wssec.DecryptPolicy) {
	t.Helper()
	pol.Identity = gatewayIdentity(t)
	pol.RequireEncrypted = []wssec.Part{wssec.PartBody}
	env, err := wssec.ParseEnvelope(msg, wssec.Limits{})
	if err != nil {
		t.Fatalf("ParseEnvelope: %v\n%s", err, msg)
	}
	defer env.Release()
	d, err := pol.Decrypt(env, wssec.Limits{})
	if err != nil {
		t.Fatalf("Decrypt: %v\n%s", err, msg)
	}
	want, wantDoc := bodyCanonical(t, []byte(plain))
	if got := canonical(env.Body); got != want {
		t.Fatalf("decrypted Body\n%s\nwant\n%s", got, want)
	}
	if !d.BodyEncrypted(env) {
		t.Fatal("Body not recorded as decrypted")
	}
	for _, h := range env.Header.ChildElements() {
		if h.Tag == "Trace" {
			if got, want := canonical(h), canonical(findTrace(wantDoc)); got != want {
				t.Fatalf("Trace header %s, want %s", got, want)
			}
		}
	}
}

func findTrace(doc *etree.Document) *etree.Element {
	for _, h := range doc.Root().ChildElements()[0].ChildElements() {
		if h.Tag == "Trace" {
			return h
		}
	}
	return nil
}

// wsgateEncrypt encrypts plain's Body content with wssec.
func wsgateEncrypt(t *testing.T, plain string, opts wssec.EncryptOptions) []byte {
	t.Helper()
	env, err := wssec.ParseEnvelope(plain, wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Release()
	msg, err := wssec.EncryptBody(env, gatewayIdentity(t).cert, opts)
	if err != nil {
		t.Fatalf("EncryptBody: %v", err)
	}
	return msg
}

func soapNSOf(plain string) string {
	if strings.Contains(plain, wssec.NSSOAP12) {
		return wssec.NSSOAP12
	}
	return wssec.NSSOAP11
}

// xmlsec1EncTemplate is an EncryptedData template for xmlsec1: Type
// Content, with the EncryptedKey xmlsec1 fills in its KeyInfo.
const xmlsec1EncTemplate = `<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Id="ED-x1" Type="http://www.w3.org/2001/04/xmlenc#Content"><xenc:EncryptionMethod Algorithm="%s"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey Id="EK-x1"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"><ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></xenc:EncryptionMethod><ds:KeyInfo><ds:X509Data>%s</ds:X509Data></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData><xenc:ReferenceList><xenc:DataReference URI="#ED-x1"/></xenc:ReferenceList></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>`

// xmlsec1Encrypt has xmlsec1 encrypt the Body content of plain for the
// gateway (session key, data and key transport are all xmlsec1's), then
// moves the EncryptedKey it wrote into wsse:Security, where WS-Security
// wants it: first, or after the Signature when afterSignature is set. With
// keyRef "issuerserial" the X509Data is put in a SecurityTokenReference
// (the WSS X.509 token profile form); with "ski" it stays as xmlsec1 wrote
// it, a ds:X509SKI.
func xmlsec1Encrypt(t *testing.T, xmlsec1, plain, keyRef, alg string, afterSignature bool) []byte {
	t.Helper()
	dir := t.TempDir()
	in, tmpl, out := filepath.Join(dir, "in.xml"), filepath.Join(dir, "tmpl.xml"), filepath.Join(dir, "out.xml")
	writeFile(t, in, []byte(plain))
	x509Tmpl := "<ds:X509IssuerSerial/>"
	if keyRef == "ski" {
		x509Tmpl = "<ds:X509SKI/>"
	}
	writeFile(t, tmpl, fmt.Appendf(nil, xmlsec1EncTemplate, alg, x509Tmpl))
	session := "aes-128"
	if strings.Contains(alg, "256") {
		session = "aes-256"
	}
	cmd := exec.Command(xmlsec1, "encrypt", "--pubkey-cert-pem", encCertFile, "--session-key", session,
		"--xml-data", in, "--node-name", soapNSOf(plain)+":Body", "--output", out, tmpl)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xmlsec1 encrypt: %v\n%s", err, b)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromFile(out); err != nil {
		t.Fatal(err)
	}
	ek := doc.FindElement("//EncryptedKey")
	ki := ek.Parent()
	ki.RemoveChild(ek)
	ki.Parent().RemoveChild(ki)
	if keyRef == "issuerserial" {
		eki := ek.SelectElement("KeyInfo")
		x := eki.SelectElement("X509Data")
		eki.RemoveChild(x)
		str := eki.CreateElement("wsse:SecurityTokenReference")
		str.CreateAttr("xmlns:wsse", wssec.NSWSSE)
		str.AddChild(x)
	}
	// Keep the prefixes xmlsec1 declared on the EncryptedData.
	ek.CreateAttr("xmlns:xenc", "http://www.w3.org/2001/04/xmlenc#")
	ek.CreateAttr("xmlns:ds", wssec.NSDSig)
	sec := securityOf(doc)
	pos := 0
	if afterSignature {
		pos = len(sec.Child)
	}
	sec.InsertChildAt(pos, ek)
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// securityOf returns doc's wsse:Security header, adding one if absent.
func securityOf(doc *etree.Document) *etree.Element {
	root := doc.Root()
	var header, body *etree.Element
	for _, c := range root.ChildElements() {
		switch c.Tag {
		case "Header":
			header = c
		case "Body":
			body = c
		}
	}
	if header == nil {
		header = etree.NewElement(root.Space + ":Header")
		root.InsertChildAt(body.Index(), header)
	}
	for _, c := range header.ChildElements() {
		if c.Tag == "Security" && c.NamespaceURI() == wssec.NSWSSE {
			return c
		}
	}
	sec := etree.NewElement("wsse:Security")
	sec.CreateAttr("xmlns:wsse", wssec.NSWSSE)
	header.InsertChildAt(0, sec)
	return sec
}

func TestXmlsec1EncryptedDecrypts(t *testing.T) {
	xmlsec1 := requireXmlsec1(t)
	for _, plain := range []string{encPlain11, encPlain12} {
		for _, keyRef := range []string{"issuerserial", "ski"} {
			for _, alg := range []string{wssec.AlgAES128GCM, wssec.AlgAES256GCM, wssec.AlgAES128CBC} {
				name := fmt.Sprintf("soap%s/%s/%s", map[bool]string{true: "12", false: "11"}[plain == encPlain12], keyRef, alg[strings.Index(alg, "#")+1:])
				t.Run(name, func(t *testing.T) {
					msg := xmlsec1Encrypt(t, xmlsec1, plain, keyRef, alg, false)
					pol := wssec.DecryptPolicy{AllowCBC: strings.Contains(alg, "cbc")}
					decryptsTo(t, msg, plain, pol)
					if pol.AllowCBC {
						err := decryptErr(t, msg, wssec.DecryptPolicy{})
						if !errors.Is(err, wssec.ErrCBCNotAllowed) {
							t.Fatalf("CBC without allow_cbc: err = %v", err)
						}
					}
				})
			}
		}
	}
}

func decryptErr(t *testing.T, msg []byte, pol wssec.DecryptPolicy) error {
	t.Helper()
	pol.Identity = gatewayIdentity(t)
	env, err := wssec.ParseEnvelope(msg, wssec.Limits{})
	if err != nil {
		return err
	}
	defer env.Release()
	_, err = pol.Decrypt(env, wssec.Limits{})
	return err
}

// TestXmlsec1DecryptsWsgate: what wssec encrypts, xmlsec1 decrypts. xmlsec1
// does not read WS-Security headers, so the EncryptedKey is moved into the
// EncryptedData's KeyInfo, where XML Encryption alone puts it; xmlsec1 then
// unwraps the session key with the gateway's private key and decrypts.
// (xmlsec1 1.2 reads rsa-oaep-mgf1p with SHA-1 only, the default.)
func TestXmlsec1DecryptsWsgate(t *testing.T) {
	xmlsec1 := requireXmlsec1(t)
	cases := []struct {
		name  string
		plain string
		opts  wssec.EncryptOptions
	}{
		{"soap11-default", encPlain11, wssec.EncryptOptions{}},
		{"soap12-default", encPlain12, wssec.EncryptOptions{}},
		{"soap11-issuerserial-aes256", encPlain11, wssec.EncryptOptions{KeyReference: wssec.KeyRefIssuerSerial, DataEncryption: wssec.AlgAES256GCM}},
		{"soap12-issuerserial-aes256", encPlain12, wssec.EncryptOptions{KeyReference: wssec.KeyRefIssuerSerial, DataEncryption: wssec.AlgAES256GCM}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := wsgateEncrypt(t, c.plain, c.opts)
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(msg); err != nil {
				t.Fatal(err)
			}
			ek := doc.FindElement("//EncryptedKey")
			ed := doc.FindElement("//EncryptedData")
			ek.Parent().RemoveChild(ek)
			ki := etree.NewElement("ds:KeyInfo")
			ki.CreateAttr("xmlns:ds", wssec.NSDSig)
			ki.AddChild(ek)
			ed.InsertChildAt(1, ki)
			dir := t.TempDir()
			in := filepath.Join(dir, "enc.xml")
			b, _ := doc.WriteToBytes()
			writeFile(t, in, b)
			cmd := exec.Command(xmlsec1, "decrypt", "--privkey-pem", encKeyFile+","+encCertFile,
				"--id-attr:Id", "http://www.w3.org/2001/04/xmlenc#:EncryptedData", in)
			out, err := cmd.Output()
			if err != nil {
				var ee *exec.ExitError
				errors.As(err, &ee)
				t.Fatalf("xmlsec1 decrypt: %v\n%s\n%s", err, ee.Stderr, b)
			}
			got, _ := bodyCanonical(t, out)
			want, _ := bodyCanonical(t, []byte(c.plain))
			if got != want {
				t.Fatalf("xmlsec1 decrypted Body\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestPythonXmlsecEncryptedDecrypts(t *testing.T) {
	requireZeep(t)
	for _, plain := range []string{encPlain11, encPlain12} {
		for _, keyRef := range []string{"issuerserial", "ski"} {
			for _, cipher := range []string{"aes128-gcm", "aes256-gcm", "aes128-cbc"} {
				name := fmt.Sprintf("soap%s/%s/%s", map[bool]string{true: "12", false: "11"}[plain == encPlain12], keyRef, cipher)
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					in, out := filepath.Join(dir, "in.xml"), filepath.Join(dir, "out.xml")
					writeFile(t, in, []byte(plain))
					cmd := exec.Command(pythonPath, "xmlenc_python.py", "--cert", encCertFile, "--keyref", keyRef,
						"--cipher", cipher, "--in", in, "--out", out)
					if b, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("xmlenc_python.py: %v\n%s", err, b)
					}
					msg, err := os.ReadFile(out)
					if err != nil {
						t.Fatal(err)
					}
					decryptsTo(t, msg, plain, wssec.DecryptPolicy{AllowCBC: cipher == "aes128-cbc"})
				})
			}
		}
	}
}

// wss4j compiles interop/java/WSS4JTool.java against Debian's WSS4J 1.6
// and Santuario jars and returns a function that runs it and returns what it
// printed.
func wss4j(t *testing.T) func(args ...string) []byte {
	t.Helper()
	jars := []string{"wss4j.jar", "xmlsec.jar", "commons-logging.jar", "slf4j-api.jar", "slf4j-nop.jar"}
	var cp []string
	for _, j := range jars {
		p := filepath.Join("/usr/share/java", j)
		if _, err := os.Stat(p); err != nil {
			missingJava(t, err)
		}
		cp = append(cp, p)
	}
	for _, tool := range []string{"javac", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			missingJava(t, err)
		}
	}
	classes := t.TempDir()
	cmd := exec.Command("javac", "-nowarn", "-cp", strings.Join(cp, ":"), "-d", classes, filepath.Join("java", "WSS4JTool.java"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("javac WSS4JTool: %v\n%s", err, b)
	}
	classpath := classes + ":" + strings.Join(cp, ":")
	return func(args ...string) []byte {
		t.Helper()
		// A short-lived tool: the client compiler and serial GC halve its start.
		jvm := []string{"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", classpath, "WSS4JTool"}
		cmd := exec.Command("java", append(jvm, args...)...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("WSS4JTool %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return b
	}
}

func missingJava(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("WSS4J 1.6 / a JDK is not available (%v) and CI is set; install with: %s", err, javaHint)
	}
	t.Skipf("WSS4J 1.6 / a JDK is not available (%v); install with: %s", err, javaHint)
}

// TestWSS4JXMLEnc: messages WSS4J 1.6 encrypts decrypt in wssec (every key
// reference it offers; the WSS 1.1 EncryptedHeader; its default AES-CBC
// only where allowed), and what wssec encrypts decrypts in WSS4J.
func TestWSS4JXMLEnc(t *testing.T) {
	run := wss4j(t)
	dir := t.TempDir()
	t.Run("wss4j-encrypts", func(t *testing.T) {
		cases := []struct {
			name, plain, keyID, sym, header string
		}{
			{"soap11-ski-gcm", encPlain11, "ski", wssec.AlgAES128GCM, ""},
			{"soap11-issuerserial-gcm256", encPlain11, "issuerserial", wssec.AlgAES256GCM, ""},
			{"soap12-bst-gcm", encPlain12, "bst", wssec.AlgAES128GCM, ""},
			{"soap11-thumbprint-gcm", encPlain11, "thumbprint", wssec.AlgAES128GCM, ""},
			{"soap11-encryptedheader", encPlain11, "issuerserial", wssec.AlgAES128GCM, "urn:example:orders Trace"},
			{"soap12-encryptedheader", encPlain12, "ski", wssec.AlgAES128GCM, "urn:example:orders Trace"},
			{"soap11-cbc", encPlain11, "ski", wssec.AlgAES128CBC, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				in, out := filepath.Join(dir, c.name+".in.xml"), filepath.Join(dir, c.name+".out.xml")
				writeFile(t, in, []byte(c.plain))
				args := []string{"encrypt", "--cert", encCertFile, "--keyid", c.keyID, "--sym", c.sym, "--in", in, "--out", out}
				if c.header != "" {
					args = append(args, "--header", c.header)
				}
				run(args...)
				msg, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if c.header != "" && (!strings.Contains(string(msg), "EncryptedHeader") || strings.Contains(string(msg), ">t-1<")) {
					t.Fatalf("WSS4J did not encrypt the header:\n%s", msg)
				}
				cbc := strings.Contains(c.sym, "cbc")
				decryptsTo(t, msg, c.plain, wssec.DecryptPolicy{AllowCBC: cbc})
				if cbc {
					if err := decryptErr(t, msg, wssec.DecryptPolicy{}); !errors.Is(err, wssec.ErrCBCNotAllowed) {
						t.Fatalf("CBC without allow_cbc: err = %v", err)
					}
				}
			})
		}
	})
	t.Run("wss4j-decrypts", func(t *testing.T) {
		cases := []struct {
			name  string
			plain string
			opts  wssec.EncryptOptions
		}{
			{"soap11-default", encPlain11, wssec.EncryptOptions{}},
			{"soap12-default", encPlain12, wssec.EncryptOptions{}},
			{"soap11-issuerserial", encPlain11, wssec.EncryptOptions{KeyReference: wssec.KeyRefIssuerSerial}},
			{"soap11-bst-aes256", encPlain11, wssec.EncryptOptions{KeyReference: wssec.KeyRefBST, DataEncryption: wssec.AlgAES256GCM}},
			{"soap12-thumbprint", encPlain12, wssec.EncryptOptions{KeyReference: wssec.KeyRefThumbprint}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				msg := wsgateEncrypt(t, c.plain, c.opts)
				in, out := filepath.Join(dir, c.name+".enc.xml"), filepath.Join(dir, c.name+".dec.xml")
				writeFile(t, in, msg)
				run("decrypt", "--key", encKeyFile, "--cert", encCertFile, "--in", in, "--out", out)
				dec, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := bodyCanonical(t, dec)
				want, _ := bodyCanonical(t, []byte(c.plain))
				if got != want {
					t.Fatalf("WSS4J decrypted Body\n%s\nwant\n%s", got, want)
				}
			})
		}
	})
}
