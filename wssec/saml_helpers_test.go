package wssec

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"wsgate/internal/pki"
)

// SAML test fixtures: an assertion builder, goxmldsig as the IdP, and a
// WSS4J-shaped message signer. The golden files are written by
// `go test ./wssec -run TestSAMLGoldens -update-saml` and judged at goldenNow.

// samlIdentity loads (or, with create, issues once and saves) a
// testdata/pki identity.
func samlIdentity(t testing.TB, name string, create bool) *pki.Identity {
	t.Helper()
	certFile := filepath.Join("..", "testdata", "pki", name+".pem")
	keyFile := filepath.Join("..", "testdata", "pki", name+".key.pem")
	if _, err := os.Stat(certFile); err != nil && create {
		is := pki.Issuer{}
		id, err := is.Issue(pki.Options{CommonName: "wsgate test SAML IdP", Key: pki.RSA2048,
			NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := pki.KeyPEM(id.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, pki.CertPEM(id.Cert), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(kb)
	if block == nil {
		t.Fatalf("%s: no PEM", keyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return &pki.Identity{Cert: goldenCert(t, name), Key: key.(crypto.Signer)}
}

// assertionSpec describes a test assertion; zero fields take defaults.
type assertionSpec struct {
	ID, Issuer, NameID, Method, Audience string
	HoK                                  *x509.Certificate // holder-of-key certificate
	HoKKeyValue                          bool              // send the HoK key as an RSAKeyValue instead
	NotBefore, NotOnOrAfter              time.Time
	Attributes                           [][2]string
	OneTimeUse                           bool
}

func (s assertionSpec) withDefaults() assertionSpec {
	if s.ID == "" {
		s.ID = "_a75adf55-01d7-40cc-929f-dbd8372ebdfc"
	}
	if s.Issuer == "" {
		s.Issuer = "https://idp.example.com/sts"
	}
	if s.NameID == "" {
		s.NameID = "alice@example.com"
	}
	if s.Method == "" {
		s.Method = ConfirmSenderVouches
	}
	if s.Audience == "" {
		s.Audience = "urn:wsgate:orders"
	}
	if s.NotBefore.IsZero() {
		s.NotBefore = msgCreatedTime
	}
	if s.NotOnOrAfter.IsZero() {
		s.NotOnOrAfter = msgCreatedTime.Add(5 * time.Minute)
	}
	if s.Attributes == nil {
		s.Attributes = [][2]string{{"role", "buyer"}, {"role", "approver"}, {"department", "Purchasing"}}
	}
	return s
}

var msgCreatedTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const samlTime = "2006-01-02T15:04:05.000Z"

// buildAssertion returns an unsigned SAML 2.0 assertion in WSS4J's shape.
func buildAssertion(s assertionSpec) *etree.Element {
	s = s.withDefaults()
	a := etree.NewElement("saml2:Assertion")
	a.CreateAttr("xmlns:saml2", NSSAML2)
	a.CreateAttr("xmlns:xsd", "http://www.w3.org/2001/XMLSchema")
	a.CreateAttr("ID", s.ID)
	a.CreateAttr("IssueInstant", msgCreatedTime.Format(samlTime))
	a.CreateAttr("Version", "2.0")
	a.CreateElement("saml2:Issuer").SetText(s.Issuer)
	subj := a.CreateElement("saml2:Subject")
	nid := subj.CreateElement("saml2:NameID")
	nid.CreateAttr("Format", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
	nid.SetText(s.NameID)
	sc := subj.CreateElement("saml2:SubjectConfirmation")
	sc.CreateAttr("Method", s.Method)
	if s.HoK != nil {
		scd := sc.CreateElement("saml2:SubjectConfirmationData")
		scd.CreateAttr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
		scd.CreateAttr("xsi:type", "saml2:KeyInfoConfirmationDataType")
		ki := scd.CreateElement("ds:KeyInfo")
		ki.CreateAttr("xmlns:ds", NSDSig)
		if s.HoKKeyValue {
			pub := s.HoK.PublicKey.(*rsa.PublicKey)
			rkv := ki.CreateElement("ds:KeyValue").CreateElement("ds:RSAKeyValue")
			rkv.CreateElement("ds:Modulus").SetText(base64.StdEncoding.EncodeToString(pub.N.Bytes()))
			rkv.CreateElement("ds:Exponent").SetText(base64.StdEncoding.EncodeToString([]byte{1, 0, 1}))
		} else {
			ki.CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").
				SetText(base64.StdEncoding.EncodeToString(s.HoK.Raw))
		}
	}
	cond := a.CreateElement("saml2:Conditions")
	cond.CreateAttr("NotBefore", s.NotBefore.Format(samlTime))
	cond.CreateAttr("NotOnOrAfter", s.NotOnOrAfter.Format(samlTime))
	cond.CreateElement("saml2:AudienceRestriction").CreateElement("saml2:Audience").SetText(s.Audience)
	if s.OneTimeUse {
		cond.CreateElement("saml2:OneTimeUse")
	}
	authn := a.CreateElement("saml2:AuthnStatement")
	authn.CreateAttr("AuthnInstant", msgCreatedTime.Format(samlTime))
	authn.CreateElement("saml2:AuthnContext").CreateElement("saml2:AuthnContextClassRef").
		SetText("urn:oasis:names:tc:SAML:2.0:ac:classes:X509")
	stmt := a.CreateElement("saml2:AttributeStatement")
	byName := map[string]*etree.Element{}
	for _, kv := range s.Attributes {
		at := byName[kv[0]]
		if at == nil {
			at = stmt.CreateElement("saml2:Attribute")
			at.CreateAttr("Name", kv[0])
			at.CreateAttr("NameFormat", "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified")
			byName[kv[0]] = at
		}
		v := at.CreateElement("saml2:AttributeValue")
		v.CreateAttr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
		v.CreateAttr("xsi:type", "xsd:string")
		v.SetText(kv[1])
	}
	return a
}

// signAssertion signs a as an IdP does, with goxmldsig (exc-c14n,
// RSA-SHA256), and moves the Signature after Issuer as SAML's schema wants
// (an enveloped signature does not cover its own position).
func signAssertion(t testing.TB, a *etree.Element, idp *pki.Identity) *etree.Element {
	t.Helper()
	ctx, err := dsig.NewSigningContext(idp.Key, [][]byte{idp.Cert.Raw})
	if err != nil {
		t.Fatal(err)
	}
	ctx.IdAttribute = "ID"
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := ctx.SignEnveloped(a)
	if err != nil {
		t.Fatal(err)
	}
	sig := signed.Child[len(signed.Child)-1]
	signed.RemoveChildAt(len(signed.Child) - 1)
	signed.InsertChildAt(1, sig)
	return signed
}

func xmlString(t testing.TB, el *etree.Element) string {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	s, err := doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// samlEnvelope is a SOAP 1.1 message with a Security header holding
// {{ASSERTION}}, a BinarySecurityToken of the message signer, a Timestamp
// and {{STR}}, in WSS4J's order and prefixes.
const samlEnvelope = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">` +
	`<soap:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" ` +
	`xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" soap:mustUnderstand="1">` +
	`{{ASSERTION}}` +
	`<wsse:BinarySecurityToken EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary" ` +
	`ValueType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3" wsu:Id="X509-6a1c2b">{{CERT}}</wsse:BinarySecurityToken>` +
	`<wsu:Timestamp wsu:Id="TS-6a1c2a"><wsu:Created>2026-01-01T00:00:00.000Z</wsu:Created><wsu:Expires>2026-01-01T00:05:00.000Z</wsu:Expires></wsu:Timestamp>` +
	`{{STR}}` +
	`</wsse:Security></soap:Header>` +
	`<soap:Body xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" wsu:Id="id-6a1c2c">` +
	`<m:placeOrder xmlns:m="urn:example:orders"><m:item>widget</m:item><m:amount>100</m:amount></m:placeOrder></soap:Body></soap:Envelope>`

// samlSTR is the WSS4J SecurityTokenReference to a SAML 2.0 assertion.
func samlSTR(id string) string {
	return `<wsse:SecurityTokenReference xmlns:wsse11="http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd" ` +
		`wsse11:TokenType="` + TokenTypeSAML20 + `" wsu:Id="STR-6a1c2d">` +
		`<wsse:KeyIdentifier ValueType="` + ValueTypeSAMLID + `">` + id + `</wsse:KeyIdentifier></wsse:SecurityTokenReference>`
}

// messageSpec is a message around an assertion.
type messageSpec struct {
	Assertion string   // serialized (signed) assertion, or ""
	STR       bool     // add the SAMLID SecurityTokenReference
	Refs      []string // IDs the message signature covers
	// KeyInfoSAML makes the message signature's KeyInfo the SAMLID STR
	// (holder-of-key: the key is the assertion's).
	KeyInfoSAML string
	// BodyExtra is added to the Body, after the payload, before signing.
	BodyExtra string
}

func buildMessage(t testing.TB, m messageSpec, signer *pki.Identity) []byte {
	t.Helper()
	msg := strings.Replace(samlEnvelope, "{{ASSERTION}}", m.Assertion, 1)
	msg = strings.Replace(msg, "{{CERT}}", base64.StdEncoding.EncodeToString(signer.Cert.Raw), 1)
	str := ""
	if m.STR {
		str = samlSTR(assertionID(t, m.Assertion))
	}
	msg = strings.Replace(msg, "{{STR}}", str, 1)
	msg = strings.Replace(msg, "</soap:Body>", m.BodyExtra+"</soap:Body>", 1)
	return signSOAP(t, msg, signer.Key, m.Refs, m.KeyInfoSAML)
}

func assertionID(t testing.TB, assertion string) string {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(assertion); err != nil {
		t.Fatal(err)
	}
	return doc.Root().SelectAttrValue("ID", "")
}

// signSOAP adds a ds:Signature (exc-c14n, RSA-SHA256, SHA-256) over the
// elements with the given IDs to the message's Security header.
func signSOAP(t testing.TB, msg string, key crypto.Signer, refs []string, keyInfoSAML string) []byte {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(msg); err != nil {
		t.Fatal(err)
	}
	var sec *etree.Element
	for _, el := range doc.FindElements("//Security") {
		sec = el
	}
	sig := sec.CreateElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", NSDSig)
	sig.CreateAttr("Id", "SIG-6a1c2e")
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", AlgExcC14N)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
	for _, id := range refs {
		target := elementByID(doc.Root(), id)
		if target == nil {
			t.Fatalf("no element with ID %q", id)
		}
		c14n, err := Canonicalize(target, "", false)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(c14n)
		ref := si.CreateElement("ds:Reference")
		ref.CreateAttr("URI", "#"+id)
		ref.CreateElement("ds:Transforms").CreateElement("ds:Transform").CreateAttr("Algorithm", AlgExcC14N)
		ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmlenc#sha256")
		ref.CreateElement("ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(sum[:]))
	}
	c14n, err := Canonicalize(si, "", false)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c14n)
	value, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	sig.CreateElement("ds:SignatureValue").SetText(base64.StdEncoding.EncodeToString(value))
	str := sig.CreateElement("ds:KeyInfo").CreateElement("wsse:SecurityTokenReference")
	if keyInfoSAML != "" {
		str.CreateAttr("xmlns:wsse11", NSWSSE11)
		str.CreateAttr("wsse11:TokenType", TokenTypeSAML20)
		ki := str.CreateElement("wsse:KeyIdentifier")
		ki.CreateAttr("ValueType", ValueTypeSAMLID)
		ki.SetText(keyInfoSAML)
	} else {
		r := str.CreateElement("wsse:Reference")
		r.CreateAttr("URI", "#X509-6a1c2b")
		r.CreateAttr("ValueType", valueTypeX509v3)
	}
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func elementByID(el *etree.Element, id string) *etree.Element {
	for _, a := range el.Attr {
		if (a.Key == "Id" || a.Key == "ID") && a.Value == id {
			return el
		}
	}
	for _, c := range el.ChildElements() {
		if found := elementByID(c, id); found != nil {
			return found
		}
	}
	return nil
}

// testBinding plays the message-level verifier for the core tests, so they
// do not depend on VerifyEnvelope: it verifies the Security header's
// signature (BinarySecurityToken key, RSA-SHA256, exc-c14n references
// resolved by unique ID) and reports the signer and the signed nodes.
// hokKey, when set, is the key to verify with (a signature whose KeyInfo
// names the assertion).
func testBinding(t testing.TB, env *Envelope, trust []*x509.Certificate, hokKey crypto.PublicKey) (SAMLMessage, *etree.Element, error) {
	t.Helper()
	var sec, sigEl, bst *etree.Element
	for _, h := range samlChildren(env.Header) {
		if samlIs(h, NSWSSE, "Security") {
			sec = h
		}
	}
	if sec == nil {
		return SAMLMessage{}, nil, ErrNoSecurityHeader
	}
	for _, c := range samlChildren(sec) {
		switch {
		case samlIs(c, NSDSig, "Signature"):
			sigEl = c
		case samlIs(c, NSWSSE, "BinarySecurityToken"):
			bst = c
		}
	}
	if sigEl == nil || bst == nil {
		return SAMLMessage{}, sec, ErrNoSignature
	}
	der, err := samlBase64(bst)
	if err != nil {
		return SAMLMessage{}, sec, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return SAMLMessage{}, sec, err
	}
	var key crypto.PublicKey = cert.PublicKey
	if hokKey != nil {
		key = hokKey
	}
	signed := map[*etree.Element]bool{}
	si := samlChildren(sigEl)[0]
	for _, ref := range samlChildren(si)[2:] {
		id := strings.TrimPrefix(ref.SelectAttrValue("URI", ""), "#")
		if countID(env.Envelope, id) != 1 {
			return SAMLMessage{}, sec, ErrDuplicateID
		}
		target := elementByID(env.Envelope, id)
		c14n, err := Canonicalize(target, "", false)
		if err != nil {
			return SAMLMessage{}, sec, err
		}
		sum := sha256.Sum256(c14n)
		if base64.StdEncoding.EncodeToString(sum[:]) != samlChildren(ref)[2].Text() {
			return SAMLMessage{}, sec, fmt.Errorf("%w: #%s", ErrDigestMismatch, id)
		}
		signed[target] = true
	}
	c14n, err := Canonicalize(si, "", false)
	if err != nil {
		return SAMLMessage{}, sec, err
	}
	sum := sha256.Sum256(c14n)
	sv, _ := samlBase64(samlChildren(sigEl)[1])
	if err := rsa.VerifyPKCS1v15(key.(*rsa.PublicKey), crypto.SHA256, sum[:], sv); err != nil {
		return SAMLMessage{}, sec, ErrInvalidSignature
	}
	roots := x509.NewCertPool()
	for _, c := range trust {
		roots.AddCert(c)
	}
	_, chainErr := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: goldenNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return SAMLMessage{
		SignerKey:     key,
		SignerTrusted: chainErr == nil && hokKey == nil,
		Signed:        func(el *etree.Element) bool { return signed[el] },
		Body:          env.Body,
	}, sec, nil
}
