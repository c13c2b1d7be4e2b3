package wssec

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/beevik/etree"
)

// EncryptOptions choose how EncryptBody encrypts. The zero value is the
// default: rsa-oaep-mgf1p key transport (SHA-1 OAEP digest and MGF1, which
// is what that URI means) and AES-128-GCM, the pair older stacks still read
// (WSS4J 1.6 refuses xmlenc11#rsa-oaep), with the recipient named by SKI.
type EncryptOptions struct {
	// KeyTransport is AlgRSAOAEPMGF1P (default), AlgRSAOAEP or, explicitly
	// and for old peers only, AlgRSA15.
	KeyTransport string
	// OAEPDigest is the OAEP DigestMethod (AlgSHA1, AlgSHA256, AlgSHA384,
	// AlgSHA512); default SHA-1 for rsa-oaep-mgf1p, SHA-256 for rsa-oaep.
	OAEPDigest string
	// MGF is the xmlenc11 MGF1 algorithm of AlgRSAOAEP; default AlgMGF1SHA256.
	MGF string
	// DataEncryption is AlgAES128GCM (default), AlgAES192GCM, AlgAES256GCM or,
	// explicitly and for old peers only, an AES-CBC URI.
	DataEncryption string
	// KeyReference names the recipient certificate: KeyRefSKI (default),
	// KeyRefIssuerSerial, KeyRefThumbprint or KeyRefBST (the certificate
	// itself in a BinarySecurityToken).
	KeyReference string
	// Rand feeds session keys, IVs, OAEP and IDs; nil means crypto/rand.
	Rand io.Reader
	// NewID returns a fresh ID suffix; nil means 16 random bytes in hex.
	NewID func() string
	// Now is the clock for the recipient certificate's validity; nil means time.Now.
	Now func() time.Time
}

func (o *EncryptOptions) rand() io.Reader {
	if o.Rand != nil {
		return o.Rand
	}
	return rand.Reader
}

// encPart is one thing to encrypt: an element's content, or the element.
type encPart struct {
	el      *etree.Element
	content bool // Type Content; else Type Element
	header  bool // Type Element of a header block: wrap it in a wsse11:EncryptedHeader
}

// EncryptBody returns env serialized with its Body content encrypted for
// cert (WS-Security 1.1: an xenc:EncryptedKey with a ReferenceList, first in
// the wsse:Security header, which is created if absent; an EncryptedData of
// Type Content in the Body). It works on a copy: env is not modified. An
// envelope already signed keeps its signature, now over the plaintext, and
// the EncryptedKey goes before it, so that a receiver processing the header
// in order decrypts first (sign-then-encrypt; see SignThenEncrypt).
func EncryptBody(env *Envelope, cert *x509.Certificate, opts EncryptOptions) ([]byte, error) {
	if env == nil || env.Doc == nil {
		return nil, ErrNotEnvelope
	}
	doc := env.Doc.Copy()
	if err := encryptDoc(doc, cert, opts, func(header, body *etree.Element) []encPart {
		return []encPart{{el: body, content: true}}
	}); err != nil {
		return nil, err
	}
	return writeDoc(doc)
}

// EncryptBodyBytes parses msg as a SOAP envelope within limits and
// encrypts its Body content for cert; see EncryptBody.
func EncryptBodyBytes(msg []byte, limits Limits, cert *x509.Certificate, opts EncryptOptions) ([]byte, error) {
	env, err := ParseEnvelope(msg, limits)
	if err != nil {
		return nil, err
	}
	defer env.Release()
	return EncryptBody(env, cert, opts)
}

func writeDoc(doc *etree.Document) ([]byte, error) {
	doc.WriteSettings = etree.WriteSettings{CanonicalAttrVal: true, CanonicalText: true}
	return doc.WriteToBytes()
}

// SignThenEncrypt signs env with s, then encrypts the Body content for
// cert. This is the order wsgate's bridge uses, and WSS4J's usual
// "Signature Encrypt" (WS-SecurityPolicy's default SignBeforeEncrypting):
// the backend checks the signature over the plaintext it will act on, and
// finds the EncryptedKey first in the header, before the Signature.
func SignThenEncrypt(env *Envelope, s *Signer, cert *x509.Certificate, opts EncryptOptions) ([]byte, error) {
	signed, err := s.Sign(env)
	if err != nil {
		return nil, err
	}
	senv, err := ParseEnvelope(signed, Limits{MaxBytes: int64(len(signed)) + 1})
	if err != nil {
		return nil, err
	}
	defer senv.Release()
	return EncryptBody(senv, cert, opts)
}

