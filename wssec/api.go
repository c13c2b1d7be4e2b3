package wssec

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/beevik/etree"
)

// Namespaces wssec reads and writes.
const (
	NSSOAP11  = "http://schemas.xmlsoap.org/soap/envelope/"
	NSSOAP12  = "http://www.w3.org/2003/05/soap-envelope"
	NSWSSE    = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	NSWSSE11  = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
	NSWSU     = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	NSDSig    = "http://www.w3.org/2000/09/xmldsig#"
	NSExcC14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
	NSWSA     = "http://www.w3.org/2005/08/addressing"
	// Earlier WS-Addressing versions, which wssec treats like NSWSA.
	NSWSA200408 = "http://schemas.xmlsoap.org/ws/2004/08/addressing" // member submission
	NSWSA200403 = "http://schemas.xmlsoap.org/ws/2004/03/addressing"
	NSWSA200303 = "http://schemas.xmlsoap.org/ws/2003/03/addressing"
)

// SOAPVersion is the envelope's SOAP version.
type SOAPVersion int

const (
	SOAPUnknown SOAPVersion = iota
	SOAP11
	SOAP12
)

func (v SOAPVersion) String() string {
	switch v {
	case SOAP11:
		return "1.1"
	case SOAP12:
		return "1.2"
	}
	return "unknown"
}

// Part is something a route may require the signature to cover.
type Part string

const (
	PartBody       Part = "body"
	PartTimestamp  Part = "timestamp"
	PartAddressing Part = "addressing" // wsa:To, wsa:Action and wsa:MessageID
)

// Limits bound the work an untrusted message can cause. Zero fields take the defaults.
type Limits struct {
	MaxBytes      int64 // default 10 MiB
	MaxDepth      int   // default 64
	MaxElements   int   // default 200000
	MaxAttributes int   // per element, default 64
	MaxReferences int   // default 30 (Santuario's secure validation)
	MaxTransforms int   // per reference, default 5 (Santuario's secure validation)
}

// Policy is a route's inbound WS-Security policy.
type Policy struct {
	// RequireSigned lists what the signature must cover; Body is always required.
	RequireSigned []Part
	// TimestampTTL is the oldest Created accepted (default 300s).
	TimestampTTL time.Duration
	// FutureSkew is how far ahead Created may be (default 60s).
	FutureSkew time.Duration
	// RequireExpires refuses a Timestamp without Expires.
	RequireExpires bool
	// AllowSHA1 accepts RSA-SHA1 and SHA-1 digests.
	AllowSHA1 bool
	// Limits bound parsing and signature processing.
	Limits Limits
	// ForwardUnsignedHeaders lists the header blocks forwarded to the
	// upstream although no signature covers them. By default none is: the
	// upstream gets the processed Security (unless stripped) and the blocks
	// a verified reference covers, nothing else. An unsigned block that is
	// not listed is dropped, or refused with ErrMustUnderstand when it
	// carries mustUnderstand.
	ForwardUnsignedHeaders []HeaderName
	// Decrypt, when set, makes the route decrypt XML Encryption: the
	// EncryptedKeys of the Security header are processed in document order
	// together with the signature (xmlenc_verify.go), and what is verified
	// and forwarded is the decrypted envelope. Without it an EncryptedKey is
	// refused like any Security child wssec does not process.
	Decrypt *DecryptPolicy
}

// HeaderName names a header block by namespace and local name; an empty
// Local matches every block in the namespace.
type HeaderName struct {
	Namespace string
	Local     string
}

// CertificateSource yields the route's trust anchors and pinned certificates.
// Implementations may swap the set at any time; each call returns one consistent set.
type CertificateSource interface {
	Certificates() ([]*x509.Certificate, error)
}

// PasswordSource yields UsernameToken passwords.
type PasswordSource interface {
	// Password returns the user's password and whether the user exists.
	Password(username string) (string, bool, error)
}

// ReplayCache remembers message fingerprints until they expire.
type ReplayCache interface {
	// Remember stores key until the given time and reports whether it was
	// already present (a replay). It must be atomic across concurrent callers.
	Remember(ctx context.Context, key [32]byte, until time.Time) (seen bool, err error)
}

