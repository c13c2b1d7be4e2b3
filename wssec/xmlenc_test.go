package wssec

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"wsgate/internal/pki"
)

var updateEnc = flag.Bool("update-enc", false, "rewrite testdata/wssec/xmlenc (and the encryption identity if absent)")

const encDir = "../testdata/wssec/xmlenc"

// encIdentity is a DecryptionIdentity over an in-memory key.
type encIdentity struct {
	cert *x509.Certificate
	key  crypto.Decrypter
}

func (e encIdentity) Certificate() *x509.Certificate { return e.cert }
func (e encIdentity) Decrypter() crypto.Decrypter    { return e.key }

// gatewayEnc is the gateway's encryption identity of the golden files: an
// RSA-2048 leaf of the test CA with keyEncipherment, kept in encDir.
func gatewayEnc(t testing.TB) encIdentity {
	t.Helper()
	certFile, keyFile := filepath.Join(encDir, "gateway-enc.pem"), filepath.Join(encDir, "gateway-enc.key.pem")
	if _, err := os.Stat(certFile); os.IsNotExist(err) && *updateEnc {
		issueGatewayEnc(t, certFile, keyFile)
	}
	return encIdentity{cert: encReadCert(t, certFile), key: encReadKey(t, keyFile).(crypto.Decrypter)}
}

