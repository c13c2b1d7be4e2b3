package wssec

import (
	"crypto"
	"fmt"
	"slices"

	"github.com/beevik/etree"
)

// XML Encryption (1.0 and 1.1) as WS-Security 1.1 uses it: an
// xenc:EncryptedKey in wsse:Security carries the session key, wrapped for
// the gateway's RSA key, and a ReferenceList naming the xenc:EncryptedData
// it unlocks (Body content, header blocks, WSS 1.1 EncryptedHeaders). This
// file parses those elements strictly and holds the algorithm allow-list;
// decrypt.go and encrypt.go do the work.

// Namespaces of XML Encryption and the WSS 1.1 header wrapper.
const (
	NSXMLEnc   = "http://www.w3.org/2001/04/xmlenc#"
	NSXMLEnc11 = "http://www.w3.org/2009/xmlenc11#"
)

// Algorithm identifiers of XML Encryption wssec knows. Anything else is refused.
const (
	// Key transport.
	AlgRSAOAEPMGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	AlgRSAOAEP      = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
	AlgRSA15        = "http://www.w3.org/2001/04/xmlenc#rsa-1_5" // only with AllowRSA15

	// MGF1 variants of xmlenc11#rsa-oaep.
	AlgMGF1SHA1   = "http://www.w3.org/2009/xmlenc11#mgf1sha1"
	AlgMGF1SHA224 = "http://www.w3.org/2009/xmlenc11#mgf1sha224"
	AlgMGF1SHA256 = "http://www.w3.org/2009/xmlenc11#mgf1sha256"
	AlgMGF1SHA384 = "http://www.w3.org/2009/xmlenc11#mgf1sha384"
	AlgMGF1SHA512 = "http://www.w3.org/2009/xmlenc11#mgf1sha512"

	// Data encryption.
	AlgAES128GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
	AlgAES192GCM = "http://www.w3.org/2009/xmlenc11#aes192-gcm"
	AlgAES256GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
	AlgAES128CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc" // only with AllowCBC
	AlgAES192CBC = "http://www.w3.org/2001/04/xmlenc#aes192-cbc" // only with AllowCBC
	AlgAES256CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc" // only with AllowCBC

	// EncryptedData Type.
	TypeContent = "http://www.w3.org/2001/04/xmlenc#Content"
	TypeElement = "http://www.w3.org/2001/04/xmlenc#Element"

	// valueTypeEncryptedKey is the WSS 1.1 TokenType/ValueType of a
	// reference to an EncryptedKey (CXF writes one in EncryptedData's KeyInfo).
	valueTypeEncryptedKey = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#EncryptedKey"
)

// keyTransport is a checked key transport method.
type keyTransport struct {
	uri     string
	rsa15   bool
	hash    crypto.Hash // OAEP digest
	mgfHash crypto.Hash // OAEP MGF1 digest
	label   []byte      // OAEPparams
}

// dataCipher is a checked data encryption method.
type dataCipher struct {
	uri    string
	keyLen int
	gcm    bool
}

var dataCiphers = map[string]dataCipher{
	AlgAES128GCM: {AlgAES128GCM, 16, true},
	AlgAES192GCM: {AlgAES192GCM, 24, true},
	AlgAES256GCM: {AlgAES256GCM, 32, true},
	AlgAES128CBC: {AlgAES128CBC, 16, false},
	AlgAES192CBC: {AlgAES192CBC, 24, false},
	AlgAES256CBC: {AlgAES256CBC, 32, false},
}

// oaepDigests are the DigestMethods allowed inside an OAEP EncryptionMethod.
// SHA-1 is fine here: OAEP needs no collision resistance, and it is the
// default of rsa-oaep-mgf1p that every stack sends.
var oaepDigests = map[string]crypto.Hash{
	AlgSHA1:   crypto.SHA1,
	AlgSHA256: crypto.SHA256,
	AlgSHA384: crypto.SHA384,
	AlgSHA512: crypto.SHA512,
}

var mgfDigests = map[string]crypto.Hash{
	AlgMGF1SHA1:   crypto.SHA1,
	AlgMGF1SHA224: crypto.SHA224,
	AlgMGF1SHA256: crypto.SHA256,
	AlgMGF1SHA384: crypto.SHA384,
	AlgMGF1SHA512: crypto.SHA512,
}

// encryptedKey is a parsed xenc:EncryptedKey. Nothing in it is trusted.
type encryptedKey struct {
	el       *etree.Element
	id       string // its Id, "" if none
	method   keyTransport
	keyRef   *etree.Element // the one child of ds:KeyInfo
	cipher   []byte
	dataRefs []string // DataReference URIs without '#'
}

