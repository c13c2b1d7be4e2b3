package wssec

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

var signTestNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	signTestEnv11 = `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Body><ord:GetOrder><ord:ID>42</ord:ID></ord:GetOrder></soapenv:Body></soapenv:Envelope>`
	signTestEnv12 = `<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header><x:Trace xmlns:x="urn:trace">t1</x:Trace></env:Header><env:Body><GetOrder xmlns="urn:example:orders"><ID>42</ID></GetOrder></env:Body></env:Envelope>`
	// A default-namespace envelope: Sign must declare a prefix for mustUnderstand.
	signTestEnvDefault = `<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><GetOrder xmlns="urn:example:orders"><ID>42</ID></GetOrder></Body></Envelope>`
	signTestEnvWSA     = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action>urn:op</a:Action><a:MessageID>urn:uuid:1</a:MessageID><a:To>https://svc.example</a:To><a:RelatesTo>urn:uuid:0</a:RelatesTo><a:From><a:Address>urn:me</a:Address></a:From></s:Header><s:Body><op xmlns="urn:x"/></s:Body></s:Envelope>`
)

// signTestIdentity loads a committed test identity from testdata/pki.
func signTestIdentity(t testing.TB, name string) ([]*x509.Certificate, crypto.Signer) {
	t.Helper()
	cert := goldenCert(t, name)
	b, err := os.ReadFile(filepath.Join("../testdata/pki", name+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no key PEM", name)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{cert}, key.(crypto.Signer)
}

func signTestSigner(t testing.TB, name string) *Signer {
	chain, key := signTestIdentity(t, name)
	return &Signer{Chain: chain, Key: key, Now: func() time.Time { return signTestNow }}
}

func signTestParse(t testing.TB, msg string) *Envelope {
	t.Helper()
	env, err := ParseEnvelope([]byte(msg), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func signTestDoc(t testing.TB, b []byte) *etree.Document {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(b); err != nil {
		t.Fatalf("signed output does not parse: %v", err)
	}
	return d
}

// signTestVerifier verifies as of one minute after signTestNow, trusting the test CA.
func signTestVerifier(t testing.TB, extra ...*x509.Certificate) *Verifier {
	return &Verifier{
		Policy: Policy{RequireSigned: []Part{PartBody, PartTimestamp}},
		Trust:  append(goldenCerts{goldenCert(t, "ca")}, extra...),
		Now:    func() time.Time { return signTestNow.Add(time.Minute) },
	}
}

func wsuIDOf(el *etree.Element) string {
	for _, a := range el.Attr {
		if a.Key == "Id" && a.Space != "" && a.NamespaceURI() == NSWSU {
			return a.Value
		}
	}
	return ""
}

func childNS(el *etree.Element, ns, local string) []*etree.Element {
	var out []*etree.Element
	for _, c := range el.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == ns {
			out = append(out, c)
		}
	}
	return out
}

// checkSignature recomputes every digest and the SignatureValue with the
// signer certificate's public key, independently of the verifier.
func checkSignature(t *testing.T, doc *etree.Document, cert *x509.Certificate) {
	t.Helper()
	ids := map[string]*etree.Element{}
	var walk func(*etree.Element)
	walk = func(e *etree.Element) {
		if id := wsuIDOf(e); id != "" {
			if _, dup := ids[id]; dup {
				t.Fatalf("wsu:Id %q is not unique", id)
			}
			ids[id] = e
		}
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	walk(doc.Root())
	si := doc.FindElement("//SignedInfo")
	if si == nil {
		t.Fatal("no SignedInfo")
	}
	prefixes := func(m *etree.Element) string {
		if in := m.SelectElement("InclusiveNamespaces"); in != nil {
			return in.SelectAttrValue("PrefixList", "")
		}
		return ""
	}
	for _, ref := range si.SelectElements("Reference") {
		uri := ref.SelectAttrValue("URI", "")
		target := ids[strings.TrimPrefix(uri, "#")]
		if target == nil {
			t.Fatalf("Reference %q does not resolve", uri)
		}
		canon, err := Canonicalize(target, prefixes(ref.FindElement("Transforms/Transform")), false)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(canon)
		if got := ref.SelectElement("DigestValue").Text(); got != base64.StdEncoding.EncodeToString(sum[:]) {
			t.Fatalf("digest of %s does not match", uri)
		}
	}
	canon, err := Canonicalize(si, prefixes(si.SelectElement("CanonicalizationMethod")), false)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(doc.FindElement("//SignatureValue").Text())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(canon)
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			t.Fatalf("RSA signature: %v", err)
		}
	case *ecdsa.PublicKey:
		if len(sig) != 64 {
			t.Fatalf("ECDSA P-256 SignatureValue is %d bytes, want 64 (r||s)", len(sig))
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(pub, sum[:], r, s) {
			t.Fatal("ECDSA signature does not verify")
		}
	}
}

func TestSignStructure(t *testing.T) {
	cases := []struct {
		name, msg, identity, sigAlg, mu string
		soapNS                          string
		addressing                      int // WS-A headers that must be referenced
	}{
		{"soap11-rsa", signTestEnv11, "partner-rsa", sgAlgRSASHA256, "1", NSSOAP11, 0},
		{"soap12-rsa", signTestEnv12, "partner-rsa", sgAlgRSASHA256, "true", NSSOAP12, 0},
		{"soap11-ecdsa", signTestEnv11, "partner-ecdsa", sgAlgECDSASHA256, "1", NSSOAP11, 0},
		{"soap12-ecdsa", signTestEnv12, "partner-ecdsa", sgAlgECDSASHA256, "true", NSSOAP12, 0},
		{"default-namespace", signTestEnvDefault, "partner-rsa", sgAlgRSASHA256, "1", NSSOAP11, 0},
		{"addressing", signTestEnvWSA, "partner-rsa", sgAlgRSASHA256, "true", NSSOAP12, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := signTestSigner(t, c.identity)
			out, err := s.Sign(signTestParse(t, c.msg))
			if err != nil {
				t.Fatal(err)
			}
			doc := signTestDoc(t, out)
			root := doc.Root()
			headers := childNS(root, c.soapNS, "Header")
			bodies := childNS(root, c.soapNS, "Body")
			if len(headers) != 1 || len(bodies) != 1 {
				t.Fatalf("%d Headers, %d Bodies", len(headers), len(bodies))
			}
			if root.ChildElements()[0] != headers[0] {
				t.Fatal("Header is not the first child of Envelope")
			}
			secs := childNS(headers[0], NSWSSE, "Security")
			if len(secs) != 1 || headers[0].ChildElements()[0] != secs[0] {
				t.Fatal("wsse:Security is not the first header")
			}
			sec := secs[0]
			var mu *etree.Attr
			for i, a := range sec.Attr {
				if a.Key == "mustUnderstand" {
					mu = &sec.Attr[i]
				}
			}
			if mu == nil || mu.NamespaceURI() != c.soapNS || mu.Value != c.mu {
				t.Fatalf("mustUnderstand = %+v, want %q in %s", mu, c.mu, c.soapNS)
			}
			var order []string
			for _, e := range sec.ChildElements() {
				order = append(order, e.Tag)
			}
			if got := strings.Join(order, ","); got != "BinarySecurityToken,Timestamp,Signature" {
				t.Fatalf("Security children %s", got)
			}
			bst, ts, sig := sec.ChildElements()[0], sec.ChildElements()[1], sec.ChildElements()[2]
			if bst.SelectAttrValue("ValueType", "") != sgX509v3 || bst.SelectAttrValue("EncodingType", "") != sgBase64Binary {
				t.Fatal("BinarySecurityToken attributes")
			}
			der, err := base64.StdEncoding.DecodeString(bst.Text())
			if err != nil || !bytes.Equal(der, s.Chain[0].Raw) {
				t.Fatal("BinarySecurityToken is not the leaf certificate")
			}
			if got := ts.SelectElement("Created").Text(); got != "2026-01-01T00:00:00.000Z" {
				t.Fatalf("Created = %s", got)
			}
			if got := ts.SelectElement("Expires").Text(); got != "2026-01-01T00:05:00.000Z" {
				t.Fatalf("Expires = %s", got)
			}
			body := bodies[0]
			if body.SelectAttrValue("xmlns:wsu", "") != NSWSU || wsuIDOf(body) == "" {
				t.Fatal("Body lacks a self-declared wsu:Id")
			}
			want := []string{"#" + wsuIDOf(body), "#" + wsuIDOf(ts)}
			for _, h := range headers[0].ChildElements() {
				if h.NamespaceURI() == NSWSA {
					want = append(want, "#"+wsuIDOf(h))
				}
			}
			if len(want) != 2+c.addressing {
				t.Fatalf("%d signed parts, want %d", len(want), 2+c.addressing)
			}
			var got []string
			si := sig.SelectElement("SignedInfo")
			for _, r := range si.SelectElements("Reference") {
				got = append(got, r.SelectAttrValue("URI", ""))
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("references %v, want %v", got, want)
			}
			if alg := si.SelectElement("SignatureMethod").SelectAttrValue("Algorithm", ""); alg != c.sigAlg {
				t.Fatalf("SignatureMethod %s", alg)
			}
			ref := sig.FindElement("KeyInfo/SecurityTokenReference/Reference")
			if ref == nil || ref.SelectAttrValue("URI", "") != "#"+wsuIDOf(bst) {
				t.Fatal("KeyInfo does not reference the BinarySecurityToken")
			}
			checkSignature(t, doc, s.Chain[0])

			v, err := signTestVerifier(t).Verify(context.Background(), out)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !v.Signer.Equal(s.Chain[0]) {
				t.Fatal("verified signer is not the signing certificate")
			}
		})
	}
}

func TestSignAddressingVerifies(t *testing.T) {
	out, err := signTestSigner(t, "partner-rsa").Sign(signTestParse(t, signTestEnvWSA))
	if err != nil {
		t.Fatal(err)
	}
	v := signTestVerifier(t)
	v.Policy.RequireSigned = append(v.Policy.RequireSigned, PartAddressing)
	if _, err := v.Verify(context.Background(), out); err != nil {
		t.Fatalf("Verify with addressing required: %v", err)
	}
}

func TestSignLeavesInputAlone(t *testing.T) {
	env := signTestParse(t, signTestEnv12)
	before, err := env.Doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signTestSigner(t, "partner-rsa").Sign(env); err != nil {
		t.Fatal(err)
	}
	after, err := env.Doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Fatalf("Sign modified its input:\n%s\n%s", before, after)
	}
}

func TestSignReusesExistingID(t *testing.T) {
	msg := strings.Replace(signTestEnv11, "<soapenv:Body>",
		`<soapenv:Body xmlns:u="`+NSWSU+`" u:Id="mybody">`, 1)
	out, err := signTestSigner(t, "partner-rsa").Sign(signTestParse(t, msg))
	if err != nil {
		t.Fatal(err)
	}
	doc := signTestDoc(t, out)
	if ref := doc.FindElement("//SignedInfo/Reference"); ref.SelectAttrValue("URI", "") != "#mybody" {
		t.Fatalf("Body reference %q, want #mybody", ref.SelectAttrValue("URI", ""))
	}
	if _, err := signTestVerifier(t).Verify(context.Background(), out); err != nil {
		t.Fatal(err)
	}
}

// A payload that binds the prefix "wsu" to something else keeps it.
func TestSignWSUPrefixClash(t *testing.T) {
	msg := `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsu="urn:not-wsu"><soapenv:Body><wsu:Op>1</wsu:Op></soapenv:Body></soapenv:Envelope>`
	out, err := signTestSigner(t, "partner-rsa").Sign(signTestParse(t, msg))
	if err != nil {
		t.Fatal(err)
	}
	doc := signTestDoc(t, out)
	op := doc.FindElement("//Op")
	if op == nil || op.NamespaceURI() != "urn:not-wsu" {
		t.Fatal("payload's wsu prefix was re-bound")
	}
	v, err := signTestVerifier(t).Verify(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	if v.Body.ChildElements()[0].NamespaceURI() != "urn:not-wsu" {
		t.Fatal("verified payload namespace changed")
	}
}

func TestSignKeyReferences(t *testing.T) {
	chain, _ := signTestIdentity(t, "partner-rsa")
	leaf := chain[0]
	thumb := sha1.Sum(leaf.Raw)
	cases := []struct {
		mode  string
		check func(*etree.Element) bool // on the SecurityTokenReference
	}{
		{KeyRefSKI, func(str *etree.Element) bool {
			k := str.SelectElement("KeyIdentifier")
			return k != nil && k.SelectAttrValue("ValueType", "") == sgX509SKI &&
				k.Text() == base64.StdEncoding.EncodeToString(leaf.SubjectKeyId)
		}},
		{KeyRefThumbprint, func(str *etree.Element) bool {
			k := str.SelectElement("KeyIdentifier")
			return k != nil && k.SelectAttrValue("ValueType", "") == sgThumbSHA1 &&
				k.Text() == base64.StdEncoding.EncodeToString(thumb[:])
		}},
		{KeyRefIssuerSerial, func(str *etree.Element) bool {
			is := str.FindElement("X509Data/X509IssuerSerial")
			return is != nil && is.SelectElement("X509IssuerName").Text() == leaf.Issuer.String() &&
				is.SelectElement("X509SerialNumber").Text() == leaf.SerialNumber.String()
		}},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			s := signTestSigner(t, "partner-rsa")
			s.KeyReference = c.mode
			out, err := s.Sign(signTestParse(t, signTestEnv11))
			if err != nil {
				t.Fatal(err)
			}
			doc := signTestDoc(t, out)
			if doc.FindElement("//BinarySecurityToken") != nil {
				t.Fatal("a BinarySecurityToken was sent")
			}
			str := doc.FindElement("//KeyInfo/SecurityTokenReference")
			if str == nil || !c.check(str) {
				t.Fatal("SecurityTokenReference does not identify the leaf")
			}
			checkSignature(t, doc, leaf)
			if _, err := signTestVerifier(t, leaf).Verify(context.Background(), out); err != nil {
				t.Fatalf("Verify with the leaf pinned: %v", err)
			}
		})
	}
}

