// Command gentestdata (re)writes wsgate's WS-Security golden files:
// testdata/pki/*.pem (only when absent: RSA key generation is not
// repeatable, so committed keys are reused) and testdata/wssec/*.xml.
// Run it from the module root: go run ./internal/gentestdata
//
// Every message is created 2026-01-01T00:00:00.000Z and expires five
// minutes later; wssec/golden_test.go verifies them as of 00:01:00Z.
package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"wsgate/internal/pki"
	"wsgate/wssec"
)

// Clock of the generated PKI and messages.
var (
	pkiNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	pkiNotAfter  = time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	msgCreated   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func main() {
	dir := flag.String("dir", "testdata", "testdata directory (holds pki/ and wssec/)")
	flag.Parse()
	if err := run(*dir); err != nil {
		log.Fatal(err)
	}
}

func run(dir string) error {
	ids, err := loadOrIssuePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return err
	}
	msgs, err := buildMessages(ids)
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "wssec")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, m := range msgs {
		if err := os.WriteFile(filepath.Join(out, m.name+".xml"), m.data, 0o644); err != nil {
			return err
		}
	}
	log.Printf("wrote %d messages to %s", len(msgs), out)
	return nil
}

// identities holds the test PKI.
type identities struct {
	ca, partnerRSA, partnerEC, untrustedCA, untrusted, expired, weak, keyUsage *pki.Identity
}

type pkiEntry struct {
	name   string
	target **pki.Identity
	parent **pki.Identity
	opts   pki.Options
}

func (ids *identities) entries() []pkiEntry {
	valid := func(cn string, kt pki.KeyType, serial int64) pki.Options {
		return pki.Options{CommonName: cn, Key: kt, NotBefore: pkiNotBefore, NotAfter: pkiNotAfter, Serial: serial}
	}
	ca := valid("wsgate test CA", pki.RSA2048, 1)
	ca.IsCA = true
	uca := valid("untrusted test CA", pki.RSA2048, 100)
	uca.IsCA = true
	expired := valid("expired partner", pki.RSA2048, 5)
	expired.NotAfter = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	ku := valid("keyusage partner", pki.RSA2048, 7)
	ku.KeyUsage = x509.KeyUsageKeyEncipherment
	// Parents come before children: the order is the issuing order.
	return []pkiEntry{
		{"ca", &ids.ca, nil, ca},
		{"partner-rsa", &ids.partnerRSA, &ids.ca, valid("partner rsa", pki.RSA2048, 2)},
		{"partner-ecdsa", &ids.partnerEC, &ids.ca, valid("partner ecdsa", pki.ECP256, 3)},
		{"untrusted-ca", &ids.untrustedCA, nil, uca},
		{"untrusted-leaf", &ids.untrusted, &ids.untrustedCA, valid("untrusted partner", pki.RSA2048, 101)},
		{"expired", &ids.expired, &ids.ca, expired},
		{"weak-rsa1024", &ids.weak, &ids.ca, valid("weak partner", pki.RSA1024, 6)},
		{"keyusage", &ids.keyUsage, &ids.ca, ku},
	}
}

// loadOrIssuePKI reuses committed keys; it issues the whole set only when
// none exists, so certificates always chain to the CA next to them.
func loadOrIssuePKI(dir string) (*identities, error) {
	ids := &identities{}
	entries := ids.entries()
	present := 0
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.name+".pem")); err == nil {
			present++
		}
	}
	switch present {
	case len(entries):
		for _, e := range entries {
			id, err := loadIdentity(dir, e.name)
			if err != nil {
				return nil, err
			}
			*e.target = id
		}
		return ids, nil
	case 0:
	default:
		return nil, fmt.Errorf("%s is incomplete (%d of %d identities); delete it to re-issue all", dir, present, len(entries))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	is := pki.Issuer{Now: func() time.Time { return pkiNotBefore }}
	for _, e := range entries {
		var parent *pki.Identity
		if e.parent != nil {
			parent = *e.parent
		}
		id, err := is.Issue(e.opts, parent)
		if err != nil {
			return nil, fmt.Errorf("issue %s: %w", e.name, err)
		}
		*e.target = id
		keyPEM, err := pki.KeyPEM(id.Key)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, e.name+".pem"), pki.CertPEM(id.Cert), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, e.name+".key.pem"), keyPEM, 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "trust.pem"), pki.CertPEM(ids.ca.Cert), 0o644); err != nil {
		return nil, err
	}
	return ids, nil
}