// encryptedData is a parsed xenc:EncryptedData.
type encryptedData struct {
	el     *etree.Element
	typ    string // TypeContent or TypeElement
	cipher dataCipher
	keyRef string // the EncryptedKey its KeyInfo names, "" if it has none
	value  []byte // IV || ciphertext (|| tag)
}

// maxDataRefs bounds a ReferenceList, as MaxReferences bounds a SignedInfo.
const maxDataRefs = 64

// maxLabel bounds OAEPparams.
const maxLabel = 1024

func xencChildren(el *etree.Element) ([]*etree.Element, error) {
	for _, t := range el.Child {
		if cd, ok := t.(*etree.CharData); ok && !cd.IsWhitespace() {
			return nil, fmt.Errorf("%w: text in %s", ErrMalformedEncryption, el.Tag)
		}
	}
	return childElements(el), nil
}

// xencName is an element name in a schema sequence.
type xencName struct{ space, local string }

var (
	xencMethod     = xencName{nsXMLEnc, "EncryptionMethod"}
	xencKeyInfo    = xencName{NSDSig, "KeyInfo"}
	xencCipherData = xencName{nsXMLEnc, "CipherData"}
	xencRefList    = xencName{nsXMLEnc, "ReferenceList"}
)

// xencSequence reads el's children as the schema sequence names: each name
// at most once and in that order, no other element. The result holds the
// child for each name (nil when absent); what names el in errors.
func xencSequence(el *etree.Element, what string, names ...xencName) ([]*etree.Element, error) {
	children, err := xencChildren(el)
	if err != nil {
		return nil, err
	}
	seq := make([]*etree.Element, len(names))
	next := 0 // position in the sequence, 1-based
	for _, c := range children {
		pos := slices.IndexFunc(names, func(n xencName) bool { return is(c, n.space, n.local) }) + 1
		if pos == 0 {
			return nil, fmt.Errorf("%w: unexpected %s in %s", ErrMalformedEncryption, c.Tag, what)
		}
		if pos <= next {
			return nil, fmt.Errorf("%w: misplaced or repeated %s in %s", ErrMalformedEncryption, c.Tag, what)
		}
		seq[pos-1], next = c, pos
	}
	return seq, nil
}

// parseEncryptedKey checks an xenc:EncryptedKey against the shape WS-Security
// uses (BSP R5601-R5629 where they matter): EncryptionMethod, KeyInfo with one
// token reference, CipherData/CipherValue, ReferenceList; nothing else.
func parseEncryptedKey(el *etree.Element, allowRSA15 bool) (*encryptedKey, error) {
	if !is(el, nsXMLEnc, "EncryptedKey") {
		return nil, fmt.Errorf("%w: not an EncryptedKey", ErrMalformedEncryption)
	}
	// EncryptionProperties, CarriedKeyName and anything else are refused.
	seq, err := xencSequence(el, "EncryptedKey", xencMethod, xencKeyInfo, xencCipherData, xencRefList)
	if err != nil {
		return nil, err
	}
	ek := &encryptedKey{el: el, id: el.SelectAttrValue("Id", "")}
	method, keyInfo, cipherData, refList := seq[0], seq[1], seq[2], seq[3]
	if method == nil {
		return nil, fmt.Errorf("%w: EncryptedKey without EncryptionMethod", ErrMalformedEncryption)
	}
	if ek.method, err = parseKeyTransport(method, allowRSA15); err != nil {
		return nil, err
	}
	if keyInfo == nil {
		return nil, fmt.Errorf("%w: EncryptedKey without KeyInfo", ErrTokenUnavailable)
	}
	kiChildren, err := xencChildren(keyInfo)
	if err != nil {
		return nil, err
	}
	if len(kiChildren) != 1 {
		return nil, fmt.Errorf("%w: EncryptedKey KeyInfo must hold exactly one key reference", ErrInvalidToken)
	}
	ek.keyRef = kiChildren[0]
	if cipherData == nil {
		return nil, fmt.Errorf("%w: EncryptedKey without CipherData", ErrMalformedEncryption)
	}
	if ek.cipher, err = parseCipherData(cipherData, 64<<10); err != nil {
		return nil, err
	}
	if refList == nil {
		// A standalone ReferenceList or an EncryptedData pointing back at the
		// key (symmetric bindings) is not supported: a key must say what it unlocks.
		return nil, fmt.Errorf("%w: EncryptedKey without ReferenceList", ErrMalformedEncryption)
	}
	if ek.dataRefs, err = parseReferenceList(refList); err != nil {
		return nil, err
	}
	return ek, nil
}

