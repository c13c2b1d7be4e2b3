package wssec

import (
	"crypto/rsa"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// FuzzSAMLAssertion looks for panics and hangs in the assertion path
// (placement, shape, goxmldsig, the validated copy's parser) and checks
// that whatever is accepted came with a subject, an issuer and the
// confirmation the route allows.
func FuzzSAMLAssertion(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "wssec", "saml-*.xml"))
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	idp := readPEMCerts(f, "saml-idp.pem")
	partner := readPEMCerts(f, "partner-rsa.pem")
	key := partner[0].PublicKey.(*rsa.PublicKey)
	f.Fuzz(func(t *testing.T, msg []byte) {
		env, err := ParseEnvelope(msg, Limits{})
		if err != nil {
			return
		}
		defer env.Release()
		var sec *etree.Element
		if env.Header != nil {
			for _, h := range samlChildren(env.Header) {
				if samlIs(h, NSWSSE, "Security") {
					sec = h
				}
			}
		}
		if sec == nil {
			return
		}
		p := &SAMLPolicy{Trust: idp, Audience: []string{"urn:wsgate:orders"}, Confirmation: []string{"holder-of-key", "bearer"}}
		// Everything counts as signed by the partner: the fuzzer explores
		// the assertion, not the message signature.
		binding := SAMLMessage{SignerKey: key, SignerTrusted: true, Signed: func(*etree.Element) bool { return true }, Body: env.Body}
		for _, c := range samlChildren(sec) {
			if kids := samlChildren(c); samlIs(c, NSDSig, "Signature") && len(kids) == 3 {
				if c, ok, err := p.HolderOfKeySigner(env.Envelope, sec, kids[2], goldenNow); ok && err == nil && c == nil {
					t.Fatal("HolderOfKeySigner returned no key and no error")
				}
			}
		}
		a, err := p.Verify(env.Envelope, sec, binding, goldenNow)
		if err != nil {
			return
		}
		if a == nil {
			return
		}
		if a.Subject == "" || a.Issuer == "" || a.ID == "" || (a.Confirmation != ConfirmHolderOfKey && a.Confirmation != ConfirmBearer) {
			t.Fatalf("accepted an incomplete assertion: %+v", a)
		}
	})
}

// FuzzParseRevocation looks for panics in the revocation inputs read from
// secrets (CRL PEM/DER, thumbprint lists) and checks that a parsed list
// only ever holds 32-byte thumbprints that round-trip.
func FuzzParseRevocation(f *testing.F) {
	f.Add([]byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"), "ab:cd\n# c\n")
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, "0000000000000000000000000000000000000000000000000000000000000000")
	f.Fuzz(func(t *testing.T, crl []byte, thumbprints string) {
		if lists, err := ParseCRLs(crl); err == nil && len(lists) == 0 {
			t.Fatal("no CRL and no error")
		}
		fps, err := ParseThumbprints(thumbprints)
		if err == nil {
			for _, fp := range fps {
				if !strings.Contains(strings.ToLower(strings.ReplaceAll(thumbprints, ":", "")), hex.EncodeToString(fp[:])) {
					t.Fatalf("thumbprint %x is not in the input", fp)
				}
			}
		}
	})
}