func TestSignIncludeChain(t *testing.T) {
	s := signTestSigner(t, "partner-rsa")
	ca := goldenCert(t, "ca")
	s.Chain = append(s.Chain, ca)
	s.IncludeChain = true
	out, err := s.Sign(signTestParse(t, signTestEnv11))
	if err != nil {
		t.Fatal(err)
	}
	bst := signTestDoc(t, out).FindElement("//BinarySecurityToken")
	if bst.SelectAttrValue("ValueType", "") != sgX509PKIPath {
		t.Fatalf("ValueType %s", bst.SelectAttrValue("ValueType", ""))
	}
	der, err := base64.StdEncoding.DecodeString(bst.Text())
	if err != nil {
		t.Fatal(err)
	}
	var path []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &path); err != nil || len(rest) != 0 {
		t.Fatalf("PkiPath: %v", err)
	}
	if len(path) != 2 || !bytes.Equal(path[0].FullBytes, ca.Raw) || !bytes.Equal(path[1].FullBytes, s.Chain[0].Raw) {
		t.Fatal("PkiPath is not [CA, leaf]")
	}
	v, err := signTestVerifier(t).Verify(context.Background(), out)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !v.Signer.Equal(s.Chain[0]) {
		t.Fatal("verified signer is not the leaf")
	}
}

