package wssec

import (
	"crypto"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/beevik/etree"
)

// signature is a ds:Signature whose shape and algorithms have been checked.
// Nothing in it is trusted yet.
type signature struct {
	signedInfo *etree.Element
	c14nPrefix string // InclusiveNamespaces PrefixList of SignedInfo
	method     signatureMethod
	value      []byte
	keyInfo    *etree.Element
	refs       []reference
	hashes     *hashCache // where verifyValue and verifyDigest take their hashes

	// signedInfoSum is the digest of the canonical SignedInfo (its first
	// method.hash.Size() bytes), set by verifyValue: what the signer signed,
	// which the replay cache keys on rather than on the value's encoding.
	signedInfoSum [64]byte
	valueBuf      [512]byte // value, up to RSA-4096, decoded in place
}

// reference is one ds:Reference.
type reference struct {
	id         string // the URI without '#'
	prefixList string // InclusiveNamespaces PrefixList of its exc-c14n transform
	// strTransform marks WSS 1.0 §8.3's STR-Transform (exc-c14n parameters
	// only): the URI names a SecurityTokenReference and the digest is over
	// the token it dereferences to (see dereferenceSTR).
	strTransform bool
	hash         crypto.Hash
	digest       []byte
	digestBuf    [64]byte // digest, decoded in place
	sum          [64]byte // verifyDigest's result, here rather than escaping on its own
}

// parse checks a ds:Signature against the shape WS-Security allows (BSP 1.1
// R5401-R5423 where they matter) and the algorithm allow-list, into the zero
// signature sig; refBuf, when it has room, holds the references.
func (sig *signature) parse(el *etree.Element, p Policy, refBuf []reference) error {
	limits := p.Limits.withDefaults()
	sig.refs = refBuf[:0]
	var signatureValue *etree.Element
	for i, child := range childElements(el) {
		if child.NamespaceURI() != NSDSig {
			return fmt.Errorf("%w: unexpected %s in Signature", ErrMalformedSignature, child.Tag)
		}
		switch {
		case child.Tag == "SignedInfo" && i == 0:
			sig.signedInfo = child
		case child.Tag == "SignatureValue" && i == 1:
			signatureValue = child
		case child.Tag == "KeyInfo" && i == 2:
			sig.keyInfo = child
		case child.Tag == "Object" && i >= 2:
			// WS-Security signatures are detached: an Object would be
			// forwarded unchecked inside the Security the backend trusts.
			return fmt.Errorf("%w: ds:Object in Signature", ErrUnprocessedSecurityElement)
		default:
			return fmt.Errorf("%w: unexpected or misplaced %s in Signature", ErrMalformedSignature, child.Tag)
		}
	}
	if sig.signedInfo == nil || signatureValue == nil {
		return fmt.Errorf("%w: SignedInfo and SignatureValue are required", ErrMalformedSignature)
	}
	if sig.keyInfo == nil {
		return fmt.Errorf("%w: no KeyInfo", ErrTokenUnavailable)
	}
	value, err := decodeBase64Into(sig.valueBuf[:0], signatureValue.Text())
	if err != nil || len(value) == 0 {
		return fmt.Errorf("%w: SignatureValue is not base64", ErrMalformedSignature)
	}
	sig.value = value

	children := childElements(sig.signedInfo)
	if len(children) < 3 {
		return fmt.Errorf("%w: SignedInfo needs CanonicalizationMethod, SignatureMethod and a Reference", ErrMalformedSignature)
	}
	if !is(children[0], NSDSig, "CanonicalizationMethod") || !is(children[1], NSDSig, "SignatureMethod") {
		return fmt.Errorf("%w: SignedInfo must start with CanonicalizationMethod, SignatureMethod", ErrMalformedSignature)
	}
	if alg := children[0].SelectAttrValue("Algorithm", ""); alg != AlgExcC14N {
		return fmt.Errorf("%w: SignedInfo canonicalization %q", ErrUnsupportedAlgorithm, alg)
	}
	if sig.c14nPrefix, err = inclusivePrefixes(children[0]); err != nil {
		return err
	}
	if hasChildElement(children[1]) {
		// HMACOutputLength and friends (CVE-2009-0217, BSP R5401).
		return fmt.Errorf("%w: SignatureMethod parameters", ErrUnsupportedAlgorithm)
	}
	if sig.method, err = signatureMethodFor(children[1].SelectAttrValue("Algorithm", ""), p.AllowSHA1); err != nil {
		return err
	}
	refs := children[2:]
	if len(refs) > limits.MaxReferences {
		return fmt.Errorf("%w: %d, limit %d", ErrTooManyReferences, len(refs), limits.MaxReferences)
	}
	for _, r := range refs {
		if !is(r, NSDSig, "Reference") {
			return fmt.Errorf("%w: unexpected %s in SignedInfo", ErrMalformedSignature, r.Tag)
		}
		sig.refs = append(sig.refs, reference{})
		if err := parseReference(&sig.refs[len(sig.refs)-1], r, p.AllowSHA1, limits.MaxTransforms); err != nil {
			return err
		}
	}
	return nil
}

