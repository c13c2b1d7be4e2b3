package wssec

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/beevik/etree"
)

// DecryptionIdentity is the gateway's encryption key pair for a route: the
// certificate partners encrypt for, and the key that unwraps their session
// keys. A crypto.Decrypter lets the private key stay elsewhere (a Vault
// Transit key unwraps the session key without the key leaving Vault). The
// Decrypter must accept *rsa.OAEPOptions (MGFHash and Label included) and,
// where AllowRSA15 is set, *rsa.PKCS1v15DecryptOptions. It wraps a failure
// to reach its key with ErrDecryptionUnavailable, and OAEP parameters it
// cannot use with ErrUnsupportedAlgorithm; any other error is a failed
// decryption.
type DecryptionIdentity interface {
	Certificate() *x509.Certificate
	Decrypter() crypto.Decrypter
}

// StaticIdentity is a DecryptionIdentity that does not change: a
// certificate and its key (an *rsa.PrivateKey from a KV secret, or a
// Decrypter that calls Vault Transit).
type StaticIdentity struct {
	Cert *x509.Certificate
	Key  crypto.Decrypter
}

func (s StaticIdentity) Certificate() *x509.Certificate { return s.Cert }
func (s StaticIdentity) Decrypter() crypto.Decrypter    { return s.Key }

// DecryptPolicy is a route's inbound XML Encryption policy.
type DecryptPolicy struct {
	// Identity is required: the gateway's certificate and decryption key.
	Identity DecryptionIdentity
	// RequireEncrypted lists what must arrive encrypted; only PartBody (the
	// whole Body content) is defined.
	RequireEncrypted []Part
	// AllowRSA15 accepts RSA PKCS#1 v1.5 key transport (Bleichenbacher).
	AllowRSA15 bool
	// AllowCBC accepts AES-CBC data encryption (the Jager–Somorovsky padding
	// oracle); every CBC failure is then the one ErrDecryptionFailed.
	AllowCBC bool
	// Rand feeds the random session keys that stand in for badly padded
	// RSA v1.5 ones; nil means crypto/rand.
	Rand io.Reader
}

// Decryption records, by node identity, what decryption put into the tree:
// which elements' content came from a Type Content EncryptedData and which
// elements replaced a Type Element one.
type Decryption struct {
	content map[*etree.Element]bool
	element map[*etree.Element]bool
	// Keys is the number of EncryptedKeys processed.
	Keys int
}

// ContentDecrypted reports whether el's whole content came from decryption.
func (d *Decryption) ContentDecrypted(el *etree.Element) bool {
	return d != nil && d.content[el]
}

// ElementDecrypted reports whether el itself came from decryption.
func (d *Decryption) ElementDecrypted(el *etree.Element) bool {
	return d != nil && d.element[el]
}

// BodyEncrypted reports whether all of env's Body content arrived encrypted:
// the Body's content was one Type Content EncryptedData, or every element in
// it replaced a Type Element one and there is no other text.
func (d *Decryption) BodyEncrypted(env *Envelope) bool {
	if d == nil || env == nil || env.Body == nil {
		return false
	}
	if d.content[env.Body] {
		return true
	}
	n := 0
	for _, t := range env.Body.Child {
		switch t := t.(type) {
		case *etree.Element:
			if !d.element[t] {
				return false
			}
			n++
		case *etree.CharData:
			if !t.IsWhitespace() {
				return false
			}
		default:
			return false
		}
	}
	return n > 0
}

func (p *DecryptPolicy) requires(part Part) bool {
	for _, r := range p.RequireEncrypted {
		if r == part {
			return true
		}
	}
	return false
}