func TestSignUsernameToken(t *testing.T) {
	for _, digest := range []bool{false, true} {
		t.Run(fmt.Sprint("digest=", digest), func(t *testing.T) {
			s := signTestSigner(t, "partner-rsa")
			s.UsernameToken = &UsernameTokenOptions{Username: "alice", Password: "secret", Digest: digest}
			out, err := s.Sign(signTestParse(t, signTestEnv11))
			if err != nil {
				t.Fatal(err)
			}
			ut := signTestDoc(t, out).FindElement("//Security/UsernameToken")
			if ut == nil || ut.SelectElement("Username").Text() != "alice" {
				t.Fatal("no UsernameToken for alice")
			}
			pw := ut.SelectElement("Password")
			if !digest {
				if pw.Text() != "secret" || pw.SelectAttrValue("Type", "") != sgPassText {
					t.Fatal("PasswordText is wrong")
				}
			} else {
				nonce, err := base64.StdEncoding.DecodeString(ut.SelectElement("Nonce").Text())
				if err != nil || len(nonce) != 16 {
					t.Fatal("Nonce is not 16 base64 bytes")
				}
				h := sha1.New()
				h.Write(nonce)
				h.Write([]byte(ut.SelectElement("Created").Text()))
				h.Write([]byte("secret"))
				if pw.Text() != base64.StdEncoding.EncodeToString(h.Sum(nil)) || pw.SelectAttrValue("Type", "") != sgPassDigest {
					t.Fatal("PasswordDigest is wrong")
				}
			}
			v := signTestVerifier(t)
			v.Users = goldenUsers{"alice": "secret"}
			got, err := v.Verify(context.Background(), out)
			if err != nil {
				t.Fatal(err)
			}
			if got.Username != "alice" {
				t.Fatalf("Username = %q", got.Username)
			}
		})
	}
}

