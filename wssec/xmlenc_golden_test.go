package wssec

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// The golden files in testdata/wssec/xmlenc are written by
// `go test ./wssec -run TestXMLEncGoldens -update-enc`, encrypted for
// gateway-enc.pem (and, where signed, signed by the partner RSA leaf at
// 2026-01-01T00:00:00Z). Encryption is randomized, so rewriting them changes
// every byte; the test only decrypts them.

type encGolden struct {
	file  string
	pol   DecryptPolicy
	want  error
	fault string
}

func encGoldenCases() []encGolden {
	opt := DecryptPolicy{AllowRSA15: true, AllowCBC: true}
	body := []Part{PartBody}
	return []encGolden{
		{file: "enc-body-soap11", pol: DecryptPolicy{RequireEncrypted: body}},
		{file: "enc-body-soap12-issuerserial", pol: DecryptPolicy{RequireEncrypted: body}},
		{file: "enc-oaep11-sha256", pol: DecryptPolicy{RequireEncrypted: body}},
		{file: "enc-cxf-encryptedheader", pol: DecryptPolicy{RequireEncrypted: body}},
		// Captured from the real stacks (not rewritten by -update-enc):
		// WSS4J 1.6.19 (interop/java/WSS4JTool.java, SKI, EncryptedHeader,
		// AES-128-GCM) and python-xmlsec (interop/xmlenc_python.py).
		{file: "enc-wss4j16-encryptedheader", pol: DecryptPolicy{RequireEncrypted: body}},
		{file: "enc-python-xmlsec", pol: DecryptPolicy{RequireEncrypted: body}},
		{file: "enc-sign-then-encrypt", pol: DecryptPolicy{RequireEncrypted: body}},
		{file: "enc-encrypt-then-sign", pol: DecryptPolicy{RequireEncrypted: body}},
		{file: "enc-rsa15-cbc", pol: opt},
		{file: "enc-rsa15-cbc", want: ErrRSA15NotAllowed, fault: "UnsupportedAlgorithm"},
		{file: "enc-rsa15-cbc", pol: DecryptPolicy{AllowRSA15: true}, want: ErrCBCNotAllowed, fault: "UnsupportedAlgorithm"},
		{file: "enc-3des", pol: opt, want: ErrUnsupportedAlgorithm, fault: "UnsupportedAlgorithm"},
		{file: "enc-tampered", want: ErrDecryptionFailed, fault: "FailedCheck"},
		{file: "enc-unknown-key", want: ErrTokenUnavailable, fault: "SecurityTokenUnavailable"},
		{file: "enc-wrapped", want: ErrEncryptedDataLocation, fault: "InvalidSecurity"},
		{file: "enc-reference-to-body", want: ErrEncryptedDataLocation, fault: "InvalidSecurity"},
		{file: "enc-two-keys", want: ErrEncryptedDataReused, fault: "InvalidSecurity"},
		{file: "enc-doctype-plaintext", want: ErrDTD, fault: "InvalidSecurity"},
		{file: "enc-plaintext-body", pol: DecryptPolicy{RequireEncrypted: body}, want: ErrBodyNotEncrypted, fault: "InvalidSecurity"},
	}
}

func TestXMLEncGoldens(t *testing.T) {
	if *updateEnc {
		writeEncGoldens(t)
	}
	files, _ := filepath.Glob(filepath.Join(encDir, "enc-*.xml"))
	covered := map[string]bool{}
	for _, c := range encGoldenCases() {
		covered[c.file] = true
		name := c.file
		if c.want != nil {
			name += "/" + FaultCode(c.want)
		}
		t.Run(name, func(t *testing.T) {
			msg, err := os.ReadFile(filepath.Join(encDir, c.file+".xml"))
			if err != nil {
				t.Fatal(err)
			}
			env, d, err := decrypt(t, msg, c.pol, Limits{})
			if c.want == nil {
				if err != nil {
					t.Fatalf("Decrypt: %v", err)
				}
				if !strings.Contains(encBodyC14N(t, env), ">42</") || findEncrypted(env.Envelope) != nil || d.Keys == 0 {
					t.Fatalf("not decrypted: %s", encBodyC14N(t, env))
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if c.fault != "" && FaultCode(err) != c.fault {
				t.Fatalf("FaultCode = %s, want %s", FaultCode(err), c.fault)
			}
		})
	}
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".xml"); !covered[name] {
			t.Errorf("%s has no case", name)
		}
	}
}