// parseKeyTransport checks an EncryptedKey's EncryptionMethod.
func parseKeyTransport(el *etree.Element, allowRSA15 bool) (keyTransport, error) {
	m := keyTransport{uri: el.SelectAttrValue("Algorithm", "")}
	children, err := xencChildren(el)
	if err != nil {
		return m, err
	}
	switch m.uri {
	case AlgRSA15:
		if !allowRSA15 {
			return m, ErrRSA15NotAllowed
		}
		if len(children) != 0 {
			return m, fmt.Errorf("%w: parameters on rsa-1_5", ErrMalformedEncryption)
		}
		m.rsa15 = true
		return m, nil
	case AlgRSAOAEPMGF1P, AlgRSAOAEP:
	default:
		return m, fmt.Errorf("%w: key transport %.100q", ErrUnsupportedAlgorithm, m.uri)
	}
	m.hash, m.mgfHash = crypto.SHA1, crypto.SHA1
	var seenDigest, seenMGF, seenParams bool
	for _, c := range children {
		switch {
		case is(c, NSDSig, "DigestMethod") && !seenDigest && !seenMGF && !seenParams:
			seenDigest = true
			h, ok := oaepDigests[c.SelectAttrValue("Algorithm", "")]
			if !ok || hasChildElement(c) {
				return m, fmt.Errorf("%w: OAEP DigestMethod %.100q", ErrUnsupportedAlgorithm, c.SelectAttrValue("Algorithm", ""))
			}
			m.hash = h
		case is(c, NSXMLEnc11, "MGF") && m.uri == AlgRSAOAEP && !seenMGF && !seenParams:
			seenMGF = true
			h, ok := mgfDigests[c.SelectAttrValue("Algorithm", "")]
			if !ok || hasChildElement(c) {
				return m, fmt.Errorf("%w: OAEP MGF %.100q", ErrUnsupportedAlgorithm, c.SelectAttrValue("Algorithm", ""))
			}
			m.mgfHash = h
		case is(c, nsXMLEnc, "OAEPparams") && !seenParams:
			seenParams = true
			if hasChildElement(c) || len(c.Text()) > 2*maxLabel {
				return m, fmt.Errorf("%w: OAEPparams", ErrMalformedEncryption)
			}
			label, err := decodeBase64(c.Text())
			if err != nil {
				return m, fmt.Errorf("%w: OAEPparams is not base64", ErrMalformedEncryption)
			}
			m.label = label
		default:
			return m, fmt.Errorf("%w: unexpected %s in EncryptionMethod", ErrMalformedEncryption, c.Tag)
		}
	}
	return m, nil
}

// parseReferenceList returns the IDs a ReferenceList names. Only
// same-document DataReferences: a KeyReference (key wrapping of keys) or an
// external URI is refused, and so is a DataReference with transforms.
func parseReferenceList(el *etree.Element) ([]string, error) {
	if !is(el, nsXMLEnc, "ReferenceList") {
		return nil, fmt.Errorf("%w: not a ReferenceList", ErrMalformedEncryption)
	}
	children, err := xencChildren(el)
	if err != nil {
		return nil, err
	}
	if len(children) == 0 {
		return nil, fmt.Errorf("%w: empty ReferenceList", ErrMalformedEncryption)
	}
	if len(children) > maxDataRefs {
		return nil, fmt.Errorf("%w: %d DataReferences, limit %d", ErrTooManyReferences, len(children), maxDataRefs)
	}
	refs := make([]string, 0, len(children))
	for _, c := range children {
		if !is(c, nsXMLEnc, "DataReference") {
			return nil, fmt.Errorf("%w: unexpected %s in ReferenceList", ErrMalformedEncryption, c.Tag)
		}
		if hasChildElement(c) {
			return nil, fmt.Errorf("%w: DataReference with transforms", ErrMalformedEncryption)
		}
		uri := c.SelectAttrValue("URI", "")
		if len(uri) < 2 || uri[0] != '#' {
			return nil, fmt.Errorf("%w: DataReference URI %.64q", ErrReferenceNotFound, uri)
		}
		refs = append(refs, uri[1:])
	}
	return refs, nil
}

// parseCipherData returns the decoded CipherValue of a CipherData, which
// must not be larger than max bytes once decoded. CipherReference (a URI to
// fetch) is refused.
func parseCipherData(el *etree.Element, max int) ([]byte, error) {
	children, err := xencChildren(el)
	if err != nil {
		return nil, err
	}
	if len(children) != 1 || !is(children[0], nsXMLEnc, "CipherValue") {
		return nil, fmt.Errorf("%w: CipherData must hold one CipherValue", ErrMalformedEncryption)
	}
	cv := children[0]
	if hasChildElement(cv) {
		return nil, fmt.Errorf("%w: markup in CipherValue", ErrMalformedEncryption)
	}
	return decodeCipherValue(cv.Text(), max)
}