func TestSignLegacyAlgorithms(t *testing.T) {
	s := signTestSigner(t, "partner-rsa")
	s.SignatureAlgorithm = sgAlgRSASHA1
	s.DigestAlgorithm = sgAlgSHA1
	out, err := s.Sign(signTestParse(t, signTestEnv11))
	if err != nil {
		t.Fatal(err)
	}
	v := signTestVerifier(t)
	if _, err := v.Verify(context.Background(), out); !errors.Is(err, ErrSHA1NotAllowed) {
		t.Fatalf("default policy: %v, want ErrSHA1NotAllowed", err)
	}
	v.Policy.AllowSHA1 = true
	if _, err := v.Verify(context.Background(), out); err != nil {
		t.Fatalf("AllowSHA1: %v", err)
	}
}

func TestSignErrors(t *testing.T) {
	rsaChain, rsaKey := signTestIdentity(t, "partner-rsa")
	ecChain, ecKey := signTestIdentity(t, "partner-ecdsa")
	signed, err := signTestSigner(t, "partner-rsa").Sign(signTestParse(t, signTestEnv11))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		signer Signer
		msg    string
		want   error
	}{
		{"no key", Signer{Chain: rsaChain}, signTestEnv11, ErrSignerConfig},
		{"no certificate", Signer{Key: rsaKey}, signTestEnv11, ErrSignerConfig},
		{"key does not match", Signer{Chain: rsaChain, Key: ecKey}, signTestEnv11, ErrSignerConfig},
		{"rsa method for ec key", Signer{Chain: ecChain, Key: ecKey, SignatureAlgorithm: sgAlgRSASHA256}, signTestEnv11, ErrSignerConfig},
		{"unknown signature method", Signer{Chain: rsaChain, Key: rsaKey, SignatureAlgorithm: "urn:x"}, signTestEnv11, ErrSignerConfig},
		{"unknown digest", Signer{Chain: rsaChain, Key: rsaKey, DigestAlgorithm: "http://www.w3.org/2001/04/xmldsig-more#md5"}, signTestEnv11, ErrSignerConfig},
		{"unknown c14n", Signer{Chain: rsaChain, Key: rsaKey, CanonicalizationAlgorithm: "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"}, signTestEnv11, ErrSignerConfig},
		{"unknown key reference", Signer{Chain: rsaChain, Key: rsaKey, KeyReference: "keyvalue"}, signTestEnv11, ErrSignerConfig},
		{"already signed", Signer{Chain: rsaChain, Key: rsaKey}, string(signed), ErrMultipleSecurityHeaders},
		{"colliding IDs", Signer{Chain: rsaChain, Key: rsaKey, NewID: func() string { return "same" }}, signTestEnvWSA, ErrDuplicateID},
		{"not xml", Signer{Chain: rsaChain, Key: rsaKey}, "hello", ErrNotXML},
		{"doctype", Signer{Chain: rsaChain, Key: rsaKey}, `<!DOCTYPE x [<!ENTITY a "b">]>` + signTestEnv11, ErrDTD},
		{"not an envelope", Signer{Chain: rsaChain, Key: rsaKey}, "<foo/>", ErrNotEnvelope},
		{"two bodies", Signer{Chain: rsaChain, Key: rsaKey}, strings.Replace(signTestEnv11, "</soapenv:Envelope>", "<soapenv:Body/></soapenv:Envelope>", 1), ErrMultipleBodies},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.signer.SignBytes([]byte(c.msg), Limits{})
			if !errors.Is(err, c.want) {
				t.Fatalf("error = %v, want %v", err, c.want)
			}
			if out != nil {
				t.Fatal("output despite an error")
			}
		})
	}
	if _, err := (&Signer{Chain: rsaChain, Key: rsaKey}).Sign(nil); !errors.Is(err, ErrNotEnvelope) {
		t.Fatalf("Sign(nil) = %v", err)
	}
}