func parseReference(ref *reference, el *etree.Element, allowSHA1 bool, maxTransforms int) error {
	uri := el.SelectAttrValue("URI", "")
	if len(uri) < 2 || uri[0] != '#' {
		// Only same-document ID references: no external fetches, no whole-document "".
		return fmt.Errorf("%w: Reference URI %.64q", ErrReferenceNotFound, uri)
	}
	ref.id = uri[1:]
	children := childElements(el)
	if len(children) != 3 || !is(children[0], NSDSig, "Transforms") ||
		!is(children[1], NSDSig, "DigestMethod") || !is(children[2], NSDSig, "DigestValue") {
		return fmt.Errorf("%w: Reference needs Transforms, DigestMethod, DigestValue", ErrMalformedSignature)
	}
	transforms := childElements(children[0])
	if len(transforms) > maxTransforms {
		return fmt.Errorf("%w: %d, limit %d", ErrTooManyTransforms, len(transforms), maxTransforms)
	}
	if len(transforms) != 1 || !is(transforms[0], NSDSig, "Transform") {
		// Detached WS-Security references need exactly one exc-c14n or
		// STR-Transform; enveloped, XPath and XSLT transforms are refused.
		return fmt.Errorf("%w: Reference must have exactly one exc-c14n Transform", ErrUnsupportedAlgorithm)
	}
	var err error
	switch alg := transforms[0].SelectAttrValue("Algorithm", ""); alg {
	case AlgExcC14N:
		if ref.prefixList, err = inclusivePrefixes(transforms[0]); err != nil {
			return err
		}
	case algSTRTransform:
		ref.strTransform = true
		if ref.prefixList, err = strTransformParams(transforms[0]); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: Transform %q", ErrUnsupportedAlgorithm, alg)
	}
	if hasChildElement(children[1]) {
		return fmt.Errorf("%w: DigestMethod parameters", ErrUnsupportedAlgorithm)
	}
	if ref.hash, err = digestMethodFor(children[1].SelectAttrValue("Algorithm", ""), allowSHA1); err != nil {
		return err
	}
	if ref.digest, err = decodeBase64Into(ref.digestBuf[:0], children[2].Text()); err != nil {
		return fmt.Errorf("%w: DigestValue is not base64", ErrMalformedSignature)
	}
	if len(ref.digest) != ref.hash.Size() {
		return fmt.Errorf("%w: DigestValue has the wrong length", ErrDigestMismatch)
	}
	return nil
}

// algSTRTransform is WSS 1.0 SOAP Message Security §8.3's STR Dereference
// Transform, as WSS4J signs a sender-vouches SAML token reference.
const algSTRTransform = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#STR-Transform"

// strTransformParams checks an STR-Transform's parameters: exactly one
// wsse:TransformationParameters holding exactly one exc-c14n
// CanonicalizationMethod (with an optional InclusiveNamespaces), whose
// PrefixList it returns. Anything else is not in the allow-list.
func strTransformParams(tr *etree.Element) (string, error) {
	params := childElements(tr)
	if len(params) != 1 || !is(params[0], NSWSSE, "TransformationParameters") {
		return "", fmt.Errorf("%w: STR-Transform needs TransformationParameters", ErrUnsupportedAlgorithm)
	}
	cm := childElements(params[0])
	if len(cm) != 1 || !is(cm[0], NSDSig, "CanonicalizationMethod") || cm[0].SelectAttrValue("Algorithm", "") != AlgExcC14N {
		return "", fmt.Errorf("%w: STR-Transform canonicalization must be exc-c14n", ErrUnsupportedAlgorithm)
	}
	prefixes, err := inclusivePrefixes(cm[0])
	if err != nil {
		return "", fmt.Errorf("%w: STR-Transform parameters: %v", ErrUnsupportedAlgorithm, err)
	}
	return prefixes, nil
}

// inclusivePrefixes returns the PrefixList of an exc-c14n algorithm element's
// optional ec:InclusiveNamespaces child (WSS4J and CXF always send one).
func inclusivePrefixes(el *etree.Element) (string, error) {
	children := childElements(el)
	switch {
	case len(children) == 0:
		return "", nil
	case len(children) == 1 && is(children[0], NSExcC14N, "InclusiveNamespaces"):
		if hasChildElement(children[0]) {
			break
		}
		return strings.Join(strings.Fields(children[0].SelectAttrValue("PrefixList", "")), " "), nil
	}
	return "", fmt.Errorf("%w: unexpected parameters on %s", ErrMalformedSignature, el.Tag)
}

// appendBase64Text appends s to dst without the space, tab, CR and LF
// that wrap base64 text over lines, a run between them at a time.
func appendBase64Text(dst []byte, s string) []byte {
	run := 0
	for i := 0; i < len(s); i++ {
		if spaceByte[s[i]] {
			dst = append(dst, s[run:i]...)
			run = i + 1
		}
	}
	return append(dst, s[run:]...)
}

// decodeBase64 decodes base64 text that may be wrapped over lines (space,
// tab, CR and LF are dropped, as before decoding by strings.Map). Short
// values, such as digests and signature values, are stripped on the stack.
func decodeBase64(s string) ([]byte, error) {
	var arr [1024]byte
	src := arr[:0]
	if len(s) > len(arr) {
		src = make([]byte, 0, len(s))
	}
	src = appendBase64Text(src, s)
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Decode(dst, src)
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}
