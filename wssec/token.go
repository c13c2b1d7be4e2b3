package wssec

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
)

// Token profile URIs.
const (
	valueTypeX509v3     = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
	valueTypePKIPath    = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509PKIPathv1"
	valueTypeSKI        = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier"
	valueTypeThumbprint = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
	encodingBase64      = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

// minRSABits is the smallest RSA modulus accepted from a signer.
const minRSABits = 2048

// trustIndex is the route's trust set, prepared once per version of it.
// It also memoizes what was learnt about certificates sent in messages
// (parsed form, verified chain) so that a partner's token is parsed and
// chain-checked once per trust version, not once per message. Only
// certificates whose chain verified are remembered, under the hash of their
// DER, in memory of their own: nothing a refused message sent, and no slice
// of any message, outlives the request (issue 11: one untrusted certificate
// spelled many ways pinned each whole message).
type trustIndex struct {
	certs        []*x509.Certificate
	roots        *x509.CertPool
	bySKI        map[string]*x509.Certificate
	byThumbprint map[[20]byte]*x509.Certificate

	parsed   sync.Map // [32]byte SHA-256 of the DER -> *x509.Certificate, chained only
	chained  sync.Map // *x509.Certificate -> validity window of its verified chain
	memoized atomic.Int64
}

// maxMemoized bounds the per-trust-version memo of message certificates.
const maxMemoized = 4096

// chainWindow is when a verified chain is valid: every certificate in it is.
type chainWindow struct{ notBefore, notAfter time.Time }

// parseCertificate decodes and parses a base64 certificate from a message.
// A certificate that chained before costs a decode, a hash and a lookup
// (on the stack for certificates up to maxStackCert); any other is parsed
// from a copy of its own, and remembered by checkSigner only once its chain
// verifies.
func (t *trustIndex) parseCertificate(b64 string) (*signerToken, error) {
	var buf [maxStackCert]byte
	der, err := decodeBase64Into(buf[:0], b64)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate is not base64", ErrInvalidToken)
	}
	sum := sha256.Sum256(der)
	if c, ok := t.parsed.Load(sum); ok {
		return &signerToken{cert: c.(*x509.Certificate)}, nil
	}
	token, err := parseCertificate(bytes.Clone(der)) // the certificate keeps slices of it
	if err != nil {
		return nil, err
	}
	token.memoKey, token.memoizable = sum, true
	return token, nil
}

// maxStackCert is the DER size up to which a message certificate is decoded
// on the stack; a typical one is 1 to 2 KB.
const maxStackCert = 3 << 10

// decodeBase64Into is decodeBase64 (white space dropped) decoding into
// dst's spare capacity when it is large enough.
func decodeBase64Into(dst []byte, s string) ([]byte, error) {
	var arr [maxStackCert * 4 / 3]byte
	src := arr[:0]
	if len(s) > len(arr) {
		src = make([]byte, 0, len(s))
	}
	src = appendBase64Text(src, s)
	if n := base64.StdEncoding.DecodedLen(len(src)); n > cap(dst) {
		dst = make([]byte, 0, n)
	}
	n, err := base64.StdEncoding.Decode(dst[:cap(dst)], src)
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}

// remember memoizes a token whose chain verified (without intermediates
// from the message): its validity window and, for a certificate the message
// sent, its parsed form under its hash.
func (t *trustIndex) remember(token *signerToken, w chainWindow) {
	if token.memoizable && t.memoized.Load() < maxMemoized {
		if _, loaded := t.parsed.LoadOrStore(token.memoKey, token.cert); !loaded {
			t.memoized.Add(1)
		}
	}
	if t.memoized.Add(1) <= maxMemoized {
		t.chained.Store(token.cert, w)
	}
}