// EncryptThenSign encrypts env's Body content for cert, then signs with s:
// the signature covers the Body holding the EncryptedData, and the
// EncryptedKey follows the Signature in the header, so that a receiver
// verifies the ciphertext before it decrypts.
func EncryptThenSign(env *Envelope, s *Signer, cert *x509.Certificate, opts EncryptOptions) ([]byte, error) {
	if env == nil || env.Doc == nil {
		return nil, ErrNotEnvelope
	}
	doc := env.Doc.Copy()
	var sec *etree.Element
	err := encryptDoc(doc, cert, opts, func(header, body *etree.Element) []encPart {
		return []encPart{{el: body, content: true}}
	})
	if err != nil {
		return nil, err
	}
	// The Signer makes its own Security header: lift ours out, sign, and
	// put the encryption tokens after the Signature.
	root := doc.Root()
	_, header, _, err := sgLocate(root)
	if err != nil {
		return nil, err
	}
	for _, c := range header.ChildElements() {
		if is(c, NSWSSE, "Security") {
			sec = c
		}
	}
	header.RemoveChild(sec)
	plain, err := writeDoc(doc)
	if err != nil {
		return nil, err
	}
	penv, err := ParseEnvelope(plain, Limits{MaxBytes: int64(len(plain)) + 1})
	if err != nil {
		return nil, err
	}
	signed, err := s.Sign(penv)
	penv.Release()
	if err != nil {
		return nil, err
	}
	out := etree.NewDocument()
	if err := out.ReadFromBytes(signed); err != nil {
		return nil, err
	}
	_, header, _, err = sgLocate(out.Root())
	if err != nil || header == nil {
		return nil, fmt.Errorf("%w: signed envelope has no header", ErrNotEnvelope)
	}
	var newSec *etree.Element
	for _, c := range header.ChildElements() {
		if is(c, NSWSSE, "Security") {
			newSec = c
		}
	}
	if newSec == nil {
		return nil, ErrNoSecurityHeader
	}
	for _, c := range sec.ChildElements() {
		moved := c.Copy()
		// Keep the prefixes the old header declared.
		for _, a := range sec.Attr {
			if a.Space == "xmlns" && moved.SelectAttr("xmlns:"+a.Key) == nil {
				moved.CreateAttr("xmlns:"+a.Key, a.Value)
			}
		}
		newSec.AddChild(moved)
	}
	return writeDoc(out)
}