// Verifier checks inbound messages against one route's policy. It is safe
// for concurrent use once built.
type Verifier struct {
	Policy Policy
	// Trust is required.
	Trust CertificateSource
	// Replay, when nil, disables replay detection (offline verification).
	Replay ReplayCache
	// Users, when set, makes a valid UsernameToken mandatory.
	Users PasswordSource
	// SAML, when set, processes a SAML 2.0 assertion in the Security header
	// (saml.go); without it an assertion there is refused.
	SAML *SAMLPolicy
	// Revocation, when set, is consulted for the message signer.
	Revocation RevocationSource
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	trust trustCache
}

// Envelope is a parsed, size- and shape-checked SOAP envelope.
type Envelope struct {
	Doc      *etree.Document
	Version  SOAPVersion
	Envelope *etree.Element
	Header   *etree.Element // may be nil
	Body     *etree.Element

	size  int    // of the parsed message, to size the serialized output
	nodes *arena // the tree's memory, pooled; nil unless from ParseEnvelope
	// verified is the Verified made from this tree, emptied with it by
	// Release: the two are views of one tree, with one owner.
	verified *Verified
}

// Verified is the outcome of a successful verification. Only what it holds
// was checked: forward what Bytes writes from it, never the bytes that came
// in. It is a view of the Envelope's tree; see Envelope.Release.
type Verified struct {
	*Envelope
	// Security is the processed wsse:Security header.
	Security *etree.Element
	// Signer is the certificate whose key made the signature.
	Signer *x509.Certificate
	// Assertion is the verified SAML assertion, nil when there was none.
	Assertion *Assertion
	// Created is the signed Timestamp's Created, zero when there was none.
	Created time.Time
	// Username is the authenticated UsernameToken user, if any.
	Username string
	// Action is the text of the signed wsa:Action header (any WS-Addressing
	// version), trimmed; empty when there is none or it is not signed.
	Action string

	headers      []*etree.Element // header blocks to forward, Security included
	securityKept []*etree.Element // the children of Security that were processed

	headersBuf, keptBuf [6]*etree.Element // backing arrays for a usual header
}

// FaultCode returns the local name, in the wsse namespace, of the WS-Security
// fault code for err (e.g. "FailedCheck"), following WSS 1.1 section 12.
// ErrMustUnderstand has no wsse code: a SOAP edge answers it with the SOAP
// MustUnderstand fault (errors.Is), and FaultCode says InvalidSecurity.
func FaultCode(err error) string {
	switch {
	case errors.Is(err, ErrUnsupportedAlgorithm), errors.Is(err, ErrSHA1NotAllowed):
		return "UnsupportedAlgorithm"
	case errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrInvalidSignature), errors.Is(err, ErrDecryptionFailed):
		return "FailedCheck"
	case errors.Is(err, ErrUsernameTokenMissing), errors.Is(err, ErrAuthenticationFailed):
		return "FailedAuthentication"
	case errors.Is(err, ErrTokenUnavailable):
		return "SecurityTokenUnavailable"
	case errors.Is(err, ErrInvalidToken), errors.Is(err, ErrUntrustedCertificate),
		errors.Is(err, ErrCertificateExpired), errors.Is(err, ErrCertificateKeyUsage),
		errors.Is(err, ErrWeakKey):
		return "InvalidSecurityToken"
	case errors.Is(err, ErrTimestampExpired), errors.Is(err, ErrTimestampFuture):
		return "MessageExpired"
	case errors.Is(err, ErrUnprocessedSecurityElement):
		return "UnsupportedSecurityToken"
	}
	return "InvalidSecurity"
}

// ClientError reports whether err is the sender's fault (a fault) rather than
// the gateway's (trust or replay store unavailable: a 503).
func ClientError(err error) bool {
	return !errors.Is(err, ErrTrustUnavailable) && !errors.Is(err, ErrReplayUnavailable) &&
		!errors.Is(err, ErrDecryptionUnavailable) && !errors.Is(err, ErrDecryptionConfig)
}