func newTrustIndex(certs []*x509.Certificate) *trustIndex {
	t := &trustIndex{
		certs:        certs,
		roots:        x509.NewCertPool(),
		bySKI:        make(map[string]*x509.Certificate, len(certs)),
		byThumbprint: make(map[[20]byte]*x509.Certificate, len(certs)),
	}
	for _, c := range certs {
		// Every configured certificate is an anchor: a CA, or a pinned leaf
		// (crypto/x509 accepts a leaf that is itself in Roots).
		t.roots.AddCert(c)
		t.bySKI[string(subjectKeyID(c))] = c
		t.byThumbprint[sha1.Sum(c.Raw)] = c
	}
	return t
}

// trustCache remembers the index built for the last certificate set seen,
// so a stable trust set costs nothing per message. Sets are compared by the
// certificate pointers they hold, not by slice identity: a source may hand
// out a fresh copy of the same set on every call (secrets.CertSet does), and
// a miss costs a trust index, a certificate parse and a chain verification
// (an RSA operation) per message. A reloaded set has new certificates and so
// builds a new index.
type trustCache struct {
	last atomic.Pointer[trustIndex]
}

func (tc *trustCache) get(certs []*x509.Certificate) *trustIndex {
	if t := tc.last.Load(); t != nil && slices.Equal(t.certs, certs) {
		return t
	}
	t := newTrustIndex(slices.Clone(certs))
	tc.last.Store(t)
	return t
}