// encryptDoc encrypts, in doc, what parts selects, for cert.
func encryptDoc(doc *etree.Document, cert *x509.Certificate, opts EncryptOptions, parts func(header, body *etree.Element) []encPart) error {
	transport, err := opts.keyTransport()
	if err != nil {
		return err
	}
	dc, ok := dataCiphers[opts.dataEncryption()]
	if !ok {
		return fmt.Errorf("%w: data encryption %q", ErrEncryptionConfig, opts.DataEncryption)
	}
	keyRef := opts.KeyReference
	if keyRef == "" {
		keyRef = KeyRefSKI
	}
	if err := checkRecipient(cert, keyRef, opts.Now); err != nil {
		return err
	}
	root := doc.Root()
	if root == nil || root.Tag != "Envelope" {
		return ErrNotEnvelope
	}
	soapNS, header, body, err := sgLocate(root)
	if err != nil {
		return err
	}
	if header == nil {
		header = etree.NewElement(sgQName(root.Space, "Header"))
		root.InsertChildAt(body.Index(), header)
	}
	var sec *etree.Element
	for _, c := range header.ChildElements() {
		if is(c, NSWSSE, "Security") {
			if sec != nil {
				return ErrMultipleSecurityHeaders
			}
			sec = c
		}
	}
	if sec == nil {
		sec = sgNewSecurity(root, header, soapNS)
	}

	ids := collectIDs(root)
	fresh := func(prefix string) (string, error) {
		var suffix string
		if opts.NewID != nil {
			suffix = opts.NewID()
		} else {
			var b [16]byte
			if _, err := io.ReadFull(opts.rand(), b[:]); err != nil {
				return "", err
			}
			suffix = hex.EncodeToString(b[:])
		}
		id := prefix + suffix
		if ids[id] {
			return "", fmt.Errorf("%w: generated ID %q is already in use", ErrDuplicateID, id)
		}
		ids[id] = true
		return id, nil
	}

	sessionKey := make([]byte, dc.keyLen)
	if _, err := io.ReadFull(opts.rand(), sessionKey); err != nil {
		return err
	}
	block, err := aes.NewCipher(sessionKey)
	if err != nil {
		return err
	}

	var dataIDs []string
	for _, part := range parts(header, body) {
		id, err := fresh("ED-")
		if err != nil {
			return err
		}
		if err := encryptPart(part, id, dc, block, opts.rand(), fresh); err != nil {
			return err
		}
		dataIDs = append(dataIDs, id)
	}

	wrapped, err := transport.wrap(opts.rand(), cert.PublicKey.(*rsa.PublicKey), sessionKey)
	if err != nil {
		return err
	}
	ekID, err := fresh("EK-")
	if err != nil {
		return err
	}
	ek := etree.NewElement("xenc:EncryptedKey")
	ek.CreateAttr("xmlns:xenc", NSXMLEnc)
	ek.CreateAttr("Id", ekID)
	em := ek.CreateElement("xenc:EncryptionMethod")
	em.CreateAttr("Algorithm", transport.uri)
	if !transport.rsa15 {
		dm := em.CreateElement("ds:DigestMethod")
		dm.CreateAttr("xmlns:ds", NSDSig)
		dm.CreateAttr("Algorithm", digestURI(transport.hash))
		if transport.uri == AlgRSAOAEP {
			mgf := em.CreateElement("xenc11:MGF")
			mgf.CreateAttr("xmlns:xenc11", NSXMLEnc11)
			mgf.CreateAttr("Algorithm", mgfURI(transport.mgfHash))
		}
	}
	ki := ek.CreateElement("ds:KeyInfo")
	ki.CreateAttr("xmlns:ds", NSDSig)
	insertAt := 0
	if keyRef == KeyRefBST {
		bstID, err := fresh("X509-")
		if err != nil {
			return err
		}
		bst := etree.NewElement("wsse:BinarySecurityToken")
		bst.CreateAttr("xmlns:wsse", NSWSSE)
		bst.CreateAttr("xmlns:wsu", NSWSU)
		bst.CreateAttr("EncodingType", sgBase64Binary)
		bst.CreateAttr("ValueType", sgX509v3)
		bst.CreateAttr("wsu:Id", bstID)
		bst.SetText(base64.StdEncoding.EncodeToString(cert.Raw))
		sec.InsertChildAt(0, bst)
		insertAt = 1
		writeTokenReference(ki, keyRef, cert, bstID)
	} else {
		writeTokenReference(ki, keyRef, cert, "")
	}
	ek.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(base64.StdEncoding.EncodeToString(wrapped))
	rl := ek.CreateElement("xenc:ReferenceList")
	for _, id := range dataIDs {
		rl.CreateElement("xenc:DataReference").CreateAttr("URI", "#"+id)
	}
	sec.InsertChildAt(insertAt, ek)
	return nil
}