// writeEncGoldens (re)writes the golden files.
func writeEncGoldens(t *testing.T) {
	id := gatewayEnc(t)
	opts := EncryptOptions{Now: encFixedNow}
	plain := encParse(t, []byte(encPlain11), Limits{})
	plain12 := encParse(t, []byte(encPlain12), Limits{})
	out := map[string][]byte{}
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out["enc-body-soap11"] = must(EncryptBody(plain, id.cert, opts))
	o := opts
	o.KeyReference = KeyRefIssuerSerial
	out["enc-body-soap12-issuerserial"] = must(EncryptBody(plain12, id.cert, o))
	o = opts
	o.KeyTransport, o.DataEncryption = AlgRSAOAEP, AlgAES256GCM
	out["enc-oaep11-sha256"] = must(EncryptBody(plain, id.cert, o))
	o = opts
	o.KeyTransport, o.DataEncryption = AlgRSA15, AlgAES128CBC
	out["enc-rsa15-cbc"] = must(EncryptBody(plain, id.cert, o))
	out["enc-sign-then-encrypt"] = must(SignThenEncrypt(plain, encSigner(t), id.cert, opts))
	out["enc-encrypt-then-sign"] = must(EncryptThenSign(plain, encSigner(t), id.cert, opts))
	out["enc-cxf-encryptedheader"] = cxfShaped(t, id)

	base := string(out["enc-body-soap11"])
	out["enc-3des"] = []byte(strings.Replace(base, AlgAES128GCM, "http://www.w3.org/2001/04/xmlenc#tripledes-cbc", 1))
	out["enc-tampered"] = []byte(flipCipherValue(t, base, 1))
	out["enc-wrapped"] = []byte(regexp.MustCompile(`(<xenc:EncryptedData .*</xenc:EncryptedData>)`).ReplaceAllString(base, `<ord:Wrapper>$1</ord:Wrapper>`))
	out["enc-two-keys"] = []byte(regexp.MustCompile(`(<xenc:EncryptedKey .*</xenc:EncryptedKey>)`).ReplaceAllStringFunc(base, func(ek string) string {
		return ek + strings.Replace(ek, `Id="EK-`, `Id="EK2-`, 1)
	}))
	out["enc-reference-to-body"] = []byte(strings.Replace(strings.Replace(base, `<soapenv:Body>`, `<soapenv:Body xmlns:wsu="`+NSWSU+`" wsu:Id="Body-1">`, 1),
		`<xenc:DataReference URI="#ED-`, `<xenc:DataReference URI="#Body-1"/><xenc:DataReference URI="#X-`, 1))
	k := newEncKit(t, AlgAES128GCM)
	other := encReadCert(t, "../testdata/pki/partner-rsa.pem")
	otherSKI := strings.Replace(k.ski(), base64.StdEncoding.EncodeToString(k.id.cert.SubjectKeyId), base64.StdEncoding.EncodeToString(subjectKeyID(other)), 1)
	out["enc-unknown-key"] = []byte(soap11(ekXML("EK-1", AlgRSAOAEPMGF1P, otherSKI, k.wrap(), "ED-1"), "", edXML("ED-1", TypeContent, AlgAES128GCM, k.seal(encOrder))))
	out["enc-doctype-plaintext"] = []byte(soap11(ekXML("EK-1", AlgRSAOAEPMGF1P, k.ski(), k.wrap(), "ED-1"), "",
		edXML("ED-1", TypeContent, AlgAES128GCM, k.seal(`<!DOCTYPE r [<!ENTITY x "42">]><ord:GetOrder><ord:ID>&x;</ord:ID></ord:GetOrder>`))))
	out["enc-plaintext-body"] = []byte(soap11("", "", encOrder))

	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(encDir, name+".xml"), out[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// flipCipherValue flips a bit in the n-th CipherValue (0: the key).
func flipCipherValue(t *testing.T, msg string, n int) string {
	re := regexp.MustCompile(`<xenc:CipherValue>([^<]*)</xenc:CipherValue>`)
	i := 0
	return re.ReplaceAllStringFunc(msg, func(m string) string {
		defer func() { i++ }()
		if i != n {
			return m
		}
		v, err := base64.StdEncoding.DecodeString(re.FindStringSubmatch(m)[1])
		if err != nil {
			t.Fatal(err)
		}
		v[len(v)/2] ^= 1
		return "<xenc:CipherValue>" + base64.StdEncoding.EncodeToString(v) + "</xenc:CipherValue>"
	})
}

// cxfShaped writes what CXF/WSS4J send for encryptionParts
// "{Element}{urn:example:orders}Trace;{Content}{soap}Body" with
// encryptionKeyIdentifier IssuerSerial: one EncryptedKey whose
// ReferenceList names both parts, a wsse11:EncryptedHeader, EncryptedData
// whose KeyInfo points back at the EncryptedKey, and indentation.
func cxfShaped(t *testing.T, id encIdentity) []byte {
	env := encParse(t, []byte(encPlain11), Limits{})
	doc := env.Doc.Copy()
	err := encryptDoc(doc, id.cert, EncryptOptions{Now: encFixedNow, KeyReference: KeyRefIssuerSerial},
		func(header, body *etree.Element) []encPart {
			return []encPart{{el: header.SelectElement("ord:Trace"), header: true}, {el: body, content: true}}
		})
	if err != nil {
		t.Fatal(err)
	}
	var ekID string
	var eds []*etree.Element
	var walk func(*etree.Element)
	walk = func(el *etree.Element) {
		if el.Tag == "EncryptedKey" {
			ekID = el.SelectAttrValue("Id", "")
		}
		if el.Tag == "EncryptedData" {
			eds = append(eds, el)
		}
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(doc.Root())
	for _, ed := range eds {
		ki := etree.NewElement("ds:KeyInfo")
		ki.CreateAttr("xmlns:ds", NSDSig)
		str := ki.CreateElement("wsse:SecurityTokenReference")
		str.CreateAttr("xmlns:wsse", NSWSSE)
		str.CreateAttr("xmlns:wsse11", NSWSSE11)
		str.CreateAttr("wsse11:TokenType", valueTypeEncryptedKey)
		str.CreateElement("wsse:Reference").CreateAttr("URI", "#"+ekID)
		ed.InsertChildAt(1, ki)
	}
	doc.Indent(2)
	b, err := writeDoc(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("EncryptedHeader")) {
		t.Fatal("no EncryptedHeader")
	}
	return b
}