// signTestRandomBody builds a random payload: mixed namespaces (prefixed,
// default, undeclared-then-declared), attributes and text that need escaping.
func signTestRandomBody(r *mrand.Rand, body *etree.Element, depth int) {
	names := []string{"a", "Item", "x-y", "z.1", "order_line"}
	texts := []string{"", "plain", "a & b", "<tag>", `"q" 'a'`, "ünïcödé ✓", "  spaced  ", "tab\there", "line\nbreak"}
	n := r.IntN(4)
	for i := 0; i < n; i++ {
		var el *etree.Element
		switch r.IntN(4) {
		case 0:
			el = body.CreateElement(names[r.IntN(len(names))])
		case 1:
			el = body.CreateElement("p" + fmt.Sprint(r.IntN(3)) + ":" + names[r.IntN(len(names))])
			el.CreateAttr("xmlns:"+el.Space, fmt.Sprintf("urn:ns:%d", r.IntN(5)))
		case 2:
			el = body.CreateElement(names[r.IntN(len(names))])
			el.CreateAttr("xmlns", fmt.Sprintf("urn:default:%d", r.IntN(3)))
		default:
			el = body.CreateElement("ord:" + names[r.IntN(len(names))])
		}
		for j := r.IntN(3); j > 0; j-- {
			el.CreateAttr(fmt.Sprintf("attr%d", r.IntN(4)), texts[r.IntN(len(texts))])
		}
		if r.IntN(3) == 0 {
			el.CreateAttr("xml:lang", "en")
		}
		if t := texts[r.IntN(len(texts))]; t != "" {
			el.CreateText(t)
		}
		if depth < 4 {
			signTestRandomBody(r, el, depth+1)
		}
		if r.IntN(4) == 0 {
			body.CreateComment(" c ")
		}
	}
}