// encryptPart replaces part by an EncryptedData with the given Id.
func encryptPart(part encPart, id string, dc dataCipher, block cipher.Block, random io.Reader, fresh func(string) (string, error)) error {
	var plain bytes.Buffer
	settings := etree.WriteSettings{CanonicalAttrVal: true, CanonicalText: true}
	if part.content {
		for _, t := range part.el.Child {
			t.WriteTo(&plain, &settings)
		}
	} else {
		part.el.WriteTo(&plain, &settings)
	}
	value, err := sealData(dc, block, random, plain.Bytes())
	if err != nil {
		return err
	}
	ed := etree.NewElement("xenc:EncryptedData")
	ed.CreateAttr("xmlns:xenc", NSXMLEnc)
	ed.CreateAttr("Id", id)
	if part.content {
		ed.CreateAttr("Type", TypeContent)
	} else {
		ed.CreateAttr("Type", TypeElement)
	}
	ed.CreateElement("xenc:EncryptionMethod").CreateAttr("Algorithm", dc.uri)
	ed.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(base64.StdEncoding.EncodeToString(value))

	if part.content {
		for i := len(part.el.Child) - 1; i >= 0; i-- {
			part.el.RemoveChildAt(i)
		}
		part.el.AddChild(ed)
		return nil
	}
	parent := part.el.Parent()
	var replacement etree.Token = ed
	if part.header {
		ehID, err := fresh("EH-")
		if err != nil {
			return err
		}
		eh := etree.NewElement("wsse11:EncryptedHeader")
		eh.CreateAttr("xmlns:wsse11", NSWSSE11)
		eh.CreateAttr("xmlns:wsu", NSWSU)
		eh.CreateAttr("wsu:Id", ehID)
		// mustUnderstand, actor and role travel on the wrapper (WSS 1.1 9.3).
		for _, a := range part.el.Attr {
			if a.Key == "mustUnderstand" || a.Key == "actor" || a.Key == "role" || a.Key == "relay" {
				if a.Space != "" {
					eh.CreateAttr("xmlns:"+a.Space, a.NamespaceURI())
					eh.CreateAttr(a.Space+":"+a.Key, a.Value)
				}
			}
		}
		eh.AddChild(ed)
		replacement = eh
	}
	idx := part.el.Index()
	parent.RemoveChildAt(idx)
	parent.InsertChildAt(idx, replacement)
	return nil
}

// sealData encrypts plain: GCM as IV || ciphertext || tag, CBC as IV ||
// ciphertext with XML Encryption padding.
func sealData(dc dataCipher, block cipher.Block, random io.Reader, plain []byte) ([]byte, error) {
	if dc.gcm {
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := io.ReadFull(random, out); err != nil {
			return nil, err
		}
		return aead.Seal(out, out, plain, nil), nil
	}
	bs := block.BlockSize()
	pad := bs - len(plain)%bs
	padded := make([]byte, len(plain)+pad)
	copy(padded, plain)
	if _, err := io.ReadFull(random, padded[len(plain):]); err != nil {
		return nil, err
	}
	padded[len(padded)-1] = byte(pad)
	out := make([]byte, bs+len(padded))
	if _, err := io.ReadFull(random, out[:bs]); err != nil {
		return nil, err
	}
	cipher.NewCBCEncrypter(block, out[:bs]).CryptBlocks(out[bs:], padded)
	return out, nil
}

func (o *EncryptOptions) dataEncryption() string {
	if o.DataEncryption == "" {
		return AlgAES128GCM
	}
	return o.DataEncryption
}

// keyTransport resolves the key transport options.
func (o *EncryptOptions) keyTransport() (keyTransport, error) {
	t := keyTransport{uri: o.KeyTransport}
	if t.uri == "" {
		t.uri = AlgRSAOAEPMGF1P
	}
	switch t.uri {
	case AlgRSA15:
		t.rsa15 = true
		return t, nil
	case AlgRSAOAEPMGF1P:
		t.hash, t.mgfHash = crypto.SHA1, crypto.SHA1
	case AlgRSAOAEP:
		t.hash, t.mgfHash = crypto.SHA256, crypto.SHA256
		if o.MGF != "" {
			h, ok := mgfDigests[o.MGF]
			if !ok {
				return t, fmt.Errorf("%w: MGF %q", ErrEncryptionConfig, o.MGF)
			}
			t.mgfHash = h
		}
	default:
		return t, fmt.Errorf("%w: key transport %q", ErrEncryptionConfig, t.uri)
	}
	if o.OAEPDigest != "" {
		h, ok := oaepDigests[o.OAEPDigest]
		if !ok {
			return t, fmt.Errorf("%w: OAEP digest %q", ErrEncryptionConfig, o.OAEPDigest)
		}
		t.hash = h
	}
	return t, nil
}