// subjectKeyID returns the certificate's SKI extension, or the RFC 5280
// method-1 identifier when it has none, as WSS4J does.
func subjectKeyID(c *x509.Certificate) []byte {
	if len(c.SubjectKeyId) > 0 {
		return c.SubjectKeyId
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

// resolveSigner finds the signing certificate named by KeyInfo. Embedded
// certificates (BinarySecurityToken, X509Certificate) still have to chain to
// the trust set; SKI, thumbprint and issuer/serial references are looked up
// in the trust set only, never in the message.
func resolveSigner(keyInfo *etree.Element, ids *idIndex, trust *trustIndex) (*signerToken, error) {
	children := childElements(keyInfo)
	if len(children) != 1 {
		return nil, fmt.Errorf("%w: KeyInfo must hold exactly one SecurityTokenReference", ErrInvalidToken)
	}
	str := children[0]
	if !is(str, NSWSSE, "SecurityTokenReference") {
		return nil, fmt.Errorf("%w: KeyInfo holds %s, not a SecurityTokenReference", ErrInvalidToken, str.Tag)
	}
	refs := childElements(str)
	if len(refs) != 1 {
		return nil, fmt.Errorf("%w: SecurityTokenReference must hold exactly one reference", ErrInvalidToken)
	}
	ref := refs[0]
	switch {
	case is(ref, NSWSSE, "Reference"):
		uri := ref.SelectAttrValue("URI", "")
		if len(uri) < 2 || uri[0] != '#' {
			return nil, fmt.Errorf("%w: token reference %.64q is not in this message", ErrTokenUnavailable, uri)
		}
		token, err := ids.lookup(uri[1:])
		switch {
		case errors.Is(err, ErrReferenceNotFound):
			return nil, fmt.Errorf("%w: %w", ErrTokenUnavailable, err)
		case err != nil:
			return nil, err
		}
		return parseBinarySecurityToken(token, trust)
	case is(ref, NSWSSE, "KeyIdentifier"):
		if enc := ref.SelectAttrValue("EncodingType", encodingBase64); enc != encodingBase64 {
			return nil, fmt.Errorf("%w: KeyIdentifier EncodingType %.100q", ErrInvalidToken, enc)
		}
		value, err := decodeBase64(ref.Text())
		if err != nil {
			return nil, fmt.Errorf("%w: KeyIdentifier is not base64", ErrInvalidToken)
		}
		var cert *x509.Certificate
		switch vt := ref.SelectAttrValue("ValueType", ""); vt {
		case valueTypeSKI:
			cert = trust.bySKI[string(value)]
		case valueTypeThumbprint:
			if len(value) == sha1.Size {
				cert = trust.byThumbprint[[20]byte(value)]
			}
		default:
			return nil, fmt.Errorf("%w: KeyIdentifier ValueType %.100q", ErrInvalidToken, vt)
		}
		if cert == nil {
			return nil, fmt.Errorf("%w: no trusted certificate matches the KeyIdentifier", ErrTokenUnavailable)
		}
		return &signerToken{cert: cert}, nil
	case is(ref, NSDSig, "X509Data"):
		return resolveX509Data(ref, trust)
	}
	return nil, fmt.Errorf("%w: unsupported token reference %s", ErrInvalidToken, ref.Tag)
}

// signerToken is the resolved signing certificate, with any intermediates
// the message itself supplied (untrusted: they only help build a chain).
type signerToken struct {
	cert          *x509.Certificate
	intermediates []*x509.Certificate

	// memoKey is the SHA-256 of cert's DER when the message sent cert and it
	// is not memoized yet (memoizable): checkSigner remembers it once its
	// chain verifies.
	memoKey    [32]byte
	memoizable bool
}

func parseBinarySecurityToken(el *etree.Element, trust *trustIndex) (*signerToken, error) {
	if !is(el, NSWSSE, "BinarySecurityToken") {
		return nil, fmt.Errorf("%w: token reference points at %s", ErrInvalidToken, el.Tag)
	}
	if enc := el.SelectAttrValue("EncodingType", encodingBase64); enc != encodingBase64 {
		return nil, fmt.Errorf("%w: BinarySecurityToken EncodingType %.100q", ErrInvalidToken, enc)
	}
	switch vt := el.SelectAttrValue("ValueType", ""); vt {
	case valueTypeX509v3:
		return trust.parseCertificate(el.Text())
	case valueTypePKIPath:
		der, err := decodeBase64(el.Text())
		if err != nil {
			return nil, fmt.Errorf("%w: BinarySecurityToken is not base64", ErrInvalidToken)
		}
		return parsePKIPath(der)
	default:
		return nil, fmt.Errorf("%w: BinarySecurityToken ValueType %.100q", ErrInvalidToken, vt)
	}
}

func parseCertificate(der []byte) (*signerToken, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	return &signerToken{cert: cert}, nil
}

// maxPKIPath bounds the certificates a PKIPath token may carry.
const maxPKIPath = 8

// parsePKIPath decodes an X509PKIPathv1 token: a SEQUENCE OF Certificate
// ordered from the top of the chain down, so the signer is the last one.
func parsePKIPath(der []byte) (*signerToken, error) {
	var path []asn1.RawValue
	rest, err := asn1.Unmarshal(der, &path)
	if err != nil || len(rest) > 0 || len(path) == 0 || len(path) > maxPKIPath {
		return nil, fmt.Errorf("%w: malformed X509PKIPathv1 token", ErrInvalidToken)
	}
	certs := make([]*x509.Certificate, len(path))
	for i, raw := range path {
		if certs[i], err = x509.ParseCertificate(raw.FullBytes); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
		}
	}
	return &signerToken{cert: certs[len(certs)-1], intermediates: certs[:len(certs)-1]}, nil
}

// resolveX509Data handles ds:X509Data inside a SecurityTokenReference. An
// IssuerSerial is looked up in the trust set; an X509Certificate is used like
// a BinarySecurityToken (it must chain to the trust set). zeep sends an empty
// IssuerSerial beside the certificate, which counts as absent.
func resolveX509Data(el *etree.Element, trust *trustIndex) (*signerToken, error) {
	var issuerSerial, embedded *etree.Element
	for _, child := range childElements(el) {
		switch {
		case is(child, NSDSig, "X509IssuerSerial") && hasChildElement(child):
			issuerSerial = child
		case is(child, NSDSig, "X509Certificate"):
			embedded = child
		}
	}
	if issuerSerial != nil {
		token, err := lookupIssuerSerial(issuerSerial, trust)
		if err == nil || embedded == nil || !errors.Is(err, ErrTokenUnavailable) {
			return token, err
		}
	}
	if embedded == nil {
		return nil, fmt.Errorf("%w: X509Data holds no IssuerSerial or certificate", ErrInvalidToken)
	}
	return trust.parseCertificate(embedded.Text())
}

func lookupIssuerSerial(el *etree.Element, trust *trustIndex) (*signerToken, error) {
	ref, err := parseIssuerSerial(el)
	if err != nil {
		return nil, err
	}
	for _, c := range trust.certs {
		if ref.matches(c) {
			return &signerToken{cert: c}, nil
		}
	}
	return nil, fmt.Errorf("%w: no trusted certificate matches the issuer and serial", ErrTokenUnavailable)
}

// issuerSerial is a parsed ds:X509IssuerSerial.
type issuerSerial struct {
	issuer dn
	serial *big.Int
}

// parseIssuerSerial reads a ds:X509IssuerSerial (signature key references
// and EncryptedKey recipients alike): a decimal serial and an issuer DN.
func parseIssuerSerial(el *etree.Element) (issuerSerial, error) {
	var name, serial string
	for _, child := range childElements(el) {
		switch {
		case is(child, NSDSig, "X509IssuerName"):
			name = child.Text()
		case is(child, NSDSig, "X509SerialNumber"):
			serial = strings.TrimSpace(child.Text())
		}
	}
	n, ok := new(big.Int).SetString(serial, 10)
	if !ok {
		return issuerSerial{}, fmt.Errorf("%w: X509SerialNumber is not a decimal integer", ErrInvalidToken)
	}
	issuer, err := parseDN(name)
	if err != nil {
		return issuerSerial{}, fmt.Errorf("%w: X509IssuerName: %v", ErrInvalidToken, err)
	}
	return issuerSerial{issuer: issuer, serial: n}, nil
}

// matches reports whether cert has this serial and issuer.
func (r issuerSerial) matches(cert *x509.Certificate) bool {
	return cert.SerialNumber.Cmp(r.serial) == 0 && r.issuer.equal(dnOf(cert.Issuer.Names))
}

// checkKeyStrength is the one rule for keys that verify signatures: RSA of
// at least minBits, ECDSA on P-256, P-384 or P-521 only. known is false for
// any other key type, which the caller refuses in its own terms; what
// prefixes the ErrWeakKey detail.
func checkKeyStrength(pub any, minBits int, what string) (known bool, err error) {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minBits {
			return true, fmt.Errorf("%w: %sRSA-%d", ErrWeakKey, what, pub.N.BitLen())
		}
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return true, fmt.Errorf("%w: %sunsupported curve", ErrWeakKey, what)
		}
	default:
		return false, nil
	}
	return true, nil
}

