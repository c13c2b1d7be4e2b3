package wssec

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"time"

	"github.com/beevik/etree"
)

// Algorithm URIs the Signer writes. They are unexported so the verifier's
// allow-list stays the single source of truth for what is accepted.
const (
	sgAlgRSASHA1     = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	sgAlgRSASHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	sgAlgRSASHA384   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
	sgAlgRSASHA512   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	sgAlgECDSASHA1   = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
	sgAlgECDSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	sgAlgECDSASHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	sgAlgECDSASHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
	sgAlgSHA1        = "http://www.w3.org/2000/09/xmldsig#sha1"
	sgAlgSHA256      = "http://www.w3.org/2001/04/xmlenc#sha256"
	sgAlgSHA384      = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	sgAlgSHA512      = "http://www.w3.org/2001/04/xmlenc#sha512"
	sgAlgExcC14N     = "http://www.w3.org/2001/10/xml-exc-c14n#"
	sgAlgExcC14NCom  = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"

	sgX509v3       = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
	sgX509PKIPath  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509PKIPathv1"
	sgX509SKI      = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier"
	sgThumbSHA1    = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
	sgBase64Binary = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
	sgPassText     = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
	sgPassDigest   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"

	// sgTimeFormat is WSS4J's millisecond-precision UTC form (BSP R3229).
	sgTimeFormat = "2006-01-02T15:04:05.000Z"
)

// Key reference modes for Signer.KeyReference.
const (
	// KeyRefBST embeds the certificate as a BinarySecurityToken and
	// references it by wsu:Id (the default, and what wsgate's verifier needs
	// for certificates it has not pinned).
	KeyRefBST = "bst"
	// KeyRefSKI references the certificate by its Subject Key Identifier; no token is sent.
	KeyRefSKI = "ski"
	// KeyRefThumbprint references the certificate by the SHA-1 of its DER; no token is sent.
	KeyRefThumbprint = "thumbprint"
	// KeyRefIssuerSerial references the certificate by issuer DN and serial; no token is sent.
	KeyRefIssuerSerial = "issuerserial"
)

// How Signer.SAMLAssertion is covered by the message signature.
const (
	// SAMLRefID is a Reference to the assertion's ID (exc-c14n): standard
	// XML-DSig, which xmlsec1 and WSS4J both verify. The default.
	SAMLRefID = "id"
	// SAMLRefSTRTransform is WSS4J's sender-vouches shape: a
	// SecurityTokenReference with a SAMLID KeyIdentifier in the Security
	// header, signed through the STR-Transform (WSS 1.0 §8.3).
	SAMLRefSTRTransform = "str-transform"
)

// ErrSignerConfig reports a Signer that cannot sign: no key, a key that does
// not match the certificate, or an unknown algorithm or mode.
var ErrSignerConfig = errors.New("wssec: signer is misconfigured")

// UsernameTokenOptions adds a wsse:UsernameToken to signed messages.
type UsernameTokenOptions struct {
	Username string
	Password string
	// Digest sends PasswordDigest (with Nonce and Created) instead of PasswordText.
	Digest bool
}