// Decrypt decrypts, in place, every EncryptedData that the EncryptedKeys
// of env's wsse:Security header unlock, in the header's document order, and
// enforces RequireEncrypted. It is for messages that carry no signature, or
// whose signature is checked afterwards over the plaintext; a verifier
// that must check a signature over ciphertext first drives a decryptor
// itself (see decryptKey). On error the tree may be partly decrypted and
// must be released, not forwarded. Decrypt alone checks neither signatures
// nor look-alikes in the plaintext: what is forwarded comes from a Verifier
// with Policy.Decrypt set, which does both in the header's order.
func (p *DecryptPolicy) Decrypt(env *Envelope, limits Limits) (*Decryption, error) {
	if env == nil || env.Envelope == nil || env.Body == nil {
		return nil, ErrNotEnvelope
	}
	d, err := p.newDecryptor(env, limits)
	if err != nil {
		return nil, err
	}
	if security := findSecurity(env); security != nil {
		if err := d.prescan(security); err != nil {
			return nil, err
		}
		for _, child := range childElements(security) {
			if is(child, nsXMLEnc, "EncryptedKey") {
				if err := d.decryptKey(child); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return d.done, nil
}

// findSecurity returns the first wsse:Security header block, or nil. (The
// verifier refuses a second one before it gets here.)
func findSecurity(env *Envelope) *etree.Element {
	if env.Header == nil {
		return nil
	}
	for _, c := range childElements(env.Header) {
		if is(c, NSWSSE, "Security") {
			return c
		}
	}
	return nil
}

// decryptor decrypts one message.
type decryptor struct {
	env      *Envelope
	policy   *DecryptPolicy
	limits   Limits
	cert     *x509.Certificate
	key      crypto.Decrypter
	done     *Decryption
	claimed  map[*etree.Element]bool // EncryptedData already unlocked
	elements int                     // elements in the tree now
	plain    int64                   // plaintext bytes inserted so far
	// replaced maps each header block or Body child that a Type Element
	// decryption replaced (an EncryptedData, an EncryptedHeader) to the
	// element now in its place.
	replaced map[*etree.Element]*etree.Element
}

func (p *DecryptPolicy) newDecryptor(env *Envelope, limits Limits) (*decryptor, error) {
	if p == nil || p.Identity == nil {
		return nil, fmt.Errorf("%w: no decryption identity", ErrDecryptionConfig)
	}
	for _, part := range p.RequireEncrypted {
		if part != PartBody {
			return nil, fmt.Errorf("%w: cannot require %q encrypted", ErrDecryptionConfig, part)
		}
	}
	cert, key := p.Identity.Certificate(), p.Identity.Decrypter()
	if cert == nil || key == nil {
		return nil, fmt.Errorf("%w: identity without certificate or key", ErrDecryptionConfig)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: decryption needs an RSA key, have %T", ErrDecryptionConfig, cert.PublicKey)
	}
	if pub.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("%w: decryption key is RSA-%d", ErrWeakKey, pub.N.BitLen())
	}
	if !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: decryption key does not match the certificate", ErrDecryptionConfig)
	}
	return &decryptor{
		env:      env,
		policy:   p,
		limits:   limits.withDefaults(),
		cert:     cert,
		key:      key,
		done:     &Decryption{content: map[*etree.Element]bool{}, element: map[*etree.Element]bool{}},
		claimed:  map[*etree.Element]bool{},
		replaced: map[*etree.Element]*etree.Element{},
		elements: countElements(env.Envelope),
	}, nil
}

func (d *decryptor) rand() io.Reader {
	if d.policy.Rand != nil {
		return d.policy.Rand
	}
	return rand.Reader
}

// finish enforces what must hold once every EncryptedKey was processed: no
// EncryptedData is left that nothing unlocked (it would be forwarded
// unread), and what must arrive encrypted did.
func (d *decryptor) finish() error {
	if el := findEncrypted(d.env.Envelope); el != nil {
		return fmt.Errorf("%w: %s", ErrUndecryptedData, el.Tag)
	}
	if d.policy.requires(PartBody) && !d.done.BodyEncrypted(d.env) {
		return ErrBodyNotEncrypted
	}
	return nil
}

// findEncrypted returns the first EncryptedData or EncryptedHeader under el.
func findEncrypted(el *etree.Element) *etree.Element {
	for _, t := range el.Child {
		c, ok := t.(*etree.Element)
		if !ok {
			continue
		}
		if is(c, nsXMLEnc, "EncryptedData") || isEncryptedHeader(c) {
			return c
		}
		if found := findEncrypted(c); found != nil {
			return found
		}
	}
	return nil
}

// prescan refuses, before anything is decrypted, an EncryptedData that two
// DataReferences name, in one ReferenceList or in two EncryptedKeys: two
// keys for one EncryptedData would let the second decide what the first
// one's signature check sees. (Once decrypted, an EncryptedData no longer
// exists, so this cannot be left to the second key's turn.) It also bounds
// the number of EncryptedKeys.
func (d *decryptor) prescan(security *etree.Element) error {
	seen := map[string]bool{}
	keys := 0
	for _, ek := range childElements(security) {
		if !is(ek, nsXMLEnc, "EncryptedKey") {
			continue
		}
		if keys++; keys > maxEncryptedKeys {
			return fmt.Errorf("%w: more than %d EncryptedKeys", ErrMalformedEncryption, maxEncryptedKeys)
		}
		for _, rl := range childElements(ek) {
			if !is(rl, nsXMLEnc, "ReferenceList") {
				continue
			}
			for _, dr := range childElements(rl) {
				uri := dr.SelectAttrValue("URI", "")
				if seen[uri] {
					return fmt.Errorf("%w: %.64s", ErrEncryptedDataReused, uri)
				}
				seen[uri] = true
			}
		}
	}
	return nil
}

// maxEncryptedKeys bounds the EncryptedKeys of one message: each costs an
// RSA private-key operation before any signature is checked. Real stacks
// send one.
const maxEncryptedKeys = 8

// decryptKey processes one EncryptedKey: it checks its shape and algorithms,
// that it is meant for this gateway's key, and where each EncryptedData it
// names lies, then unwraps the session key and decrypts them in place.
func (d *decryptor) decryptKey(el *etree.Element) error {
	ek, err := parseEncryptedKey(el, d.policy.AllowRSA15)
	if err != nil {
		return err
	}
	ids := buildIDIndex(d.env.Envelope)
	if err := d.matchRecipient(ek.keyRef, ids); err != nil {
		return err
	}
	// Resolve and check every target before any cryptography.
	maxCipher := int(min(d.limits.MaxBytes, int64(^uint(0)>>1)))
	targets := make([]*encryptedData, 0, len(ek.dataRefs))
	seen := map[*etree.Element]bool{}
	for _, id := range ek.dataRefs {
		target, err := ids.lookup(id)
		if err != nil {
			return err
		}
		if isEncryptedHeader(target) {
			if target, err = encryptedHeaderData(target); err != nil {
				return err
			}
		}
		if !is(target, nsXMLEnc, "EncryptedData") {
			return fmt.Errorf("%w: DataReference #%.64s names %s", ErrEncryptedDataLocation, id, target.Tag)
		}
		if seen[target] || d.claimed[target] {
			return fmt.Errorf("%w: #%.64s", ErrEncryptedDataReused, id)
		}
		seen[target] = true
		ed, err := parseEncryptedData(target, d.policy.AllowCBC, maxCipher)
		if err != nil {
			return err
		}
		if ed.keyRef != "" && ed.keyRef != ek.id {
			return fmt.Errorf("%w: #%.64s names another EncryptedKey", ErrEncryptedDataReused, id)
		}
		if err := d.checkPlace(ed); err != nil {
			return err
		}
		targets = append(targets, ed)
	}
	keyLen := targets[0].cipher.keyLen
	for _, ed := range targets[1:] {
		if ed.cipher.keyLen != keyLen {
			return fmt.Errorf("%w: one EncryptedKey for ciphers of different key sizes", ErrMalformedEncryption)
		}
	}
	key, err := d.unwrap(ek, keyLen)
	if err != nil {
		return err
	}
	for _, ed := range targets {
		d.claimed[ed.el] = true
		if err := d.decryptData(ed, key); err != nil {
			return err
		}
	}
	d.done.Keys++
	return nil
}

// encryptedHeaderData returns the one EncryptedData of a wsse11:EncryptedHeader.
func encryptedHeaderData(el *etree.Element) (*etree.Element, error) {
	children, err := xencChildren(el)
	if err != nil {
		return nil, err
	}
	if len(children) != 1 || !is(children[0], nsXMLEnc, "EncryptedData") {
		return nil, fmt.Errorf("%w: EncryptedHeader must hold one EncryptedData", ErrMalformedEncryption)
	}
	return children[0], nil
}

// checkPlace allows an EncryptedData only where WS-Security puts one, so
// that a referenced EncryptedData moved into a wrapper, into the Security
// header or deep into the payload is refused:
//   - Type Content: the only element in the Body, or in a header block
//     other than Security (its whole content is then the plaintext);
//   - Type Element: a child of the Body, a header block itself (WSS 1.0), or
//     the one child of a wsse11:EncryptedHeader header block.
func (d *decryptor) checkPlace(ed *encryptedData) error {
	env := d.env
	parent := ed.el.Parent()
	security := findSecurity(env)
	if parent == nil {
		return fmt.Errorf("%w: detached EncryptedData", ErrEncryptedDataLocation)
	}
	switch ed.typ {
	case TypeContent:
		headerBlock := env.Header != nil && parent.Parent() == env.Header && parent != security && !isEncryptedHeader(parent)
		if parent != env.Body && !headerBlock {
			return fmt.Errorf("%w: Content EncryptedData in %s", ErrEncryptedDataLocation, parent.Tag)
		}
		for _, t := range parent.Child {
			switch t := t.(type) {
			case *etree.Element:
				if t != ed.el {
					return fmt.Errorf("%w: Content EncryptedData beside other elements", ErrEncryptedDataLocation)
				}
			case *etree.CharData:
				if !t.IsWhitespace() {
					return fmt.Errorf("%w: Content EncryptedData beside text", ErrEncryptedDataLocation)
				}
			}
		}
		return nil
	case TypeElement:
		switch {
		case parent == env.Body:
			return nil
		case env.Header != nil && parent == env.Header:
			return nil
		case env.Header != nil && isEncryptedHeader(parent) && parent.Parent() == env.Header:
			return nil
		}
		return fmt.Errorf("%w: Element EncryptedData in %s", ErrEncryptedDataLocation, parent.Tag)
	}
	return fmt.Errorf("%w: EncryptedData Type", ErrMalformedEncryption)
}

// matchRecipient checks that an EncryptedKey's KeyInfo names this gateway's
// certificate: by SKI, SHA-1 thumbprint, issuer and serial, or a
// BinarySecurityToken (or embedded certificate) that is this certificate.
// The message cannot choose the key: a reference to anything else is
// ErrTokenUnavailable.
func (d *decryptor) matchRecipient(ref *etree.Element, ids *idIndex) error {
	switch {
	case is(ref, NSWSSE, "SecurityTokenReference"):
		children, err := xencChildren(ref)
		if err != nil {
			return err
		}
		if len(children) != 1 {
			return fmt.Errorf("%w: SecurityTokenReference must hold exactly one reference", ErrInvalidToken)
		}
		return d.matchTokenReference(children[0], ids)
	case is(ref, NSDSig, "X509Data"):
		// Not BSP, but what libxmlsec-based senders write.
		return d.matchX509Data(ref)
	}
	return fmt.Errorf("%w: unsupported key reference %s in EncryptedKey", ErrInvalidToken, ref.Tag)
}

var errNotForUs = fmt.Errorf("%w: the EncryptedKey is not for this gateway's certificate", ErrTokenUnavailable)

func (d *decryptor) matchTokenReference(ref *etree.Element, ids *idIndex) error {
	cert := d.cert
	switch {
	case is(ref, NSWSSE, "KeyIdentifier"):
		if enc := ref.SelectAttrValue("EncodingType", encodingBase64); enc != encodingBase64 {
			return fmt.Errorf("%w: KeyIdentifier EncodingType %.100q", ErrInvalidToken, enc)
		}
		value, err := decodeBase64(ref.Text())
		if err != nil {
			return fmt.Errorf("%w: KeyIdentifier is not base64", ErrInvalidToken)
		}
		var want []byte
		switch vt := ref.SelectAttrValue("ValueType", ""); vt {
		case valueTypeSKI:
			want = subjectKeyID(cert)
		case valueTypeThumbprint:
			sum := sha1.Sum(cert.Raw) // an identifier, not a signature
			want = sum[:]
		case valueTypeX509v3: // WSS4J's X509KeyIdentifier: the certificate itself
			want = cert.Raw
		default:
			return fmt.Errorf("%w: KeyIdentifier ValueType %.100q", ErrInvalidToken, vt)
		}
		if len(want) == 0 || !bytes.Equal(value, want) {
			return errNotForUs
		}
		return nil
	case is(ref, NSWSSE, "Reference"):
		uri := ref.SelectAttrValue("URI", "")
		if len(uri) < 2 || uri[0] != '#' {
			return fmt.Errorf("%w: token reference %.64q is not in this message", ErrTokenUnavailable, uri)
		}
		token, err := ids.lookup(uri[1:])
		switch {
		case errors.Is(err, ErrReferenceNotFound):
			return fmt.Errorf("%w: %w", ErrTokenUnavailable, err)
		case err != nil:
			return err
		}
		if !is(token, NSWSSE, "BinarySecurityToken") {
			return fmt.Errorf("%w: token reference points at %s", ErrInvalidToken, token.Tag)
		}
		if enc := token.SelectAttrValue("EncodingType", encodingBase64); enc != encodingBase64 {
			return fmt.Errorf("%w: BinarySecurityToken EncodingType %.100q", ErrInvalidToken, enc)
		}
		der, err := decodeBase64(token.Text())
		if err != nil {
			return fmt.Errorf("%w: BinarySecurityToken is not base64", ErrInvalidToken)
		}
		switch vt := token.SelectAttrValue("ValueType", ""); vt {
		case valueTypeX509v3:
		case valueTypePKIPath:
			t, err := parsePKIPath(der)
			if err != nil {
				return err
			}
			der = t.cert.Raw
		default:
			return fmt.Errorf("%w: BinarySecurityToken ValueType %.100q", ErrInvalidToken, vt)
		}
		if !bytes.Equal(der, cert.Raw) {
			return errNotForUs
		}
		return nil
	case is(ref, NSDSig, "X509Data"):
		return d.matchX509Data(ref)
	}
	return fmt.Errorf("%w: unsupported token reference %s", ErrInvalidToken, ref.Tag)
}

// matchX509Data matches ds:X509Data holding one X509IssuerSerial, X509SKI
// or X509Certificate (zeep's empty IssuerSerial beside a certificate counts
// as absent).
func (d *decryptor) matchX509Data(el *etree.Element) error {
	cert := d.cert
	children, err := xencChildren(el)
	if err != nil {
		return err
	}
	matched := false
	for _, c := range children {
		switch {
		case is(c, NSDSig, "X509IssuerSerial"):
			if !hasChildElement(c) {
				continue
			}
			ok, err := issuerSerialMatches(c, cert)
			if err != nil {
				return err
			}
			if !ok {
				return errNotForUs
			}
			matched = true
		case is(c, NSDSig, "X509SKI"):
			v, err := decodeBase64(c.Text())
			if err != nil {
				return fmt.Errorf("%w: X509SKI is not base64", ErrInvalidToken)
			}
			if !bytes.Equal(v, subjectKeyID(cert)) {
				return errNotForUs
			}
			matched = true
		case is(c, NSDSig, "X509Certificate"):
			v, err := decodeBase64(c.Text())
			if err != nil {
				return fmt.Errorf("%w: X509Certificate is not base64", ErrInvalidToken)
			}
			if !bytes.Equal(v, cert.Raw) {
				return errNotForUs
			}
			matched = true
		default:
			return fmt.Errorf("%w: unsupported %s in X509Data", ErrInvalidToken, c.Tag)
		}
	}
	if !matched {
		return fmt.Errorf("%w: X509Data names no certificate", ErrInvalidToken)
	}
	return nil
}

func issuerSerialMatches(el *etree.Element, cert *x509.Certificate) (bool, error) {
	ref, err := parseIssuerSerial(el)
	if err != nil {
		return false, err
	}
	return ref.matches(cert), nil
}

// unwrap recovers the session key. With RSA-OAEP any failure is
// ErrDecryptionFailed. With RSA v1.5 there is no failure at all
// (Bleichenbacher): a badly padded or wrongly sized key is silently replaced
// by a random one, in constant time where the Decrypter is an
// *rsa.PrivateKey, so that the only error is the later data decryption's,
// identical to that of a well-padded wrong key.
func (d *decryptor) unwrap(ek *encryptedKey, keyLen int) ([]byte, error) {
	if ek.method.rsa15 {
		key := make([]byte, keyLen)
		if _, err := io.ReadFull(d.rand(), key); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDecryptionConfig, err)
		}
		out, err := d.key.Decrypt(d.rand(), ek.cipher, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen})
		if err == nil && len(out) == keyLen {
			subtle.ConstantTimeCopy(1, key, out)
		}
		return key, nil
	}
	out, err := d.key.Decrypt(d.rand(), ek.cipher, &rsa.OAEPOptions{
		Hash: ek.method.hash, MGFHash: ek.method.mgfHash, Label: ek.method.label,
	})
	if errors.Is(err, ErrDecryptionUnavailable) || errors.Is(err, ErrUnsupportedAlgorithm) {
		// Whether the key service answers, or can do these OAEP parameters
		// (Vault Transit: SHA-256 only), does not depend on the ciphertext:
		// no oracle in telling these apart.
		return nil, err
	}
	if err != nil || len(out) != keyLen {
		return nil, ErrDecryptionFailed
	}
	return out, nil
}