func signTestRandomEnvelope(r *mrand.Rand, version SOAPVersion) string {
	ns, prefix := NSSOAP11, "soapenv"
	if version == SOAP12 {
		ns, prefix = NSSOAP12, "env"
	}
	doc := etree.NewDocument()
	env := doc.CreateElement(prefix + ":Envelope")
	env.CreateAttr("xmlns:"+prefix, ns)
	env.CreateAttr("xmlns:ord", "urn:example:orders")
	if r.IntN(2) == 0 {
		env.CreateElement(prefix + ":Header")
	}
	signTestRandomBody(r, env.CreateElement(prefix+":Body"), 0)
	s, err := doc.WriteToString()
	if err != nil {
		panic(err)
	}
	return s
}

// TestSignVerifyRoundTrip is a property test: whatever the payload, a
// signed message verifies and the verified Body is the payload signed.
func TestSignVerifyRoundTrip(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	signers := []*Signer{signTestSigner(t, "partner-rsa"), signTestSigner(t, "partner-ecdsa")}
	iterations := 200
	if testing.Short() {
		iterations = 40
	}
	for i := 0; i < iterations; i++ {
		version := SOAP11
		if i%2 == 1 {
			version = SOAP12
		}
		msg := signTestRandomEnvelope(r, version)
		s := signers[i%len(signers)]
		out, err := s.SignBytes([]byte(msg), Limits{})
		if err != nil {
			t.Fatalf("case %d: Sign: %v\n%s", i, err, msg)
		}
		v, err := signTestVerifier(t).Verify(context.Background(), out)
		if err != nil {
			t.Fatalf("case %d: Verify: %v\n%s", i, err, out)
		}
		if v.Version != version {
			t.Fatalf("case %d: version %v", i, v.Version)
		}
		orig := signTestParse(t, msg)
		want, _ := Canonicalize(orig.Body, "", false)
		got, _ := Canonicalize(v.Body, "", false)
		// The signed Body gained xmlns:wsu and wsu:Id; compare its content.
		if !bytes.Equal(signTestInner(want), signTestInner(got)) {
			t.Fatalf("case %d: verified Body differs:\n%s\n%s", i, want, got)
		}
	}
}