// Signer adds WS-Security to outbound SOAP envelopes: a BinarySecurityToken
// (or another key reference), a Timestamp and an XML signature over the
// Body, the Timestamp and every WS-Addressing (2005/08) header present. It is safe for
// concurrent use if Key, Now and NewID are.
type Signer struct {
	// Chain is the signing certificate, leaf first.
	Chain []*x509.Certificate
	// Key is the leaf's private key (RSA or ECDSA; a Vault Transit key fits too).
	Key crypto.Signer
	// TTL sets Expires = Created + TTL; zero means 300s.
	TTL time.Duration
	// IncludeChain sends the whole chain as an X509PKIPathv1 token instead of the leaf alone.
	IncludeChain bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// NewID returns a fresh ID suffix; nil means 16 random bytes in hex.
	NewID func() string
	// Rand feeds nonces, IDs and signatures; nil means crypto/rand.
	Rand io.Reader

	// SignatureAlgorithm overrides the SignatureMethod URI (default rsa-sha256
	// or ecdsa-sha256 by key type); for interoperability tests.
	SignatureAlgorithm string
	// DigestAlgorithm overrides the DigestMethod URI (default sha256).
	DigestAlgorithm string
	// CanonicalizationAlgorithm overrides SignedInfo's c14n (exc-c14n or
	// exc-c14n#WithComments); for rejection tests only.
	CanonicalizationAlgorithm string
	// KeyReference selects how KeyInfo names the key: KeyRefBST (default),
	// KeyRefSKI, KeyRefThumbprint or KeyRefIssuerSerial.
	KeyReference string
	// UsernameToken, when set, is added (unsigned) to the Security header.
	UsernameToken *UsernameTokenOptions
	// SAMLAssertion, when set, is a SAML 2.0 assertion, signed by its
	// issuer, that the message carries for its subject (sender-vouches):
	// parsed strictly within SAMLLimits, placed first in the Security header
	// and covered by the message signature as SAMLReference says.
	SAMLAssertion []byte
	// SAMLReference is SAMLRefID (default) or SAMLRefSTRTransform.
	SAMLReference string
	// SAMLLimits bound the parse of SAMLAssertion; zero means the defaults.
	SAMLLimits Limits
}

func (s *Signer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Signer) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