// checkSigner enforces key strength, validity and the chain to the trust set.
func checkSigner(token *signerToken, trust *trustIndex, now time.Time) error {
	cert := token.cert
	if known, err := checkKeyStrength(cert.PublicKey, minRSABits, ""); !known {
		return fmt.Errorf("%w: unsupported public key type %T", ErrInvalidToken, cert.PublicKey)
	} else if err != nil {
		return err
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("%w: valid %s to %s", ErrCertificateExpired,
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return ErrCertificateKeyUsage
	}
	if w, ok := trust.chained.Load(cert); ok && len(token.intermediates) == 0 {
		if window := w.(chainWindow); !now.Before(window.notBefore) && !now.After(window.notAfter) {
			return nil
		}
	}
	var intermediates *x509.CertPool
	if len(token.intermediates) > 0 {
		intermediates = x509.NewCertPool()
		for _, c := range token.intermediates {
			intermediates.AddCert(c)
		}
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         trust.roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
		if len(token.intermediates) == 0 {
			trust.remember(token, windowOf(chains[0]))
		}
		return nil
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("%w: %v", ErrCertificateExpired, err) // an expired CA in the chain
	}
	return fmt.Errorf("%w: %v", ErrUntrustedCertificate, err)
}

func windowOf(chain []*x509.Certificate) chainWindow {
	w := chainWindow{notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, c := range chain[1:] {
		if c.NotBefore.After(w.notBefore) {
			w.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(w.notAfter) {
			w.notAfter = c.NotAfter
		}
	}
	return w
}
