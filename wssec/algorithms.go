package wssec

import (
	"crypto"
	_ "crypto/sha1" // SHA-1 is reachable only through AllowSHA1
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"
)

// Algorithm identifiers wssec knows. Anything else is refused.
const (
	AlgExcC14N             = "http://www.w3.org/2001/10/xml-exc-c14n#"
	AlgExcC14NWithComments = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"

	AlgRSASHA1     = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	AlgRSASHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	AlgRSASHA384   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
	AlgRSASHA512   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	AlgECDSASHA1   = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
	AlgECDSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	AlgECDSASHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	AlgECDSASHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"

	AlgSHA1   = "http://www.w3.org/2000/09/xmldsig#sha1"
	AlgSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	AlgSHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	AlgSHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
)

// keyKind is the public key family a signature method needs.
type keyKind int

const (
	keyRSA keyKind = iota + 1
	keyECDSA
)

type signatureMethod struct {
	hash crypto.Hash
	key  keyKind
}

var signatureMethods = map[string]signatureMethod{
	AlgRSASHA1:     {crypto.SHA1, keyRSA},
	AlgRSASHA256:   {crypto.SHA256, keyRSA},
	AlgRSASHA384:   {crypto.SHA384, keyRSA},
	AlgRSASHA512:   {crypto.SHA512, keyRSA},
	AlgECDSASHA1:   {crypto.SHA1, keyECDSA},
	AlgECDSASHA256: {crypto.SHA256, keyECDSA},
	AlgECDSASHA384: {crypto.SHA384, keyECDSA},
	AlgECDSASHA512: {crypto.SHA512, keyECDSA},
}

var digestMethods = map[string]crypto.Hash{
	AlgSHA1:   crypto.SHA1,
	AlgSHA256: crypto.SHA256,
	AlgSHA384: crypto.SHA384,
	AlgSHA512: crypto.SHA512,
}

// signatureMethodFor checks uri against the allow-list.
func signatureMethodFor(uri string, allowSHA1 bool) (signatureMethod, error) {
	m, ok := signatureMethods[uri]
	if !ok {
		return m, fmt.Errorf("%w: SignatureMethod %q", ErrUnsupportedAlgorithm, uri)
	}
	if m.hash == crypto.SHA1 && !allowSHA1 {
		return m, fmt.Errorf("%w: SignatureMethod %q", ErrSHA1NotAllowed, uri)
	}
	return m, nil
}

// digestMethodFor checks uri against the allow-list.
func digestMethodFor(uri string, allowSHA1 bool) (crypto.Hash, error) {
	h, ok := digestMethods[uri]
	if !ok {
		return 0, fmt.Errorf("%w: DigestMethod %q", ErrUnsupportedAlgorithm, uri)
	}
	if h == crypto.SHA1 && !allowSHA1 {
		return 0, fmt.Errorf("%w: DigestMethod %q", ErrSHA1NotAllowed, uri)
	}
	return h, nil
}