// decodeCipherValue decodes base64 that may be wrapped over lines, refusing
// anything whose decoded size would exceed max before decoding it.
func decodeCipherValue(text string, max int) ([]byte, error) {
	if len(text)/4*3 > max+3+len(text)/4 { // generous: line breaks count too
		return nil, fmt.Errorf("%w: CipherValue of %d characters", ErrTooLarge, len(text))
	}
	v, err := decodeBase64(text)
	if err != nil {
		return nil, fmt.Errorf("%w: CipherValue is not base64", ErrMalformedEncryption)
	}
	if len(v) > max {
		return nil, fmt.Errorf("%w: CipherValue of %d bytes", ErrTooLarge, len(v))
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty CipherValue", ErrMalformedEncryption)
	}
	return v, nil
}

// parseEncryptedData checks an xenc:EncryptedData: Type Content or Element,
// an allowed EncryptionMethod, an optional KeyInfo naming its EncryptedKey,
// CipherData/CipherValue; nothing else. maxCipher bounds the ciphertext.
func parseEncryptedData(el *etree.Element, allowCBC bool, maxCipher int) (*encryptedData, error) {
	if !is(el, nsXMLEnc, "EncryptedData") {
		return nil, fmt.Errorf("%w: not an EncryptedData", ErrMalformedEncryption)
	}
	ed := &encryptedData{el: el, typ: el.SelectAttrValue("Type", "")}
	if ed.typ != TypeContent && ed.typ != TypeElement {
		return nil, fmt.Errorf("%w: EncryptedData Type %.100q", ErrMalformedEncryption, ed.typ)
	}
	for _, a := range el.Attr {
		// Encoding would ask for a transform of the plaintext before parsing.
		if a.Space == "" && a.Key == "Encoding" {
			return nil, fmt.Errorf("%w: EncryptedData Encoding", ErrUnsupportedAlgorithm)
		}
	}
	seq, err := xencSequence(el, "EncryptedData", xencMethod, xencKeyInfo, xencCipherData)
	if err != nil {
		return nil, err
	}
	method, keyInfo, cipherData := seq[0], seq[1], seq[2]
	if method == nil || cipherData == nil {
		return nil, fmt.Errorf("%w: EncryptedData needs EncryptionMethod and CipherData", ErrMalformedEncryption)
	}
	if hasChildElement(method) {
		return nil, fmt.Errorf("%w: parameters on the data EncryptionMethod", ErrUnsupportedAlgorithm)
	}
	uri := method.SelectAttrValue("Algorithm", "")
	c, ok := dataCiphers[uri]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: data encryption %.100q", ErrUnsupportedAlgorithm, uri)
	case !c.gcm && !allowCBC:
		return nil, ErrCBCNotAllowed
	}
	ed.cipher = c
	if keyInfo != nil {
		if ed.keyRef, err = encryptedKeyReference(keyInfo); err != nil {
			return nil, err
		}
	}
	if ed.value, err = parseCipherData(cipherData, maxCipher); err != nil {
		return nil, err
	}
	return ed, nil
}

// encryptedKeyReference reads the KeyInfo CXF and WSS4J put in an
// EncryptedData: a SecurityTokenReference to the EncryptedKey by ID. Any
// other key source (an embedded EncryptedKey, a KeyName, a RetrievalMethod)
// is refused: the key comes from the EncryptedKey whose ReferenceList names
// this EncryptedData, and only from it.
func encryptedKeyReference(keyInfo *etree.Element) (string, error) {
	children, err := xencChildren(keyInfo)
	if err != nil {
		return "", err
	}
	if len(children) != 1 || !is(children[0], NSWSSE, "SecurityTokenReference") {
		return "", fmt.Errorf("%w: EncryptedData KeyInfo must reference its EncryptedKey", ErrMalformedEncryption)
	}
	refs, err := xencChildren(children[0])
	if err != nil {
		return "", err
	}
	if len(refs) != 1 || !is(refs[0], NSWSSE, "Reference") {
		return "", fmt.Errorf("%w: EncryptedData KeyInfo must reference its EncryptedKey", ErrMalformedEncryption)
	}
	if vt := refs[0].SelectAttrValue("ValueType", valueTypeEncryptedKey); vt != valueTypeEncryptedKey {
		return "", fmt.Errorf("%w: EncryptedData KeyInfo reference ValueType %.100q", ErrMalformedEncryption, vt)
	}
	uri := refs[0].SelectAttrValue("URI", "")
	if len(uri) < 2 || uri[0] != '#' {
		return "", fmt.Errorf("%w: EncryptedData KeyInfo reference %.64q", ErrMalformedEncryption, uri)
	}
	return uri[1:], nil
}

// wsse11 EncryptedHeader: the header block wrapper of WSS 1.1 section 9.3.
func isEncryptedHeader(el *etree.Element) bool {
	return is(el, NSWSSE11, "EncryptedHeader")
}