func (s *Signer) newID(prefix string) (string, error) {
	if s.NewID != nil {
		return prefix + s.NewID(), nil
	}
	var b [16]byte
	if _, err := io.ReadFull(s.rand(), b[:]); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// SignBytes parses msg as a SOAP envelope within limits and signs it; see Sign.
func (s *Signer) SignBytes(msg []byte, limits Limits) ([]byte, error) {
	env, err := ParseEnvelope(msg, limits)
	if err != nil {
		return nil, err
	}
	return s.Sign(env)
}

// Sign returns the serialized, signed envelope. It works on a copy of
// env.Doc: the caller's tree is never modified. The copy gets a soap:Header
// if it had none, wsu:Id attributes on the signed Body and WS-Addressing
// headers (an existing wsu:Id is reused), and a wsse:Security header
// (mustUnderstand) holding, in order, the BinarySecurityToken (KeyRefBST
// only), the Timestamp, the UsernameToken (if configured) and the Signature.
// An envelope that already has a wsse:Security header is refused.
func (s *Signer) Sign(env *Envelope) ([]byte, error) {
	if env == nil || env.Doc == nil {
		return nil, ErrNotEnvelope
	}
	if len(s.Chain) == 0 || s.Chain[0] == nil || s.Key == nil {
		return nil, fmt.Errorf("%w: certificate and key are required", ErrSignerConfig)
	}
	sigAlg, sigHash, err := s.signatureAlgorithm()
	if err != nil {
		return nil, err
	}
	digAlg, digHash, err := sgDigestAlgorithm(s.DigestAlgorithm)
	if err != nil {
		return nil, err
	}
	c14nAlg := sgAlgExcC14N
	switch s.CanonicalizationAlgorithm {
	case "", sgAlgExcC14N:
	case sgAlgExcC14NCom:
		c14nAlg = sgAlgExcC14NCom
	default:
		return nil, fmt.Errorf("%w: canonicalization %q", ErrSignerConfig, s.CanonicalizationAlgorithm)
	}
	keyRef := s.KeyReference
	if keyRef == "" {
		keyRef = KeyRefBST
	}
	switch keyRef {
	case KeyRefBST, KeyRefSKI, KeyRefThumbprint, KeyRefIssuerSerial:
	default:
		return nil, fmt.Errorf("%w: key reference %q", ErrSignerConfig, keyRef)
	}
	samlRef := s.SAMLReference
	switch samlRef {
	case "":
		samlRef = SAMLRefID
	case SAMLRefID, SAMLRefSTRTransform:
	default:
		return nil, fmt.Errorf("%w: SAML reference %q", ErrSignerConfig, samlRef)
	}
	var assertion *etree.Element
	if len(s.SAMLAssertion) > 0 {
		if assertion, err = sgParseAssertion(s.SAMLAssertion, s.SAMLLimits); err != nil {
			return nil, err
		}
	}
	leaf := s.Chain[0]
	if keyRef == KeyRefSKI && len(leaf.SubjectKeyId) == 0 {
		return nil, fmt.Errorf("%w: certificate has no subject key identifier", ErrSignerConfig)
	}

	doc := env.Doc.Copy()
	root := doc.Root()
	if root == nil || root.Tag != "Envelope" {
		return nil, ErrNotEnvelope
	}
	soapNS, header, body, err := sgLocate(root)
	if err != nil {
		return nil, err
	}
	if header == nil {
		header = etree.NewElement(sgQName(root.Space, "Header"))
		root.InsertChildAt(body.Index(), header)
	}
	for _, c := range header.ChildElements() {
		if c.Tag == "Security" && (c.NamespaceURI() == NSWSSE || c.NamespaceURI() == NSWSSE11) {
			return nil, fmt.Errorf("%w: the envelope already has a wsse:Security header", ErrMultipleSecurityHeaders)
		}
	}

	ids := sgCollectIDs(root)
	fresh := func(prefix string) (string, error) {
		id, err := s.newID(prefix)
		if err != nil {
			return "", err
		}
		if _, dup := ids[id]; dup {
			return "", fmt.Errorf("%w: generated ID %q is already in use", ErrDuplicateID, id)
		}
		ids[id] = struct{}{}
		return id, nil
	}

	now := s.now().UTC().Truncate(time.Millisecond)
	ttl := s.TTL
	if ttl <= 0 {
		ttl = 300 * time.Second
	}

	sec := sgNewSecurity(root, header, soapNS)

	var assertionID string
	if assertion != nil {
		for id := range sgCollectIDs(assertion) {
			if _, dup := ids[id]; dup {
				return nil, fmt.Errorf("%w: the SAML assertion's ID %q is already in use", ErrDuplicateID, id)
			}
			ids[id] = struct{}{}
		}
		assertionID = assertion.SelectAttrValue("ID", "")
		sec.AddChild(assertion)
	}

	var bstID string
	if keyRef == KeyRefBST {
		bstID, err = fresh("X509-")
		if err != nil {
			return nil, err
		}
		bst := sec.CreateElement("wsse:BinarySecurityToken")
		bst.CreateAttr("EncodingType", sgBase64Binary)
		if s.IncludeChain && len(s.Chain) > 1 {
			path, err := sgPKIPath(s.Chain)
			if err != nil {
				return nil, err
			}
			bst.CreateAttr("ValueType", sgX509PKIPath)
			bst.SetText(base64.StdEncoding.EncodeToString(path))
		} else {
			bst.CreateAttr("ValueType", sgX509v3)
			bst.SetText(base64.StdEncoding.EncodeToString(leaf.Raw))
		}
		bst.CreateAttr("wsu:Id", bstID)
	}

	tsID, err := fresh("TS-")
	if err != nil {
		return nil, err
	}
	ts := sec.CreateElement("wsu:Timestamp")
	ts.CreateAttr("wsu:Id", tsID)
	ts.CreateElement("wsu:Created").SetText(now.Format(sgTimeFormat))
	ts.CreateElement("wsu:Expires").SetText(now.Add(ttl).Format(sgTimeFormat))

	if ut := s.UsernameToken; ut != nil {
		utID, err := fresh("UsernameToken-")
		if err != nil {
			return nil, err
		}
		if err := s.addUsernameToken(sec, utID, ut, now); err != nil {
			return nil, err
		}
	}

	var samlSTR *etree.Element
	if assertion != nil && samlRef == SAMLRefSTRTransform {
		id, err := fresh("STR-")
		if err != nil {
			return nil, err
		}
		samlSTR = sec.CreateElement("wsse:SecurityTokenReference")
		samlSTR.CreateAttr("xmlns:wsse11", NSWSSE11)
		samlSTR.CreateAttr("wsse11:TokenType", TokenTypeSAML20)
		samlSTR.CreateAttr("wsu:Id", id)
		k := samlSTR.CreateElement("wsse:KeyIdentifier")
		k.CreateAttr("ValueType", ValueTypeSAMLID)
		k.SetText(assertionID)
	}

	// What is signed, in reference order: Body, Timestamp, the SAML
	// assertion (or its token reference), then every WS-Addressing header
	// present (as WSS4J does).
	targets := []*etree.Element{body, ts}
	switch {
	case samlSTR != nil:
		targets = append(targets, samlSTR)
	case assertion != nil:
		targets = append(targets, assertion)
	}
	for _, h := range header.ChildElements() {
		if h.NamespaceURI() == NSWSA { // To, Action, MessageID, ReplyTo, RelatesTo, From, FaultTo...
			targets = append(targets, h)
		}
	}

	prefixList := root.Space
	sig := sec.CreateElement("ds:Signature")
	sigID, err := fresh("SIG-")
	if err != nil {
		return nil, err
	}
	sig.CreateAttr("Id", sigID)
	sig.CreateAttr("xmlns:ds", NSDSig)
	si := sig.CreateElement("ds:SignedInfo")
	cm := si.CreateElement("ds:CanonicalizationMethod")
	cm.CreateAttr("Algorithm", c14nAlg)
	sgInclusiveNamespaces(cm, prefixList)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", sigAlg)

	for _, t := range targets {
		h := digHash.New()
		var id string
		switch t {
		case assertion: // its own signature covers its ID attribute: no wsu:Id
			id = assertionID
		default:
			if id, err = sgEnsureID(t, fresh); err != nil {
				return nil, err
			}
		}
		if t == samlSTR {
			// The STR-Transform digests the token the reference stands for.
			if err := writeSTRTransform(h, assertion, ""); err != nil {
				return nil, err
			}
		} else {
			canon, err := Canonicalize(t, prefixList, false)
			if err != nil {
				return nil, err
			}
			h.Write(canon)
		}
		ref := si.CreateElement("ds:Reference")
		ref.CreateAttr("URI", "#"+id)
		tr := ref.CreateElement("ds:Transforms").CreateElement("ds:Transform")
		if t == samlSTR {
			tr.CreateAttr("Algorithm", algSTRTransform)
			tp := tr.CreateElement("wsse:TransformationParameters")
			tp.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", sgAlgExcC14N)
		} else {
			tr.CreateAttr("Algorithm", sgAlgExcC14N)
			sgInclusiveNamespaces(tr, prefixList)
		}
		ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", digAlg)
		ref.CreateElement("ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	sv := sig.CreateElement("ds:SignatureValue")

	kiID, err := fresh("KI-")
	if err != nil {
		return nil, err
	}
	strID, err := fresh("STR-")
	if err != nil {
		return nil, err
	}
	ki := sig.CreateElement("ds:KeyInfo")
	ki.CreateAttr("Id", kiID)
	s.addTokenReference(ki, keyRef, bstID, strID)

	// SignedInfo is canonicalized where it sits, with its in-scope namespaces.
	canonSI, err := Canonicalize(si, prefixList, c14nAlg == sgAlgExcC14NCom)
	if err != nil {
		return nil, err
	}
	value, err := s.signBytes(canonSI, sigHash)
	if err != nil {
		return nil, err
	}
	sv.SetText(base64.StdEncoding.EncodeToString(value))

	// Escape tab, CR and LF in attributes and CR in text as character
	// references: written raw, other parsers normalize them and the
	// digests stop matching.
	doc.WriteSettings = etree.WriteSettings{CanonicalAttrVal: true, CanonicalText: true}
	return doc.WriteToBytes()
}

// addTokenReference names the signing certificate inside KeyInfo.
func (s *Signer) addTokenReference(ki *etree.Element, keyRef, bstID, strID string) {
	str := ki.CreateElement("wsse:SecurityTokenReference")
	str.CreateAttr("wsu:Id", strID)
	switch keyRef {
	case KeyRefBST:
		r := str.CreateElement("wsse:Reference")
		r.CreateAttr("URI", "#"+bstID)
		if s.IncludeChain && len(s.Chain) > 1 {
			r.CreateAttr("ValueType", sgX509PKIPath)
		} else {
			r.CreateAttr("ValueType", sgX509v3)
		}
	case KeyRefSKI:
		k := str.CreateElement("wsse:KeyIdentifier")
		k.CreateAttr("EncodingType", sgBase64Binary)
		k.CreateAttr("ValueType", sgX509SKI)
		k.SetText(base64.StdEncoding.EncodeToString(s.Chain[0].SubjectKeyId))
	case KeyRefThumbprint:
		sum := sha1.Sum(s.Chain[0].Raw) // the token profile's thumbprint, an identifier, not a signature
		k := str.CreateElement("wsse:KeyIdentifier")
		k.CreateAttr("EncodingType", sgBase64Binary)
		k.CreateAttr("ValueType", sgThumbSHA1)
		k.SetText(base64.StdEncoding.EncodeToString(sum[:]))
	case KeyRefIssuerSerial:
		is := str.CreateElement("ds:X509Data").CreateElement("ds:X509IssuerSerial")
		is.CreateElement("ds:X509IssuerName").SetText(s.Chain[0].Issuer.String())
		is.CreateElement("ds:X509SerialNumber").SetText(s.Chain[0].SerialNumber.String())
	}
}

// sgLocate finds the SOAP namespace, Header (nil if absent) and the one Body.
func sgLocate(root *etree.Element) (soapNS string, header, body *etree.Element, err error) {
	soapNS = root.NamespaceURI()
	if soapNS != NSSOAP11 && soapNS != NSSOAP12 {
		return "", nil, nil, ErrNotEnvelope
	}
	for _, c := range root.ChildElements() {
		if c.NamespaceURI() != soapNS {
			continue
		}
		switch c.Tag {
		case "Header":
			if header == nil {
				header = c
			}
		case "Body":
			if body != nil {
				return "", nil, nil, ErrMultipleBodies
			}
			body = c
		}
	}
	if body == nil {
		return "", nil, nil, ErrNotEnvelope
	}
	return soapNS, header, body, nil
}

// signatureAlgorithm picks the SignatureMethod for the key.
func (s *Signer) signatureAlgorithm() (string, crypto.Hash, error) {
	var isRSA bool
	switch s.Key.Public().(type) {
	case *rsa.PublicKey:
		isRSA = true
	case *ecdsa.PublicKey:
	default:
		return "", 0, fmt.Errorf("%w: unsupported key type %T", ErrSignerConfig, s.Key.Public())
	}
	if !sgSameKey(s.Key.Public(), s.Chain[0].PublicKey) {
		return "", 0, fmt.Errorf("%w: key does not match the certificate", ErrSignerConfig)
	}
	alg := s.SignatureAlgorithm
	if alg == "" {
		alg = sgAlgECDSASHA256
		if isRSA {
			alg = sgAlgRSASHA256
		}
	}
	type entry struct {
		rsa  bool
		hash crypto.Hash
	}
	table := map[string]entry{
		sgAlgRSASHA1:     {true, crypto.SHA1},
		sgAlgRSASHA256:   {true, crypto.SHA256},
		sgAlgRSASHA384:   {true, crypto.SHA384},
		sgAlgRSASHA512:   {true, crypto.SHA512},
		sgAlgECDSASHA1:   {false, crypto.SHA1},
		sgAlgECDSASHA256: {false, crypto.SHA256},
		sgAlgECDSASHA384: {false, crypto.SHA384},
		sgAlgECDSASHA512: {false, crypto.SHA512},
	}
	e, ok := table[alg]
	if !ok || e.rsa != isRSA {
		return "", 0, fmt.Errorf("%w: signature algorithm %q for this key", ErrSignerConfig, alg)
	}
	return alg, e.hash, nil
}

func sgDigestAlgorithm(alg string) (string, crypto.Hash, error) {
	switch alg {
	case "", sgAlgSHA256:
		return sgAlgSHA256, crypto.SHA256, nil
	case sgAlgSHA1:
		return alg, crypto.SHA1, nil
	case sgAlgSHA384:
		return alg, crypto.SHA384, nil
	case sgAlgSHA512:
		return alg, crypto.SHA512, nil
	}
	return "", 0, fmt.Errorf("%w: digest algorithm %q", ErrSignerConfig, alg)
}

func sgSameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// signBytes signs data; ECDSA signatures are converted to XML-DSig 1.1's
// fixed-width r||s.
func (s *Signer) signBytes(data []byte, hash crypto.Hash) ([]byte, error) {
	h := hash.New()
	h.Write(data)
	sum := h.Sum(nil)
	out, err := s.Key.Sign(s.rand(), sum, hash)
	if err != nil {
		return nil, err
	}
	pub, ok := s.Key.Public().(*ecdsa.PublicKey)
	if !ok {
		return out, nil
	}
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(out, &rs)
	if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil {
		return nil, fmt.Errorf("%w: malformed ECDSA signature from key", ErrSignerConfig)
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	raw := make([]byte, 2*size)
	rs.R.FillBytes(raw[:size])
	rs.S.FillBytes(raw[size:])
	return raw, nil
}

func (s *Signer) addUsernameToken(sec *etree.Element, id string, ut *UsernameTokenOptions, now time.Time) error {
	el := sec.CreateElement("wsse:UsernameToken")
	el.CreateAttr("wsu:Id", id)
	el.CreateElement("wsse:Username").SetText(ut.Username)
	pw := el.CreateElement("wsse:Password")
	if !ut.Digest {
		pw.CreateAttr("Type", sgPassText)
		pw.SetText(ut.Password)
		return nil
	}
	nonce := make([]byte, 16)
	if _, err := io.ReadFull(s.rand(), nonce); err != nil {
		return err
	}
	created := now.Format(sgTimeFormat)
	// PasswordDigest = Base64(SHA-1(nonce + created + password)), as the
	// UsernameToken profile defines it.
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(ut.Password))
	pw.CreateAttr("Type", sgPassDigest)
	pw.SetText(base64.StdEncoding.EncodeToString(h.Sum(nil)))
	n := el.CreateElement("wsse:Nonce")
	n.CreateAttr("EncodingType", sgBase64Binary)
	n.SetText(base64.StdEncoding.EncodeToString(nonce))
	el.CreateElement("wsu:Created").SetText(created)
	return nil
}

// sgParseAssertion parses a configured SAML 2.0 assertion with the strict
// parser: one Assertion element with an ID and its issuer's ds:Signature.
// Its nodes come from an arena that is never pooled, so they stay its own.
func sgParseAssertion(b []byte, limits Limits) (*etree.Element, error) {
	limits = limits.withDefaults()
	if int64(len(b)) > limits.MaxBytes {
		return nil, fmt.Errorf("%w: SAML assertion: %w: %d bytes, limit %d", ErrSignerConfig, ErrTooLarge, len(b), limits.MaxBytes)
	}
	doc, err := parseXMLString(string(b), limits, new(arena))
	if err != nil {
		return nil, fmt.Errorf("%w: SAML assertion: %w", ErrSignerConfig, err)
	}
	root := doc.Root()
	if root == nil || !is(root, NSSAML2, "Assertion") || root.SelectAttrValue("ID", "") == "" {
		return nil, fmt.Errorf("%w: SAML assertion: not a SAML 2.0 Assertion with an ID", ErrSignerConfig)
	}
	signed := false
	for _, c := range childElements(root) {
		signed = signed || is(c, NSDSig, "Signature")
	}
	if !signed {
		return nil, fmt.Errorf("%w: SAML assertion: not signed by its issuer", ErrSignerConfig)
	}
	doc.RemoveChildAt(root.Index()) // detached, with its own nodes
	return root, nil
}

// sgPKIPath encodes the chain as a PkiPath: a SEQUENCE of certificates,
// issuer-most first.
func sgPKIPath(chain []*x509.Certificate) ([]byte, error) {
	seq := make([]asn1.RawValue, 0, len(chain))
	for i := len(chain) - 1; i >= 0; i-- {
		seq = append(seq, asn1.RawValue{FullBytes: chain[i].Raw})
	}
	return asn1.Marshal(seq)
}

func sgQName(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}

func sgInclusiveNamespaces(parent *etree.Element, prefixList string) {
	if prefixList == "" {
		return
	}
	in := parent.CreateElement("ec:InclusiveNamespaces")
	in.CreateAttr("xmlns:ec", NSExcC14N)
	in.CreateAttr("PrefixList", prefixList)
}

// sgCollectIDs gathers every ID-like attribute value so generated IDs never collide.
func sgCollectIDs(root *etree.Element) map[string]struct{} {
	ids := map[string]struct{}{}
	stack := []*etree.Element{root}
	for len(stack) > 0 {
		el := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, a := range el.Attr {
			if a.Key == "Id" || a.Key == "ID" || a.Key == "id" {
				ids[a.Value] = struct{}{}
			}
		}
		stack = append(stack, el.ChildElements()...)
	}
	return ids
}

// sgEnsureID returns el's wsu:Id, adding one (with its own namespace
// declaration, so the element stays self-describing when detached) if needed.
func sgEnsureID(el *etree.Element, fresh func(string) (string, error)) (string, error) {
	for _, a := range el.Attr {
		if a.Key == "Id" && a.Space != "" && a.NamespaceURI() == NSWSU {
			return a.Value, nil
		}
	}
	id, err := fresh("id-")
	if err != nil {
		return "", err
	}
	// Use a prefix that is free or already bound to wsu, so declaring it
	// here cannot re-bind a prefix the subtree relies on.
	prefix := "wsu"
	for i := 1; ; i++ {
		uri := el.SelectAttrValue("xmlns:"+prefix, "")
		if uri == "" && el.Parent() != nil {
			uri = sgLookupPrefix(el.Parent(), prefix)
		}
		if uri == "" || uri == NSWSU {
			break
		}
		prefix = "wsu" + strconv.Itoa(i)
	}
	el.CreateAttr("xmlns:"+prefix, NSWSU)
	el.CreateAttr(prefix+":Id", id)
	return id, nil
}

// sgNewSecurity inserts an empty wsse:Security first in header, marked
// mustUnderstand in the envelope's SOAP version. It declares its own
// prefixes so it does not depend on (or clash with) the envelope's.
func sgNewSecurity(root, header *etree.Element, soapNS string) *etree.Element {
	sec := etree.NewElement("wsse:Security")
	sec.CreateAttr("xmlns:wsse", NSWSSE)
	sec.CreateAttr("xmlns:wsu", NSWSU)
	muPrefix := root.Space
	if muPrefix == "" || sgLookupPrefix(header, muPrefix) != soapNS {
		muPrefix = "soapenv"
		sec.CreateAttr("xmlns:soapenv", soapNS)
	}
	mu := "1"
	if soapNS == NSSOAP12 {
		mu = "true"
	}
	sec.CreateAttr(muPrefix+":mustUnderstand", mu)
	header.InsertChildAt(0, sec)
	return sec
}

func sgLookupPrefix(el *etree.Element, prefix string) string {
	for e := el; e != nil; e = e.Parent() {
		for _, a := range e.Attr {
			if a.Space == "xmlns" && a.Key == prefix {
				return a.Value
			}
		}
	}
	return ""
}