// wrap encrypts the session key for pub.
func (t keyTransport) wrap(random io.Reader, pub *rsa.PublicKey, key []byte) ([]byte, error) {
	if t.rsa15 {
		return rsa.EncryptPKCS1v15(random, pub, key)
	}
	return rsa.EncryptOAEPWithOptions(random, pub, key, &rsa.OAEPOptions{Hash: t.hash, MGFHash: t.mgfHash, Label: t.label})
}

func digestURI(h crypto.Hash) string {
	for uri, hh := range oaepDigests {
		if hh == h {
			return uri
		}
	}
	return ""
}

func mgfURI(h crypto.Hash) string {
	for uri, hh := range mgfDigests {
		if hh == h {
			return uri
		}
	}
	return ""
}

// checkRecipient refuses a certificate wssec would not accept as a
// partner's: not RSA, under 2048 bits, not valid now, or whose key usage
// excludes key encipherment.
func checkRecipient(cert *x509.Certificate, keyRef string, now func() time.Time) error {
	if cert == nil {
		return fmt.Errorf("%w: no recipient certificate", ErrEncryptionConfig)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: recipient key is %T, not RSA", ErrEncryptionConfig, cert.PublicKey)
	}
	if pub.N.BitLen() < minRSABits {
		return fmt.Errorf("%w: recipient key is RSA-%d", ErrWeakKey, pub.N.BitLen())
	}
	t := time.Now()
	if now != nil {
		t = now()
	}
	if t.Before(cert.NotBefore) || t.After(cert.NotAfter) {
		return fmt.Errorf("%w: recipient certificate valid %s to %s", ErrCertificateExpired,
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		return fmt.Errorf("%w: recipient certificate may not encipher keys", ErrCertificateKeyUsage)
	}
	switch keyRef {
	case KeyRefSKI:
		if len(cert.SubjectKeyId) == 0 {
			return fmt.Errorf("%w: recipient certificate has no subject key identifier", ErrEncryptionConfig)
		}
	case KeyRefIssuerSerial, KeyRefThumbprint, KeyRefBST:
	default:
		return fmt.Errorf("%w: key reference %q", ErrEncryptionConfig, keyRef)
	}
	return nil
}

// writeTokenReference names cert in an EncryptedKey's KeyInfo.
func writeTokenReference(ki *etree.Element, keyRef string, cert *x509.Certificate, bstID string) {
	str := ki.CreateElement("wsse:SecurityTokenReference")
	str.CreateAttr("xmlns:wsse", NSWSSE)
	switch keyRef {
	case KeyRefBST:
		r := str.CreateElement("wsse:Reference")
		r.CreateAttr("URI", "#"+bstID)
		r.CreateAttr("ValueType", sgX509v3)
	case KeyRefSKI:
		k := str.CreateElement("wsse:KeyIdentifier")
		k.CreateAttr("EncodingType", sgBase64Binary)
		k.CreateAttr("ValueType", sgX509SKI)
		k.SetText(base64.StdEncoding.EncodeToString(cert.SubjectKeyId))
	case KeyRefThumbprint:
		sum := sha1.Sum(cert.Raw) // the token profile's thumbprint: an identifier
		k := str.CreateElement("wsse:KeyIdentifier")
		k.CreateAttr("EncodingType", sgBase64Binary)
		k.CreateAttr("ValueType", sgThumbSHA1)
		k.SetText(base64.StdEncoding.EncodeToString(sum[:]))
	case KeyRefIssuerSerial:
		is := str.CreateElement("ds:X509Data")
		is.CreateAttr("xmlns:ds", NSDSig)
		in := is.CreateElement("ds:X509IssuerSerial")
		in.CreateElement("ds:X509IssuerName").SetText(cert.Issuer.String())
		in.CreateElement("ds:X509SerialNumber").SetText(cert.SerialNumber.String())
	}
}

// collectIDs gathers every ID-like attribute value, so generated IDs never collide.
func collectIDs(root *etree.Element) map[string]bool {
	ids := map[string]bool{}
	var walk func(*etree.Element)
	walk = func(el *etree.Element) {
		for _, a := range el.Attr {
			switch a.Key {
			case "Id", "ID", "id", "AssertionID":
				ids[a.Value] = true
			}
		}
		for _, t := range el.Child {
			if c, ok := t.(*etree.Element); ok {
				walk(c)
			}
		}
	}
	walk(root)
	return ids
}