func issueGatewayEnc(t testing.TB, certFile, keyFile string) {
	ca := &pki.Identity{Cert: encReadCert(t, "../testdata/pki/ca.pem"), Key: encReadKey(t, "../testdata/pki/ca.key.pem")}
	id, err := pki.Issuer{}.Issue(pki.Options{
		CommonName: "wsgate gateway encryption", Key: pki.RSA2048,
		NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, Serial: 4242,
	}, ca)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.KeyPEM(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(encDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pki.CertPEM(id.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func encReadCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func encReadKey(t testing.TB, path string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// Plain envelopes the tests encrypt. The Body content uses a prefix the
// Envelope declares, so decryption must honour the insertion point's
// namespaces.
const (
	encPlain11 = `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Header><ord:Trace soapenv:mustUnderstand="1">t-1</ord:Trace></soapenv:Header><soapenv:Body><ord:GetOrder><ord:ID>42</ord:ID><ord:Note xml:lang="en">rush &amp; "gift" &lt;wrap&gt;&#xD;</ord:Note></ord:GetOrder></soapenv:Body></soapenv:Envelope>`
	encPlain12 = `<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header/><env:Body><GetOrder xmlns="urn:example:orders"><ID>42</ID></GetOrder></env:Body></env:Envelope>`
)

func encParse(t testing.TB, msg []byte, limits Limits) *Envelope {
	t.Helper()
	env, err := ParseEnvelope(msg, limits)
	if err != nil {
		t.Fatalf("ParseEnvelope: %v\n%s", err, msg)
	}
	return env
}

func encBodyC14N(t testing.TB, env *Envelope) string {
	t.Helper()
	b, err := Canonicalize(env.Body, "", false)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func encFixedNow() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

func encrypt(t testing.TB, plain string, opts EncryptOptions) []byte {
	t.Helper()
	id := gatewayEnc(t)
	opts.Now = encFixedNow
	out, err := EncryptBody(encParse(t, []byte(plain), Limits{}), id.cert, opts)
	if err != nil {
		t.Fatalf("EncryptBody: %v", err)
	}
	return out
}

func decrypt(t testing.TB, msg []byte, p DecryptPolicy, limits Limits) (*Envelope, *Decryption, error) {
	t.Helper()
	if p.Identity == nil {
		p.Identity = gatewayEnc(t)
	}
	env, err := ParseEnvelope(msg, limits)
	if err != nil {
		return nil, nil, err
	}
	d, err := p.Decrypt(env, limits)
	return env, d, err
}

func TestEncRoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		plain string
		opts  EncryptOptions
		pol   DecryptPolicy
	}{
		{name: "default", plain: encPlain11},
		{name: "soap12", plain: encPlain12},
		{name: "issuerserial", plain: encPlain11, opts: EncryptOptions{KeyReference: KeyRefIssuerSerial}},
		{name: "thumbprint", plain: encPlain11, opts: EncryptOptions{KeyReference: KeyRefThumbprint}},
		{name: "bst", plain: encPlain12, opts: EncryptOptions{KeyReference: KeyRefBST}},
		{name: "aes256gcm", plain: encPlain11, opts: EncryptOptions{DataEncryption: AlgAES256GCM}},
		{name: "aes192gcm", plain: encPlain11, opts: EncryptOptions{DataEncryption: AlgAES192GCM}},
		{name: "mgf1p-sha256", plain: encPlain11, opts: EncryptOptions{OAEPDigest: AlgSHA256}},
		{name: "oaep11-sha256", plain: encPlain11, opts: EncryptOptions{KeyTransport: AlgRSAOAEP}},
		{name: "oaep11-sha512-mgf1sha1", plain: encPlain11, opts: EncryptOptions{KeyTransport: AlgRSAOAEP, OAEPDigest: AlgSHA512, MGF: AlgMGF1SHA1}},
		{name: "oaep11-sha384-mgf1sha384", plain: encPlain12, opts: EncryptOptions{KeyTransport: AlgRSAOAEP, OAEPDigest: AlgSHA384, MGF: AlgMGF1SHA384}},
		{name: "oaep11-sha1", plain: encPlain12, opts: EncryptOptions{KeyTransport: AlgRSAOAEP, OAEPDigest: AlgSHA1, MGF: AlgMGF1SHA512}},
		{name: "rsa15-opted-in", plain: encPlain11, opts: EncryptOptions{KeyTransport: AlgRSA15}, pol: DecryptPolicy{AllowRSA15: true}},
		{name: "cbc-opted-in", plain: encPlain11, opts: EncryptOptions{DataEncryption: AlgAES128CBC}, pol: DecryptPolicy{AllowCBC: true}},
		{name: "cbc256-opted-in", plain: encPlain12, opts: EncryptOptions{DataEncryption: AlgAES256CBC}, pol: DecryptPolicy{AllowCBC: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := encBodyC14N(t, encParse(t, []byte(c.plain), Limits{}))
			msg := encrypt(t, c.plain, c.opts)
			if bytes.Contains(msg, []byte("GetOrder")) {
				t.Fatalf("the Body content is readable in the encrypted message:\n%s", msg)
			}
			c.pol.RequireEncrypted = []Part{PartBody}
			env, d, err := decrypt(t, msg, c.pol, Limits{})
			if err != nil {
				t.Fatalf("Decrypt: %v\n%s", err, msg)
			}
			if got := encBodyC14N(t, env); got != want {
				t.Fatalf("decrypted Body\n%s\nwant\n%s", got, want)
			}
			if !d.BodyEncrypted(env) || !d.ContentDecrypted(env.Body) || d.Keys != 1 {
				t.Fatalf("decryption record: body %v content %v keys %d", d.BodyEncrypted(env), d.ContentDecrypted(env.Body), d.Keys)
			}
			env.Release()
		})
	}
}

// TestEncDefaultsForOldStacks pins the outbound defaults the spec names.
func TestEncDefaultsForOldStacks(t *testing.T) {
	msg := string(encrypt(t, encPlain11, EncryptOptions{}))
	for _, want := range []string{AlgRSAOAEPMGF1P, AlgAES128GCM, valueTypeSKI, `Type="` + TypeContent + `"`, "xenc:ReferenceList"} {
		if !strings.Contains(msg, want) {
			t.Errorf("encrypted message lacks %q", want)
		}
	}
	if strings.Contains(msg, NSXMLEnc11+"rsa-oaep\"") {
		t.Error("default key transport is xmlenc11#rsa-oaep, which WSS4J 1.6 cannot read")
	}
}

func TestEncRefusesBadRecipient(t *testing.T) {
	env := encParse(t, []byte(encPlain11), Limits{})
	id := gatewayEnc(t)
	weak := encReadCert(t, "../testdata/pki/weak-rsa1024.pem")
	signOnly := encReadCert(t, "../testdata/pki/partner-rsa.pem")
	ec := encReadCert(t, "../testdata/pki/partner-ecdsa.pem")
	cases := []struct {
		name string
		cert *x509.Certificate
		opts EncryptOptions
		want error
	}{
		{"weak", weak, EncryptOptions{Now: encFixedNow}, ErrWeakKey},
		{"sign-only key usage", signOnly, EncryptOptions{Now: encFixedNow}, ErrCertificateKeyUsage},
		{"ecdsa", ec, EncryptOptions{Now: encFixedNow}, ErrEncryptionConfig},
		{"expired", id.cert, EncryptOptions{Now: func() time.Time { return time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC) }}, ErrCertificateExpired},
		{"unknown transport", id.cert, EncryptOptions{Now: encFixedNow, KeyTransport: "urn:x"}, ErrEncryptionConfig},
		{"unknown cipher", id.cert, EncryptOptions{Now: encFixedNow, DataEncryption: "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"}, ErrEncryptionConfig},
		{"unknown key reference", id.cert, EncryptOptions{Now: encFixedNow, KeyReference: "name"}, ErrEncryptionConfig},
	}
	for _, c := range cases {
		if _, err := EncryptBody(env, c.cert, c.opts); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

// --- hand-built messages for the refusal tests -----------------------------

type encKit struct {
	t    testing.TB
	id   encIdentity
	pub  *rsa.PublicKey
	key  []byte // the session key
	dalg string
}

func newEncKit(t testing.TB, dalg string) *encKit {
	id := gatewayEnc(t)
	k := &encKit{t: t, id: id, pub: id.cert.PublicKey.(*rsa.PublicKey), dalg: dalg}
	k.key = make([]byte, dataCiphers[dalg].keyLen)
	rand.Read(k.key)
	return k
}

// seal encrypts plain with the kit's session key.
func (k *encKit) seal(plain string) string {
	block, err := aes.NewCipher(k.key)
	if err != nil {
		k.t.Fatal(err)
	}
	v, err := sealData(dataCiphers[k.dalg], block, rand.Reader, []byte(plain))
	if err != nil {
		k.t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(v)
}

// wrap encrypts the session key for the gateway with rsa-oaep-mgf1p.
func (k *encKit) wrap() string {
	v, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, k.pub, k.key, nil)
	if err != nil {
		k.t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(v)
}

func (k *encKit) ski() string {
	return `<wsse:SecurityTokenReference><wsse:KeyIdentifier ValueType="` + valueTypeSKI + `" EncodingType="` + encodingBase64 + `">` +
		base64.StdEncoding.EncodeToString(k.id.cert.SubjectKeyId) + `</wsse:KeyIdentifier></wsse:SecurityTokenReference>`
}

func ekXML(id, transport, keyRef, cipher string, refs ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<xenc:EncryptedKey Id=%q><xenc:EncryptionMethod Algorithm=%q/><ds:KeyInfo>%s</ds:KeyInfo><xenc:CipherData><xenc:CipherValue>%s</xenc:CipherValue></xenc:CipherData><xenc:ReferenceList>`,
		id, transport, keyRef, cipher)
	for _, r := range refs {
		fmt.Fprintf(&b, `<xenc:DataReference URI="#%s"/>`, r)
	}
	b.WriteString(`</xenc:ReferenceList></xenc:EncryptedKey>`)
	return b.String()
}

func edXML(id, typ, alg, cipher string) string {
	return fmt.Sprintf(`<xenc:EncryptedData Id=%q Type=%q><xenc:EncryptionMethod Algorithm=%q/><xenc:CipherData><xenc:CipherValue>%s</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>`,
		id, typ, alg, cipher)
}

// soap11 builds an envelope with the usual prefixes declared on the root.
func soap11(security, headers, body string) string {
	return `<soapenv:Envelope xmlns:soapenv="` + NSSOAP11 + `" xmlns:wsse="` + NSWSSE + `" xmlns:wsse11="` + NSWSSE11 +
		`" xmlns:wsu="` + NSWSU + `" xmlns:xenc="` + NSXMLEnc + `" xmlns:ds="` + NSDSig + `" xmlns:ord="urn:example:orders">` +
		`<soapenv:Header><wsse:Security soapenv:mustUnderstand="1">` + security + `</wsse:Security>` + headers +
		`</soapenv:Header><soapenv:Body wsu:Id="Body-1">` + body + `</soapenv:Body></soapenv:Envelope>`
}

const encOrder = `<ord:GetOrder><ord:ID>42</ord:ID></ord:GetOrder>`

func TestDecRefusals(t *testing.T) {
	gcm := newEncKit(t, AlgAES128GCM)
	ct := gcm.seal(encOrder)
	ek := func(refs ...string) string { return ekXML("EK-1", AlgRSAOAEPMGF1P, gcm.ski(), gcm.wrap(), refs...) }
	other := encReadCert(t, "../testdata/pki/partner-rsa.pem")
	otherSKI := `<wsse:SecurityTokenReference><wsse:KeyIdentifier ValueType="` + valueTypeSKI + `" EncodingType="` + encodingBase64 + `">` +
		base64.StdEncoding.EncodeToString(subjectKeyID(other)) + `</wsse:KeyIdentifier></wsse:SecurityTokenReference>`
	tamperedCT := func() string {
		v, _ := base64.StdEncoding.DecodeString(ct)
		v[20] ^= 1
		return base64.StdEncoding.EncodeToString(v)
	}()
	cases := []struct {
		name  string
		msg   string
		pol   DecryptPolicy
		want  error
		fault string
	}{
		{"accepted", soap11(ek("ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, nil, ""},
		{"plaintext body where required", soap11("", "", encOrder), DecryptPolicy{RequireEncrypted: []Part{PartBody}}, ErrBodyNotEncrypted, "InvalidSecurity"},
		{"body half encrypted where required", soap11(ek("ED-1"), "", edXML("ED-1", TypeElement, AlgAES128GCM, ct)+encOrder), DecryptPolicy{RequireEncrypted: []Part{PartBody}}, ErrBodyNotEncrypted, "InvalidSecurity"},
		{"tampered ciphertext", soap11(ek("ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, tamperedCT)), DecryptPolicy{}, ErrDecryptionFailed, "FailedCheck"},
		{"wrapped key garbage", soap11(ekXML("EK-1", AlgRSAOAEPMGF1P, gcm.ski(), base64.StdEncoding.EncodeToString(make([]byte, 256)), "ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrDecryptionFailed, "FailedCheck"},
		{"key for someone else", soap11(ekXML("EK-1", AlgRSAOAEPMGF1P, otherSKI, gcm.wrap(), "ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrTokenUnavailable, "SecurityTokenUnavailable"},
		{"rsa15 not allowed", soap11(ekXML("EK-1", AlgRSA15, gcm.ski(), gcm.wrap(), "ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrRSA15NotAllowed, "UnsupportedAlgorithm"},
		{"cbc not allowed", soap11(ek("ED-1"), "", edXML("ED-1", TypeContent, AlgAES128CBC, ct)), DecryptPolicy{}, ErrCBCNotAllowed, "UnsupportedAlgorithm"},
		{"3des", soap11(ek("ED-1"), "", edXML("ED-1", TypeContent, "http://www.w3.org/2001/04/xmlenc#tripledes-cbc", ct)), DecryptPolicy{AllowCBC: true}, ErrUnsupportedAlgorithm, "UnsupportedAlgorithm"},
		{"key wrap transport", soap11(ekXML("EK-1", "http://www.w3.org/2001/04/xmlenc#kw-aes128", gcm.ski(), gcm.wrap(), "ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrUnsupportedAlgorithm, "UnsupportedAlgorithm"},
		{"oaep md5 digest", soap11(strings.Replace(ek("ED-1"), `rsa-oaep-mgf1p"/>`, `rsa-oaep-mgf1p"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#md5"/></xenc:EncryptionMethod>`, 1), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrUnsupportedAlgorithm, "UnsupportedAlgorithm"},
		{"mgf on mgf1p", soap11(strings.Replace(ek("ED-1"), `rsa-oaep-mgf1p"/>`, `rsa-oaep-mgf1p"><xenc11:MGF xmlns:xenc11="`+NSXMLEnc11+`" Algorithm="`+AlgMGF1SHA256+`"/></xenc:EncryptionMethod>`, 1), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrMalformedEncryption, "InvalidSecurity"},
		{"reference to the Body", soap11(ek("Body-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrEncryptedDataLocation, "InvalidSecurity"},
		{"reference into Security", soap11(ek("ED-1")+edXML("ED-1", TypeElement, AlgAES128GCM, ct), "", encOrder), DecryptPolicy{}, ErrEncryptedDataLocation, "InvalidSecurity"},
		{"moved into a wrapper", soap11(ek("ED-1"), "", `<ord:Wrapper>`+edXML("ED-1", TypeContent, AlgAES128GCM, ct)+`</ord:Wrapper>`), DecryptPolicy{}, ErrEncryptedDataLocation, "InvalidSecurity"},
		{"element moved into a wrapper", soap11(ek("ED-1"), "", `<ord:Wrapper>`+edXML("ED-1", TypeElement, AlgAES128GCM, ct)+`</ord:Wrapper>`), DecryptPolicy{}, ErrEncryptedDataLocation, "InvalidSecurity"},
		{"content beside other elements", soap11(ek("ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)+encOrder), DecryptPolicy{}, ErrEncryptedDataLocation, "InvalidSecurity"},
		{"encrypted header wrapper in Body", soap11(ek("ED-1"), "", `<wsse11:EncryptedHeader>`+edXML("ED-1", TypeElement, AlgAES128GCM, ct)+`</wsse11:EncryptedHeader>`), DecryptPolicy{}, ErrEncryptedDataLocation, "InvalidSecurity"},
		{"two keys for one EncryptedData", soap11(ek("ED-1")+ekXML("EK-2", AlgRSAOAEPMGF1P, gcm.ski(), gcm.wrap(), "ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrEncryptedDataReused, "InvalidSecurity"},
		{"one EncryptedData listed twice", soap11(ek("ED-1", "ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrEncryptedDataReused, "InvalidSecurity"},
		{"EncryptedData names another key", soap11(ek("ED-1"), "", strings.Replace(edXML("ED-1", TypeContent, AlgAES128GCM, ct), `<xenc:CipherData>`, `<ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#EK-2"/></wsse:SecurityTokenReference></ds:KeyInfo><xenc:CipherData>`, 1)), DecryptPolicy{}, ErrEncryptedDataReused, "InvalidSecurity"},
		{"embedded key in EncryptedData", soap11(ek("ED-1"), "", strings.Replace(edXML("ED-1", TypeContent, AlgAES128GCM, ct), `<xenc:CipherData>`, `<ds:KeyInfo><ds:KeyName>k</ds:KeyName></ds:KeyInfo><xenc:CipherData>`, 1)), DecryptPolicy{}, ErrMalformedEncryption, "InvalidSecurity"},
		{"duplicate IDs", soap11(ek("ED-1"), `<ord:H xenc:Id="x"><ord:X Id="ED-1"/></ord:H>`, edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrDuplicateID, "InvalidSecurity"},
		{"dangling reference", soap11(ek("ED-9"), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrReferenceNotFound, "InvalidSecurity"},
		{"EncryptedData no key unlocks", soap11("", "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrUndecryptedData, "InvalidSecurity"},
		{"CipherReference", soap11(ek("ED-1"), "", strings.Replace(edXML("ED-1", TypeContent, AlgAES128GCM, ct), `<xenc:CipherValue>`+ct+`</xenc:CipherValue>`, `<xenc:CipherReference URI="http://attacker.example/"/>`, 1)), DecryptPolicy{}, ErrMalformedEncryption, "InvalidSecurity"},
		{"no ReferenceList", soap11(strings.Replace(ek("ED-1"), `<xenc:ReferenceList><xenc:DataReference URI="#ED-1"/></xenc:ReferenceList>`, "", 1), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrMalformedEncryption, "InvalidSecurity"},
		{"no Type", soap11(ek("ED-1"), "", strings.Replace(edXML("ED-1", TypeContent, AlgAES128GCM, ct), ` Type="`+TypeContent+`"`, "", 1)), DecryptPolicy{}, ErrMalformedEncryption, "InvalidSecurity"},
		{"external DataReference", soap11(strings.Replace(ek("ED-1"), `URI="#ED-1"`, `URI="http://attacker.example/x"`, 1), "", edXML("ED-1", TypeContent, AlgAES128GCM, ct)), DecryptPolicy{}, ErrReferenceNotFound, "InvalidSecurity"},
		{"ciphertext not base64", soap11(ek("ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, "!!!!")), DecryptPolicy{}, ErrMalformedEncryption, "InvalidSecurity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, _, err := decrypt(t, []byte(c.msg), c.pol, Limits{})
			if c.want == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if c.fault != "" {
				if got := FaultCode(err); got != c.fault {
					t.Errorf("FaultCode = %s, want %s", got, c.fault)
				}
			}
			if env != nil {
				env.Release()
			}
		})
	}
}

// TestDecHostilePlaintext: authenticated (GCM) plaintext is parsed with the
// message's parser and limits, counted together with the message.
func TestDecHostilePlaintext(t *testing.T) {
	k := newEncKit(t, AlgAES128GCM)
	msg := func(typ, plain string) string {
		return soap11(ekXML("EK-1", AlgRSAOAEPMGF1P, k.ski(), k.wrap(), "ED-1"), "", edXML("ED-1", typ, AlgAES128GCM, k.seal(plain)))
	}
	// The wrapper envelope has 16 elements once decrypted with one small child.
	many := func(n int) string { return "<ord:L>" + strings.Repeat("<ord:a/>", n) + "</ord:L>" }
	deep := strings.Repeat("<ord:d>", 70) + strings.Repeat("</ord:d>", 70)
	cases := []struct {
		name   string
		msg    string
		limits Limits
		want   error
	}{
		{"doctype", msg(TypeContent, `<!DOCTYPE x [<!ENTITY a "b">]><ord:x>&a;</ord:x>`), Limits{}, ErrDTD},
		{"entity", msg(TypeContent, `<ord:x>&xxe;</ord:x>`), Limits{}, ErrNotXML},
		{"processing instruction", msg(TypeContent, `<?xml-stylesheet href="x"?><ord:x/>`), Limits{}, ErrDTD},
		{"xml declaration", msg(TypeElement, `<?xml version="1.0"?><ord:x/>`), Limits{}, ErrNotXML},
		{"too deep from the Body", msg(TypeContent, deep), Limits{}, ErrTooDeep},
		{"depth counts the insertion point", msg(TypeContent, strings.Repeat("<ord:d>", 9)+strings.Repeat("</ord:d>", 9)), Limits{MaxDepth: 10}, ErrTooDeep},
		{"depth at the limit", msg(TypeContent, strings.Repeat("<ord:d>", 8)+strings.Repeat("</ord:d>", 8)), Limits{MaxDepth: 10}, nil},
		{"elements counted with the message", msg(TypeContent, many(1000)), Limits{MaxElements: 1000}, ErrTooManyElements},
		{"elements under the joint limit", msg(TypeContent, many(900)), Limits{MaxElements: 1000}, nil},
		{"attributes", msg(TypeContent, `<ord:x a="1" b="2" c="3"/>`), Limits{MaxAttributes: 2}, ErrTooManyElements},
		{"undeclared prefix", msg(TypeContent, `<evil:x/>`), Limits{}, ErrNamespace},
		{"undeclared attribute prefix", msg(TypeElement, `<ord:x evil:a="1"/>`), Limits{}, ErrNamespace},
		{"prefix of the context", msg(TypeContent, `<ord:x wsu:Id="y"/>`), Limits{}, nil},
		{"closing the wrapper", msg(TypeContent, `</w><w>`), Limits{}, ErrNotXML},
		{"two elements for Type Element", msg(TypeElement, `<ord:x/><ord:y/>`), Limits{}, ErrMalformedEncryption},
		{"text for Type Element", msg(TypeElement, `hello`), Limits{}, ErrMalformedEncryption},
		{"not xml", msg(TypeContent, "<ord:x>\x00</ord:x>"), Limits{}, ErrNotXML},
		{"invalid utf-8", msg(TypeContent, "<ord:x>\xff</ord:x>"), Limits{}, ErrNotXML},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, _, err := decrypt(t, []byte(c.msg), DecryptPolicy{}, c.limits)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if env != nil {
				env.Release()
			}
		})
	}
}

// TestDecElementTypesAndHeaders: Type Element in the Body and in a WSS 1.1
// EncryptedHeader, decrypted in place, recorded by node identity.
func TestDecElementTypesAndHeaders(t *testing.T) {
	id := gatewayEnc(t)
	env := encParse(t, []byte(encPlain11), Limits{})
	doc := env.Doc.Copy()
	err := encryptDoc(doc, id.cert, EncryptOptions{Now: encFixedNow}, func(header, body *etree.Element) []encPart {
		return []encPart{{el: header.SelectElement("ord:Trace"), header: true}, {el: body.ChildElements()[0]}}
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := writeDoc(doc)
	if bytes.Contains(msg, []byte("<ord:Trace")) || !bytes.Contains(msg, []byte("wsse11:EncryptedHeader")) {
		t.Fatalf("header not encrypted:\n%s", msg)
	}
	got, d, err := decrypt(t, msg, DecryptPolicy{RequireEncrypted: []Part{PartBody}}, Limits{})
	if err != nil {
		t.Fatalf("Decrypt: %v\n%s", err, msg)
	}
	if encBodyC14N(t, got) != encBodyC14N(t, env) {
		t.Fatal("Body differs after decryption")
	}
	var trace *etree.Element
	for _, h := range got.Header.ChildElements() {
		if h.Tag == "Trace" {
			trace = h
		}
	}
	if trace == nil || trace.Text() != "t-1" || trace.NamespaceURI() != "urn:example:orders" || trace.Parent() != got.Header {
		t.Fatalf("Trace header not restored in place")
	}
	if !d.ElementDecrypted(trace) || !d.ElementDecrypted(got.Body.ChildElements()[0]) || !d.BodyEncrypted(got) {
		t.Fatal("decrypted elements not recorded")
	}
	if d.ElementDecrypted(got.Body) || d.ContentDecrypted(trace) {
		t.Fatal("records nodes that were not decrypted")
	}
}

// TestDecBleichenbacher: RSA v1.5 is refused by default; where a route opts
// in, a ciphertext for another key, a bad padding and a wrong-length key
// all end in the same ErrDecryptionFailed value from the data decryption,
// whether the Decrypter substitutes the random key itself (rsa.PrivateKey)
// or reports the padding error (a remote key).
func TestDecBleichenbacher(t *testing.T) {
	for _, dalg := range []string{AlgAES128GCM, AlgAES256CBC} {
		k := newEncKit(t, dalg)
		ct := k.seal(encOrder)
		good, _ := rsa.EncryptPKCS1v15(rand.Reader, k.pub, k.key)
		short, _ := rsa.EncryptPKCS1v15(rand.Reader, k.pub, k.key[:len(k.key)-1])
		other, _ := rsa.EncryptPKCS1v15(rand.Reader, encReadCert(t, "../testdata/pki/partner-rsa.pem").PublicKey.(*rsa.PublicKey), k.key)
		// Raw RSA of a block without the 00 02 header: bad padding.
		m := make([]byte, k.pub.Size())
		rand.Read(m)
		m[0], m[1] = 0, 0x07
		badPad := new(big.Int).Exp(new(big.Int).SetBytes(m), big.NewInt(int64(k.pub.E)), k.pub.N).FillBytes(make([]byte, k.pub.Size()))
		msg := func(wrapped []byte) []byte {
			return []byte(soap11(ekXML("EK-1", AlgRSA15, k.ski(), base64.StdEncoding.EncodeToString(wrapped), "ED-1"), "", edXML("ED-1", TypeContent, dalg, ct)))
		}
		pol := DecryptPolicy{AllowRSA15: true, AllowCBC: true}
		if _, _, err := decrypt(t, msg(good), DecryptPolicy{}, Limits{}); !errors.Is(err, ErrRSA15NotAllowed) {
			t.Fatalf("%s: RSA 1.5 by default: err = %v", dalg, err)
		}
		if _, _, err := decrypt(t, msg(good), pol, Limits{}); err != nil {
			t.Fatalf("%s: opted-in RSA 1.5: %v", dalg, err)
		}
		remote := pol
		remote.Identity = encIdentity{cert: k.id.cert, key: strictPKCS1{k.id.key.(*rsa.PrivateKey)}}
		for name, wrapped := range map[string][]byte{"other key": other, "bad padding": badPad, "short key": short} {
			for _, p := range []DecryptPolicy{pol, remote} {
				_, _, err := decrypt(t, msg(wrapped), p, Limits{})
				if err != ErrDecryptionFailed { // the very value, not only errors.Is
					t.Errorf("%s %s: err = %v, want exactly ErrDecryptionFailed", dalg, name, err)
				}
			}
		}
	}
	// The substitute key is random, not a fixed value an attacker could test for.
	k := newEncKit(t, AlgAES128GCM)
	d := &decryptor{policy: &DecryptPolicy{}, key: k.id.key}
	ek := &encryptedKey{method: keyTransport{rsa15: true}, cipher: make([]byte, k.pub.Size())}
	a, err1 := d.unwrap(ek, 16)
	b, err2 := d.unwrap(ek, 16)
	if err1 != nil || err2 != nil || bytes.Equal(a, b) {
		t.Fatalf("bad padding gave %x, %x (%v, %v): want two random keys", a, b, err1, err2)
	}
}

// strictPKCS1 is a Decrypter that, like a remote key service, reports a
// PKCS#1 v1.5 padding error instead of returning a random key.
type strictPKCS1 struct{ k *rsa.PrivateKey }

func (s strictPKCS1) Public() crypto.PublicKey { return s.k.Public() }
func (s strictPKCS1) Decrypt(r io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	if _, ok := opts.(*rsa.PKCS1v15DecryptOptions); ok {
		return rsa.DecryptPKCS1v15(nil, s.k, msg)
	}
	return s.k.Decrypt(r, msg, opts)
}

// TestDecCBCPaddingOracle: CBC is refused by default; where a route opts
// in, a bad padding, a good padding over garbage, hostile plaintext, a
// truncated ciphertext and a wrong key are all the one ErrDecryptionFailed.
func TestDecCBCPaddingOracle(t *testing.T) {
	k := newEncKit(t, AlgAES128CBC)
	block, _ := aes.NewCipher(k.key)
	ekx := ekXML("EK-1", AlgRSAOAEPMGF1P, k.ski(), k.wrap(), "ED-1")
	msg := func(value []byte) []byte {
		return []byte(soap11(ekx, "", edXML("ED-1", TypeContent, AlgAES128CBC, base64.StdEncoding.EncodeToString(value))))
	}
	raw := func(padded []byte) []byte { // CBC without padding of its own
		out := make([]byte, 16+len(padded))
		rand.Read(out[:16])
		for i := 0; i < len(padded); i += 16 {
			prev := out[i : i+16]
			blk := make([]byte, 16)
			for j := range blk {
				blk[j] = padded[i+j] ^ prev[j]
			}
			block.Encrypt(out[16+i:32+i], blk)
		}
		return out
	}
	good, _ := sealData(dataCiphers[AlgAES128CBC], block, rand.Reader, []byte(encOrder))
	if _, _, err := decrypt(t, msg(good), DecryptPolicy{}, Limits{}); !errors.Is(err, ErrCBCNotAllowed) {
		t.Fatalf("CBC by default: err = %v", err)
	}
	if _, _, err := decrypt(t, msg(good), DecryptPolicy{AllowCBC: true}, Limits{}); err != nil {
		t.Fatalf("opted-in CBC: %v", err)
	}
	pad := func(s string, last byte) []byte {
		b := []byte(s)
		n := 16 - len(b)%16
		b = append(b, bytes.Repeat([]byte{0xAA}, n)...)
		b[len(b)-1] = last
		return b
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-17] ^= 0x40
	cases := map[string][]byte{
		"pad 0":                    raw(pad(encOrder, 0)),
		"pad 17":                   raw(pad(encOrder, 17)),
		"pad 255":                  raw(pad(encOrder, 255)),
		"good pad, not xml":        raw(pad("<ord:x>\x01", byte(16-len("<ord:x>\x01")%16))),
		"good pad, doctype":        raw(pad(`<!DOCTYPE x><ord:x/>`, byte(16-len(`<!DOCTYPE x><ord:x/>`)%16))),
		"good pad, unbalanced":     raw(pad(`<ord:x>`, byte(16-len(`<ord:x>`)%16))),
		"last block flipped":       flipped,
		"truncated":                good[:len(good)-16],
		"not a block multiple":     good[:len(good)-3],
		"iv only":                  good[:16],
		"undeclared prefix, valid": raw(pad(`<evil:x/>`, byte(16-len(`<evil:x/>`)%16))),
	}
	other := newEncKit(t, AlgAES128CBC) // right ciphertext shape, wrong session key
	otherBlock, _ := aes.NewCipher(other.key)
	cases["wrong key"], _ = sealData(dataCiphers[AlgAES128CBC], otherBlock, rand.Reader, []byte(encOrder))
	for name, value := range cases {
		_, _, err := decrypt(t, msg(value), DecryptPolicy{AllowCBC: true}, Limits{})
		if err != ErrDecryptionFailed {
			t.Errorf("%s: err = %v, want exactly ErrDecryptionFailed", name, err)
		}
		if FaultCode(err) != FaultCode(ErrDecryptionFailed) {
			t.Errorf("%s: fault %s", name, FaultCode(err))
		}
	}
}

func TestDecIdentityChecks(t *testing.T) {
	msg := encrypt(t, encPlain11, EncryptOptions{})
	weak := encIdentity{cert: encReadCert(t, "../testdata/pki/weak-rsa1024.pem"), key: encReadKey(t, "../testdata/pki/weak-rsa1024.key.pem").(crypto.Decrypter)}
	mismatch := encIdentity{cert: gatewayEnc(t).cert, key: encReadKey(t, "../testdata/pki/partner-rsa.key.pem").(crypto.Decrypter)}
	for name, c := range map[string]struct {
		p    *DecryptPolicy
		want error
	}{
		"weak key":          {&DecryptPolicy{Identity: weak}, ErrWeakKey},
		"key mismatch":      {&DecryptPolicy{Identity: mismatch}, ErrDecryptionConfig},
		"no identity":       {&DecryptPolicy{}, ErrDecryptionConfig},
		"nil policy":        {nil, ErrDecryptionConfig},
		"unknown part":      {&DecryptPolicy{Identity: gatewayEnc(t), RequireEncrypted: []Part{PartTimestamp}}, ErrDecryptionConfig},
		"other key's cert ": {&DecryptPolicy{Identity: encIdentity{cert: encReadCert(t, "../testdata/pki/partner-rsa.pem"), key: encReadKey(t, "../testdata/pki/partner-rsa.key.pem").(crypto.Decrypter)}}, ErrTokenUnavailable},
	} {
		env := encParse(t, msg, Limits{})
		if _, err := c.p.Decrypt(env, Limits{}); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
}

// TestDecSignThenEncryptOrder: sign-then-encrypt puts the EncryptedKey
// before the Signature, encrypt-then-sign after it; both decrypt to the
// signed plaintext Body.
func TestDecSignThenEncryptOrder(t *testing.T) {
	signer := encSigner(t)
	id := gatewayEnc(t)
	env := encParse(t, []byte(encPlain11), Limits{})
	for name, f := range map[string]func(*Envelope, *Signer, *x509.Certificate, EncryptOptions) ([]byte, error){
		"sign-then-encrypt": SignThenEncrypt, "encrypt-then-sign": EncryptThenSign,
	} {
		msg, err := f(env, signer, id.cert, EncryptOptions{Now: encFixedNow})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := encParse(t, msg, Limits{})
		var order []string
		for _, c := range findSecurity(got).ChildElements() {
			order = append(order, c.Tag)
		}
		ek, sig := indexOf(order, "EncryptedKey"), indexOf(order, "Signature")
		if ek < 0 || sig < 0 || (name == "sign-then-encrypt") != (ek < sig) {
			t.Fatalf("%s: Security children %v", name, order)
		}
		if _, err := (&DecryptPolicy{Identity: id, RequireEncrypted: []Part{PartBody}}).Decrypt(got, Limits{}); err != nil {
			t.Fatalf("%s: Decrypt: %v", name, err)
		}
		if !strings.Contains(encBodyC14N(t, got), "<ord:ID>42</ord:ID>") {
			t.Fatalf("%s: Body not decrypted", name)
		}
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func encSigner(t testing.TB) *Signer {
	return &Signer{
		Chain: []*x509.Certificate{encReadCert(t, "../testdata/pki/partner-rsa.pem")},
		Key:   encReadKey(t, "../testdata/pki/partner-rsa.key.pem"),
		Now:   encFixedNow,
	}
}

// encSized is an envelope whose Body holds about size bytes of orders.
func encSized(size int) string {
	var b strings.Builder
	b.WriteString(`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Body><ord:Batch>`)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `<ord:Order id="%d"><ord:ID>%d</ord:ID><ord:Note>rush &amp; gift</ord:Note></ord:Order>`, i, i)
	}
	b.WriteString(`</ord:Batch></soapenv:Body></soapenv:Envelope>`)
	return b.String()
}

// BenchmarkDecrypt parses and decrypts 2 KB and 1 MB envelopes (RSA-OAEP
// 2048 unwrap, AES-128-GCM, parse of the plaintext), as the SOAP edge does.
func BenchmarkDecrypt(b *testing.B) {
	id := gatewayEnc(b)
	for _, c := range []struct {
		name string
		size int
	}{{"2KB", 2 << 10}, {"1MB", 1 << 20}} {
		b.Run(c.name, func(b *testing.B) {
			msg := encrypt(b, encSized(c.size), EncryptOptions{})
			p := DecryptPolicy{Identity: id, RequireEncrypted: []Part{PartBody}}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				env, err := ParseEnvelope(msg, Limits{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.Decrypt(env, Limits{}); err != nil {
					b.Fatal(err)
				}
				env.Release()
			}
		})
	}
}

// unreachableKey is a Decrypter whose key service is down.
type unreachableKey struct{ crypto.PublicKey }

func (u unreachableKey) Public() crypto.PublicKey { return u.PublicKey }
func (u unreachableKey) Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error) {
	return nil, fmt.Errorf("%w: vault: connection refused", ErrDecryptionUnavailable)
}

// TestDecGatewayFaults: a key service outage and a misconfigured identity
// are the gateway's failures (not client errors); a message with more
// EncryptedKeys than any stack sends is refused before any RSA operation.
func TestDecGatewayFaults(t *testing.T) {
	id := gatewayEnc(t)
	msg := encrypt(t, encPlain11, EncryptOptions{})
	_, _, err := decrypt(t, msg, DecryptPolicy{Identity: encIdentity{cert: id.cert, key: unreachableKey{id.cert.PublicKey}}}, Limits{})
	if !errors.Is(err, ErrDecryptionUnavailable) || ClientError(err) {
		t.Fatalf("key service down: err = %v, client error %v", err, ClientError(err))
	}
	_, _, err = decrypt(t, msg, DecryptPolicy{Identity: encIdentity{cert: id.cert, key: encReadKey(t, "../testdata/pki/partner-rsa.key.pem").(crypto.Decrypter)}}, Limits{})
	if !errors.Is(err, ErrDecryptionConfig) || ClientError(err) {
		t.Fatalf("mismatched key: err = %v, client error %v", err, ClientError(err))
	}
	k := newEncKit(t, AlgAES128GCM)
	var keys, data strings.Builder
	for i := 0; i < maxEncryptedKeys+1; i++ {
		keys.WriteString(ekXML(fmt.Sprintf("EK-%d", i), AlgRSAOAEPMGF1P, k.ski(), k.wrap(), fmt.Sprintf("ED-%d", i)))
		data.WriteString(edXML(fmt.Sprintf("ED-%d", i), TypeElement, AlgAES128GCM, k.seal(encOrder)))
	}
	_, _, err = decrypt(t, []byte(soap11(keys.String(), "", data.String())), DecryptPolicy{}, Limits{})
	if !errors.Is(err, ErrMalformedEncryption) || !strings.Contains(err.Error(), "EncryptedKeys") {
		t.Fatalf("%d EncryptedKeys: err = %v", maxEncryptedKeys+1, err)
	}
}

// sha256OnlyKey is a Decrypter that, like Vault Transit, does OAEP with
// SHA-256 and MGF1-SHA-256 only.
type sha256OnlyKey struct{ k *rsa.PrivateKey }

func (s sha256OnlyKey) Public() crypto.PublicKey { return s.k.Public() }
func (s sha256OnlyKey) Decrypt(r io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	o, ok := opts.(*rsa.OAEPOptions)
	if !ok || o.Hash != crypto.SHA256 || (o.MGFHash != 0 && o.MGFHash != crypto.SHA256) {
		return nil, fmt.Errorf("%w: the key service does OAEP with SHA-256 only", ErrUnsupportedAlgorithm)
	}
	return s.k.Decrypt(r, msg, opts)
}

func TestDecTransitLikeKey(t *testing.T) {
	id := gatewayEnc(t)
	key := encIdentity{cert: id.cert, key: sha256OnlyKey{id.key.(*rsa.PrivateKey)}}
	ok := encrypt(t, encPlain11, EncryptOptions{KeyTransport: AlgRSAOAEP})
	if _, _, err := decrypt(t, ok, DecryptPolicy{Identity: key}, Limits{}); err != nil {
		t.Fatalf("rsa-oaep SHA-256/MGF1-SHA-256: %v", err)
	}
	mgf1p := encrypt(t, encPlain11, EncryptOptions{})
	if _, _, err := decrypt(t, mgf1p, DecryptPolicy{Identity: key}, Limits{}); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("rsa-oaep-mgf1p on a SHA-256-only key: err = %v", err)
	}
}

// BenchmarkDecryptCBCFailures times AES-CBC decryption and the plaintext
// parse, without the RSA unwrap, for a valid 16 KB Body and for the
// failures a padding oracle would tell apart: bad padding, good padding over
// garbage, and a wrong key. All but the valid one end in the same
// ErrDecryptionFailed after a decryption, a constant-time padding check and
// a parse. What remains is how far the parse gets before the first
// malformed byte: the time of a failure depends on where that byte lies.
// Only authenticated encryption (GCM) or a signature checked over the
// ciphertext before decryption (encrypt-then-sign) closes that channel,
// which is why CBC is off unless a route opts in.
func BenchmarkDecryptCBCFailures(b *testing.B) {
	k := newEncKit(b, AlgAES128CBC)
	block, _ := aes.NewCipher(k.key)
	body := encSized(16 << 10)
	body = body[strings.Index(body, "<ord:Batch>"):strings.Index(body, "</soapenv:Body>")]
	good, _ := sealData(dataCiphers[AlgAES128CBC], block, rand.Reader, []byte(body))
	badPad := bytes.Clone(good)
	badPad[len(badPad)-17] ^= 0x5a // last plaintext byte: padding length out of range
	garbage := bytes.Clone(good)
	garbage[20] ^= 0xff // second block garbled, padding intact
	wrong := newEncKit(b, AlgAES128CBC)
	wrongBlock, _ := aes.NewCipher(wrong.key)
	wrongKey, _ := sealData(dataCiphers[AlgAES128CBC], wrongBlock, rand.Reader, []byte(body))
	for _, c := range []struct {
		name  string
		value []byte
		want  error
	}{{"valid", good, nil}, {"bad-padding", badPad, ErrDecryptionFailed}, {"garbage", garbage, ErrDecryptionFailed}, {"wrong-key", wrongKey, ErrDecryptionFailed}} {
		b.Run(c.name, func(b *testing.B) {
			msg := []byte(soap11("", "", edXML("ED-1", TypeContent, AlgAES128CBC, base64.StdEncoding.EncodeToString(c.value))))
			for b.Loop() {
				b.StopTimer()
				env, err := ParseEnvelope(msg, Limits{})
				if err != nil {
					b.Fatal(err)
				}
				d, err := (&DecryptPolicy{Identity: k.id, AllowCBC: true}).newDecryptor(env, Limits{})
				if err != nil {
					b.Fatal(err)
				}
				ed, err := parseEncryptedData(env.Body.ChildElements()[0], true, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := d.decryptData(ed, k.key); err != c.want {
					b.Fatalf("err = %v, want %v", err, c.want)
				}
				b.StopTimer()
				env.Release()
				b.StartTimer()
			}
		})
	}
}

func TestEncBodyBytesAndStaticIdentity(t *testing.T) {
	id := gatewayEnc(t)
	msg, err := EncryptBodyBytes([]byte(encPlain12), Limits{}, id.cert, EncryptOptions{Now: encFixedNow})
	if err != nil {
		t.Fatal(err)
	}
	p := DecryptPolicy{Identity: StaticIdentity{Cert: id.cert, Key: id.key}, RequireEncrypted: []Part{PartBody}}
	env, _, err := decrypt(t, msg, p, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if encBodyC14N(t, env) != encBodyC14N(t, encParse(t, []byte(encPlain12), Limits{})) {
		t.Fatal("Body differs after the round trip")
	}
	if _, err := EncryptBodyBytes([]byte("<not-soap/>"), Limits{}, id.cert, EncryptOptions{}); !errors.Is(err, ErrNotEnvelope) {
		t.Fatalf("not an envelope: err = %v", err)
	}
}