// decryptData decrypts one EncryptedData and puts the plaintext in its
// place. With CBC every failure — length, padding, and anything wrong with
// the plaintext — is the same ErrDecryptionFailed, reached after the same
// work: the plaintext is parsed whether or not the padding was right.
func (d *decryptor) decryptData(ed *encryptedData, key []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return ErrDecryptionFailed
	}
	if ed.cipher.gcm {
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return ErrDecryptionFailed
		}
		n := aead.NonceSize()
		if len(ed.value) < n+aead.Overhead() {
			return ErrDecryptionFailed
		}
		// In place: ed.value is this decryption's own copy.
		plain, err := aead.Open(ed.value[n:n], ed.value[:n], ed.value[n:], nil)
		if err != nil {
			return ErrDecryptionFailed
		}
		// Authenticated: errors from here on say what was wrong with it.
		return d.insert(ed, plain)
	}
	bs := block.BlockSize()
	if len(ed.value) < 2*bs || len(ed.value)%bs != 0 {
		return ErrDecryptionFailed // public: the length alone
	}
	plain := make([]byte, len(ed.value)-bs)
	cipher.NewCBCDecrypter(block, ed.value[:bs]).CryptBlocks(plain, ed.value[bs:])
	// XML Encryption padding: the last byte is the padding length 1..bs; the
	// other padding bytes are arbitrary.
	pad := int(plain[len(plain)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, bs)
	n := subtle.ConstantTimeSelect(good, len(plain)-pad, len(plain))
	if err := d.insert(ed, plain[:n]); err != nil || good != 1 {
		return ErrDecryptionFailed
	}
	return nil
}