// signTestInner strips the outer element's start and end tags.
func signTestInner(b []byte) []byte {
	start := bytes.IndexByte(b, '>')
	end := bytes.LastIndexByte(b, '<')
	if start < 0 || end <= start || bytes.HasSuffix(b[:start+1], []byte("/>")) {
		return nil
	}
	return b[start+1 : end]
}

// TestSignXmlsec1 checks the output with xmlsec1, an independent XML-DSig
// implementation, when it is installed (apt-get install xmlsec1).
func TestSignXmlsec1(t *testing.T) {
	bin, err := exec.LookPath("xmlsec1")
	if err != nil {
		t.Skip("xmlsec1 not installed; this is the independent interoperability check")
	}
	dir := t.TempDir()
	run := func(name string, msg []byte, cert string) error {
		f := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(f, msg, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"--verify", "--pubkey-cert-pem", filepath.Join("../testdata/pki", cert+".pem"),
			"--id-attr:Id", NSSOAP11 + ":Body", "--id-attr:Id", NSSOAP12 + ":Body",
			"--id-attr:Id", NSWSU + ":Timestamp"}
		for _, h := range []string{"To", "Action", "MessageID", "ReplyTo", "RelatesTo", "From", "FaultTo"} {
			args = append(args, "--id-attr:Id", NSWSA+":"+h)
		}
		out, err := exec.Command(bin, append(args, f)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	r := mrand.New(mrand.NewPCG(3, 4))
	for i, c := range []struct{ msg, identity string }{
		{signTestEnv11, "partner-rsa"}, {signTestEnv12, "partner-rsa"},
		{signTestEnv11, "partner-ecdsa"}, {signTestEnv12, "partner-ecdsa"},
		{signTestEnvDefault, "partner-rsa"}, {signTestEnvWSA, "partner-rsa"},
		{signTestRandomEnvelope(r, SOAP11), "partner-rsa"}, {signTestRandomEnvelope(r, SOAP12), "partner-ecdsa"},
		{signTestRandomEnvelope(r, SOAP11), "partner-ecdsa"}, {signTestRandomEnvelope(r, SOAP12), "partner-rsa"},
	} {
		out, err := signTestSigner(t, c.identity).SignBytes([]byte(c.msg), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := run(fmt.Sprint("ok", i), out, c.identity); err != nil {
			t.Errorf("case %d: xmlsec1 rejects our signature: %v\n%s", i, err, out)
		}
		// And xmlsec1 does notice tampering, so a pass above means something.
		bad := bytes.Replace(out, []byte("<soapenv:Body"), []byte("<soapenv:Body data-x=\"1\""), 1)
		bad = bytes.Replace(bad, []byte("<env:Body"), []byte("<env:Body data-x=\"1\""), 1)
		bad = bytes.Replace(bad, []byte("<Body"), []byte("<Body data-x=\"1\""), 1)
		bad = bytes.Replace(bad, []byte("<s:Body"), []byte("<s:Body data-x=\"1\""), 1)
		if err := run(fmt.Sprint("bad", i), bad, c.identity); err == nil {
			t.Errorf("case %d: xmlsec1 accepts a tampered Body", i)
		}
	}
}

// signTestEnvelope2K is a realistic ~2 KB request.
func signTestEnvelope2K() string {
	var b strings.Builder
	b.WriteString(`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Header/><soapenv:Body><ord:PlaceOrder>`)
	for b.Len() < 2000 {
		fmt.Fprintf(&b, `<ord:Line sku="SKU-%d" qty="%d"><ord:Description>Widget &amp; gadget</ord:Description></ord:Line>`, b.Len(), b.Len()%7)
	}
	b.WriteString(`</ord:PlaceOrder></soapenv:Body></soapenv:Envelope>`)
	return b.String()
}

func BenchmarkSign(b *testing.B) {
	s := signTestSigner(b, "partner-rsa")
	msg := []byte(signTestEnvelope2K())
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.SignBytes(msg, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawRSASign is the floor for BenchmarkSign: one RSA-2048 signature.
func BenchmarkRawRSASign(b *testing.B) {
	_, key := signTestIdentity(b, "partner-rsa")
	sum := sha256.Sum256([]byte("signed info"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := key.Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSignBytes: no input makes SignBytes panic, and whatever it signs verifies.
func FuzzSignBytes(f *testing.F) {
	for _, seed := range []string{signTestEnv11, signTestEnv12, signTestEnvDefault, signTestEnvWSA, "", "<foo/>",
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body a="x&#xA;y&#x9;z&#xD;">t&#xD;&#xA;u<![CDATA[<c>]]><?pi x?></soapenv:Body></soapenv:Envelope>`} {
		f.Add([]byte(seed))
	}
	s := signTestSigner(f, "partner-ecdsa")
	v := signTestVerifier(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, err := s.SignBytes(msg, Limits{})
		if err != nil {
			return
		}
		if _, err := v.Verify(context.Background(), out); err != nil {
			if inputShapeRefused(msg, err) {
				return // the input itself has a shape every verifier refuses
			}
			t.Fatalf("signed output does not verify: %v\nin:  %q\nout: %s", err, msg, out)
		}
	})
}

// inputShapeRefused reports whether err, the verifier's refusal of a signed
// message, is one the input already earned before the signer touched it: a
// look-alike the verifier's placement walk finds in the input itself, or a
// mustUnderstand header block the signer does not sign (it signs only
// WS-Addressing headers). The signer signs what it is given; the tests use
// it to build such attack messages on purpose.
func inputShapeRefused(msg []byte, err error) bool {
	env, perr := ParseEnvelope(msg, Limits{})
	if perr != nil {
		return false
	}
	switch {
	case errors.Is(err, ErrLookAlike):
		_, ierr := indexEnvelope(env, nil)
		return errors.Is(ierr, ErrLookAlike)
	case errors.Is(err, ErrMustUnderstand):
		if env.Header == nil {
			return false
		}
		for _, block := range childElements(env.Header) {
			if !isAddressing(block.NamespaceURI()) && mustUnderstand(block, env.Version) {
				return true
			}
		}
	}
	return false
}