func loadIdentity(dir, name string) (*pki.Identity, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, name+".pem"))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, name+".key.pem"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s.key.pem is missing", name)
	} else if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("%s: no PEM block", name)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	cs, err := asSigner(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	id := &pki.Identity{Cert: cert}
	id.Key = cs
	return id, nil
}

// message is one golden file.
type message struct {
	name string
	data []byte
}

// signer returns a Signer for id with the fixed clock and sequential IDs,
// so regenerated files differ only where the crypto does.
func signer(id *pki.Identity) *wssec.Signer {
	n := 0
	seed := [32]byte{'w', 's', 'g', 'a', 't', 'e'}
	return &wssec.Signer{
		Rand:  mrand.NewChaCha8(seed), // repeatable nonces; ECDSA adds its own entropy regardless
		Chain: []*x509.Certificate{id.Cert},
		Key:   id.Key,
		Now:   func() time.Time { return msgCreated },
		NewID: func() string { n++; return fmt.Sprintf("%04d", n) },
	}
}

func sign(s *wssec.Signer, msg string) ([]byte, error) {
	env, err := parseLoose(msg)
	if err != nil {
		return nil, err
	}
	return s.Sign(env)
}

func buildMessages(ids *identities) ([]message, error) {
	var msgs []message
	var firstErr error
	add := func(name string, data []byte, err error) {
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", name, err)
		}
		msgs = append(msgs, message{name, data})
	}
	signed := func(name string, s *wssec.Signer, msg string) {
		b, err := sign(s, msg)
		add(name, b, err)
	}

	base11, err := sign(signer(ids.partnerRSA), envelope11)
	if err != nil {
		return nil, err
	}
	add("valid-soap11-rsa", base11, nil)
	edited := func(name string, f func(*doc) error) {
		b, err := edit(base11, f)
		add(name, b, err)
	}
	base12, err := sign(signer(ids.partnerRSA), envelope12)
	if err != nil {
		return nil, err
	}
	add("valid-soap12-rsa", base12, nil)
	signed("valid-soap11-ecdsa", signer(ids.partnerEC), envelope11)
	signed("valid-wsa", signer(ids.partnerRSA), envelopeWSA)
	for _, ref := range []string{wssec.KeyRefSKI, wssec.KeyRefThumbprint, wssec.KeyRefIssuerSerial} {
		s := signer(ids.partnerRSA)
		s.KeyReference = ref
		signed("valid-"+ref, s, envelope11)
	}
	edited("valid-bst-linebreaks", wrapBST)
	{
		s := signer(ids.partnerRSA)
		s.SignatureAlgorithm = algRSASHA1
		s.DigestAlgorithm = algSHA1
		signed("valid-sha1", s, envelope11)
	}
	signed("valid-large", signer(ids.partnerRSA), largeEnvelope())
	for _, c := range []struct {
		name   string
		pass   string
		digest bool
	}{{"valid-usernametoken-digest", "secret", true}, {"valid-usernametoken-text", "secret", false}, {"usernametoken-badpass", "wrong", true}} {
		s := signer(ids.partnerRSA)
		s.UsernameToken = &wssec.UsernameTokenOptions{Username: "alice", Password: c.pass, Digest: c.digest}
		signed(c.name, s, envelope11)
	}

	// Tampering after signing.
	edited("tampered-body", func(d *doc) error {
		return setText(d.find("ID"), "43")
	})
	edited("tampered-timestamp", func(d *doc) error {
		return setText(d.find("Expires"), "2026-01-01T00:10:00.000Z")
	})
	edited("tampered-signature", func(d *doc) error { return flipBase64(d.find("SignatureValue")) })
	edited("tampered-signedinfo", func(d *doc) error { return flipBase64(d.find("DigestValue")) })

	// Clock and certificate failures, signed honestly.
	{
		s := signer(ids.partnerRSA)
		s.Now = func() time.Time { return time.Date(2025, 12, 31, 23, 50, 0, 0, time.UTC) }
		signed("expired", s, envelope11)
		s = signer(ids.partnerRSA)
		s.Now = func() time.Time { return msgCreated.Add(10 * time.Minute) }
		signed("future", s, envelope11)
	}
	signed("untrusted-cert", signer(ids.untrusted), envelope11)
	signed("expired-cert", signer(ids.expired), envelope11)
	signed("weak-key", signer(ids.weak), envelope11)
	signed("keyusage", signer(ids.keyUsage), envelope11)
	{
		s := signer(ids.untrusted)
		s.KeyReference = wssec.KeyRefSKI
		signed("ski-unknown", s, envelope11)
	}

	// Algorithms outside the allow-list.
	{
		s := signer(ids.partnerRSA)
		s.CanonicalizationAlgorithm = algExcC14NComments
		signed("withcomments", s, envelope11)
	}
	edited("hmac", func(d *doc) error {
		d.find("SignatureMethod").CreateAttr("Algorithm", algHMACSHA256)
		return d.resign(ids.partnerRSA)
	})
	edited("md5-digest", func(d *doc) error {
		d.find("DigestMethod").CreateAttr("Algorithm", algMD5)
		return d.resign(ids.partnerRSA)
	})

	// Signature coverage.
	edited("unsigned-timestamp", func(d *doc) error {
		if err := d.dropReference(d.find("Timestamp")); err != nil {
			return err
		}
		return d.resign(ids.partnerRSA)
	})
	edited("no-timestamp", func(d *doc) error {
		ts := d.find("Timestamp")
		if err := d.dropReference(ts); err != nil {
			return err
		}
		ts.Parent().RemoveChild(ts)
		return d.resign(ids.partnerRSA)
	})
	edited("signature-token-only", func(d *doc) error {
		if err := d.dropReference(d.find("Timestamp")); err != nil {
			return err
		}
		ref := d.find("SignedInfo").SelectElement("Reference")
		ref.CreateAttr("URI", "#"+wsuID(d.find("BinarySecurityToken")))
		return d.resign(ids.partnerRSA)
	})

	// Envelope and header shape.
	edited("duplicate-id", func(d *doc) error {
		dup := d.header().CreateElement("ord:Audit")
		dup.CreateAttr("xmlns:wsu", wssec.NSWSU)
		dup.CreateAttr("wsu:Id", wsuID(d.body()))
		dup.SetText("copy")
		return nil
	})
	edited("second-body", func(d *doc) error {
		b := d.root().CreateElement("soapenv:Body")
		b.CreateElement("ord:DeleteAllOrders")
		return nil
	})
	edited("second-security", func(d *doc) error {
		sec := d.header().CreateElement("wsse:Security")
		sec.CreateAttr("xmlns:wsse", wssec.NSWSSE)
		sec.CreateAttr("soapenv:mustUnderstand", "1")
		return nil
	})

	// XML Signature Wrapping, all built from the valid SOAP 1.1 message.
	xswCases, err := xswVariants(base11)
	if err != nil {
		return nil, err
	}
	msgs = append(msgs, xswCases...)

	// Issue 11: what lies outside the signature is refused or not forwarded.
	attacks, err := attackMessages(map[string][]byte{"11": base11, "12": base12}, attackCases())
	if err != nil {
		return nil, err
	}
	msgs = append(msgs, attacks...)
	wsa11, err := sign(signer(ids.partnerRSA), envelopeWSA)
	if err != nil {
		return nil, err
	}
	wsa12, err := sign(signer(ids.partnerRSA), strings.Replace(envelopeWSA, wssec.NSSOAP11, wssec.NSSOAP12, 1))
	if err != nil {
		return nil, err
	}
	attacks, err = attackMessages(map[string][]byte{"11": wsa11, "12": wsa12}, addressingCases(ids.partnerRSA))
	if err != nil {
		return nil, err
	}
	msgs = append(msgs, attacks...)

	// Hostile or malformed input.
	add("doctype", []byte(`<?xml version="1.0"?>
<!DOCTYPE soapenv:Envelope [<!ENTITY who "world">]>
`+strings.Replace(envelope11, "<ord:ID>42</ord:ID>", "<ord:ID>&who;</ord:ID>", 1)), nil)
	add("billion-laughs", []byte(billionLaughs), nil)
	signed("deep", signer(ids.partnerRSA), deepEnvelope(100))
	add("not-xml", []byte("this is not XML, just text\n"), nil)
	add("empty", []byte{}, nil)
	add("not-envelope", []byte("<foo/>"), nil)
	add("no-security", []byte(envelope11), nil)

	if firstErr != nil {
		return nil, firstErr
	}
	return msgs, nil
}

func wrapBST(d *doc) error {
	bst := d.find("BinarySecurityToken")
	if bst == nil {
		return errors.New("no BinarySecurityToken")
	}
	text := bst.Text()
	var b strings.Builder
	b.WriteString("\n")
	for len(text) > 64 {
		b.WriteString(text[:64])
		b.WriteString("\n")
		text = text[64:]
	}
	b.WriteString(text)
	b.WriteString("\n")
	bst.SetText(b.String())
	return nil
}