// insert parses plain as the content (Type Content) or the element (Type
// Element) that ed stood for, with the parser and the limits of the
// message, counting depth from where it goes and elements and bytes
// together with the rest of the message, and puts it in ed's place.
// Prefixes resolve against the insertion point's declarations, as the
// sender's did, and one declared nowhere is refused (ErrNamespace). Nothing
// is changed unless it succeeds.
func (d *decryptor) insert(ed *encryptedData, plain []byte) error {
	replaced := ed.el // Content, or Element in the Body or Header
	if parent := ed.el.Parent(); isEncryptedHeader(parent) {
		replaced = parent // the whole EncryptedHeader block
	}
	parent := replaced.Parent()
	if d.plain+int64(len(plain)) > d.limits.MaxBytes {
		return fmt.Errorf("%w: decrypted content exceeds the size limit", ErrTooLarge)
	}
	// The wrapper the plaintext is parsed in stands for the parent: it has
	// the parent's depth and, in the element count, the parent's place.
	depth := 0
	for e := parent; e != nil && e.Tag != ""; e = e.Parent() {
		depth++
	}
	removed := countElements(replaced)
	limits := Limits{
		MaxBytes:      d.limits.MaxBytes,
		MaxDepth:      d.limits.MaxDepth - depth + 1,
		MaxElements:   d.limits.MaxElements - (d.elements - removed) + 1,
		MaxAttributes: d.limits.MaxAttributes,
	}
	if limits.MaxDepth < 1 {
		return fmt.Errorf("%w: limit %d", ErrTooDeep, d.limits.MaxDepth)
	}
	if limits.MaxElements < 1 {
		return fmt.Errorf("%w: more than %d elements", ErrTooManyElements, d.limits.MaxElements)
	}
	nodes := d.env.nodes
	if nodes == nil {
		nodes = new(arena)
	}
	var sb strings.Builder
	sb.Grow(len(plain) + len("<w></w>"))
	sb.WriteString("<w>")
	sb.Write(plain)
	sb.WriteString("</w>")
	doc, err := parseXMLFragment(sb.String(), limits, nodes, parent)
	if err != nil {
		return fmt.Errorf("decrypted content: %w", err)
	}
	wrapper := doc.Root()
	added := countElements(wrapper) - 1
	if ed.typ == TypeElement {
		n := 0
		for _, t := range wrapper.Child {
			switch t := t.(type) {
			case *etree.Element:
				n++
			case *etree.CharData:
				if t.IsWhitespace() {
					continue
				}
				return fmt.Errorf("%w: text around a decrypted element", ErrMalformedEncryption)
			default:
				return fmt.Errorf("%w: decrypted Element holds more than an element", ErrMalformedEncryption)
			}
		}
		if n != 1 {
			return fmt.Errorf("%w: decrypted Element holds %d elements", ErrMalformedEncryption, n)
		}
	}
	// Detach the plaintext from the wrapper, last first (each O(1)).
	toks := make([]etree.Token, len(wrapper.Child))
	copy(toks, wrapper.Child)
	for i := len(toks) - 1; i >= 0; i-- {
		wrapper.RemoveChildAt(i)
	}
	var newEl *etree.Element
	if ed.typ == TypeElement {
		for _, t := range toks {
			if el, ok := t.(*etree.Element); ok {
				newEl = el
			}
		}
		toks = []etree.Token{newEl} // white space around it is dropped
	}
	spliceChild(parent, replaced, toks)
	d.elements += added - removed
	d.plain += int64(len(plain))
	d.env.size += len(plain)
	if ed.typ == TypeContent {
		d.done.content[parent] = true
	} else {
		d.done.element[newEl] = true
		d.replaced[replaced] = newEl
	}
	return nil
}

// spliceChild replaces old, a child of parent, by toks, in time linear in
// the number of children (etree's InsertChildAt reindexes on every call).
func spliceChild(parent *etree.Element, old etree.Token, toks []etree.Token) {
	idx := old.Index()
	tail := make([]etree.Token, len(parent.Child)-idx-1)
	copy(tail, parent.Child[idx+1:])
	for i := len(parent.Child) - 1; i >= idx; i-- {
		parent.RemoveChildAt(i)
	}
	for _, t := range toks {
		parent.AddChild(t)
	}
	for _, t := range tail {
		parent.AddChild(t)
	}
}

// countElements counts el and its descendant elements.
func countElements(el *etree.Element) int {
	n := 1
	for _, t := range el.Child {
		if c, ok := t.(*etree.Element); ok {
			n += countElements(c)
		}
	}
	return n
}
