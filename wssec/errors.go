package wssec

import (
	"errors"
	"fmt"
)

// Each distinguishable failure has one sentinel; callers test with errors.Is.
// The fault a client sees is derived from these by FaultCode, never from the text.
var (
	// Input hardening (wsse:InvalidSecurity).
	ErrNotXML              = errors.New("wssec: message is not well-formed XML")
	ErrDTD                 = errors.New("wssec: DOCTYPE, entity or processing instruction refused")
	ErrTooLarge            = errors.New("wssec: message exceeds the size limit")
	ErrTooDeep             = errors.New("wssec: message exceeds the nesting depth limit")
	ErrTooManyElements     = errors.New("wssec: message exceeds the element or attribute limit")
	ErrUnsupportedEncoding = errors.New("wssec: character encoding other than UTF-8")
	ErrNotEnvelope         = errors.New("wssec: not a SOAP 1.1 or 1.2 envelope")
	ErrMultipleBodies      = errors.New("wssec: envelope has more than one Body")

	// Security header shape (wsse:InvalidSecurity).
	ErrNoSecurityHeader        = errors.New("wssec: no wsse:Security header")
	ErrMultipleSecurityHeaders = errors.New("wssec: more than one wsse:Security header for this actor")
	ErrNoSignature             = errors.New("wssec: no ds:Signature in the Security header")
	ErrMultipleSignatures      = errors.New("wssec: more than one ds:Signature in the Security header")
	ErrMalformedSignature      = errors.New("wssec: ds:Signature does not have the required shape")
	ErrTooManyReferences       = errors.New("wssec: too many ds:Reference elements")
	ErrTooManyTransforms       = errors.New("wssec: too many ds:Transform elements")
	ErrDuplicateID             = errors.New("wssec: an ID appears on more than one element")
	ErrReferenceNotFound       = errors.New("wssec: ds:Reference URI does not resolve to an element in this message")

	// Policy: what must be signed (wsse:InvalidSecurity).
	ErrBodyNotSigned       = errors.New("wssec: the SOAP Body is not covered by the signature")
	ErrTimestampNotSigned  = errors.New("wssec: the Timestamp is not covered by the signature")
	ErrAddressingNotSigned = errors.New("wssec: a required WS-Addressing header is missing or not covered by the signature")

	// Algorithms (wsse:UnsupportedAlgorithm).
	ErrUnsupportedAlgorithm = errors.New("wssec: algorithm not in the allow-list")
	ErrSHA1NotAllowed       = errors.New("wssec: SHA-1 is not allowed on this route")

	// Cryptographic checks (wsse:FailedCheck).
	ErrDigestMismatch   = errors.New("wssec: reference digest does not match")
	ErrInvalidSignature = errors.New("wssec: SignatureValue does not verify")

	// Tokens and trust.
	ErrTokenUnavailable     = errors.New("wssec: the signing token cannot be found")             // wsse:SecurityTokenUnavailable
	ErrInvalidToken         = errors.New("wssec: the signing token is malformed or unsupported") // wsse:InvalidSecurityToken
	ErrUntrustedCertificate = errors.New("wssec: signer certificate does not chain to a trust anchor")
	ErrCertificateExpired   = errors.New("wssec: signer certificate is expired or not yet valid")
	ErrCertificateKeyUsage  = errors.New("wssec: signer certificate may not sign")
	ErrWeakKey              = errors.New("wssec: signer key is too small")

	// Timestamp.
	ErrTimestampMissing   = errors.New("wssec: required wsu:Timestamp is missing")      // wsse:InvalidSecurity
	ErrTimestampMalformed = errors.New("wssec: wsu:Timestamp is malformed")             // wsse:InvalidSecurity
	ErrTimestampExpired   = errors.New("wssec: wsu:Timestamp is expired or too old")    // wsse:MessageExpired
	ErrTimestampFuture    = errors.New("wssec: wsu:Timestamp is created in the future") // wsse:MessageExpired

	// Replay (wsse:InvalidSecurity).
	ErrReplay = errors.New("wssec: message replayed")

	// UsernameToken (wsse:FailedAuthentication).
	ErrUsernameTokenMissing = errors.New("wssec: required UsernameToken is missing")
	ErrAuthenticationFailed = errors.New("wssec: UsernameToken authentication failed")

	// Forward only what was verified (issue 11).
	// ErrEnvelopeShape (wsse:InvalidSecurity): Envelope holds something other
	// than at most one Header then one Body, or text, or soap:encodingStyle.
	ErrEnvelopeShape = errors.New("wssec: envelope holds something besides one Header and one Body")
	// ErrLookAlike (wsse:InvalidSecurity): an element a backend could take
	// for the Body, a Security header, a token, a Timestamp or wsa:Action
	// lies outside its place.
	ErrLookAlike = errors.New("wssec: a look-alike of a SOAP or security element is outside its place")
	// ErrMustUnderstand (a soap:MustUnderstand / env:MustUnderstand fault,
	// not a wsse code): a mustUnderstand header wsgate neither processes nor
	// forwards.
	ErrMustUnderstand = errors.New("wssec: a mustUnderstand header is neither processed nor forwarded")
	// ErrUnprocessedSecurityElement (wsse:UnsupportedSecurityToken): the
	// Security header holds something wssec does not process.
	ErrUnprocessedSecurityElement = errors.New("wssec: the Security header holds an element wsgate does not process")
	// ErrAddressingMalformed (wsse:InvalidSecurity): a WS-Addressing header
	// appears twice (in any versions) or wsa:Action is not plain text.
	ErrAddressingMalformed = errors.New("wssec: a WS-Addressing header is repeated or malformed")

	// Configuration and dependencies, not the client's fault.
	ErrTrustUnavailable  = errors.New("wssec: trust anchors are not available")
	ErrReplayUnavailable = errors.New("wssec: replay cache is not available")
)

// Namespace well-formedness (wsse:InvalidSecurity).
var (
	// ErrNamespace: the message is well-formed XML but not namespace-well-formed
	// (Namespaces in XML 1.0): an undeclared prefix, an undeclared prefix
	// binding (xmlns:p="", XML 1.1 only), a misuse of the reserved xml and
	// xmlns prefixes or namespaces, or two attributes with one expanded name.
	ErrNamespace = errors.New("wssec: message is not namespace-well-formed XML")

	// XML Encryption (xmlenc.go, decrypt.go). FaultCode: ErrDecryptionFailed
	// is wsse:FailedCheck, the *NotAllowed ones wrap ErrUnsupportedAlgorithm
	// (wsse:UnsupportedAlgorithm), the others wsse:InvalidSecurity.

	// ErrDecryptionFailed: a session key or a ciphertext does not decrypt.
	// It is returned bare, never wrapped with detail, so that every
	// decryption failure is the same value (padding oracles).
	ErrDecryptionFailed = errors.New("wssec: decryption failed")
	// ErrRSA15NotAllowed: RSA v1.5 key transport on a route without allow_rsa15.
	ErrRSA15NotAllowed = fmt.Errorf("%w: RSA v1.5 key transport is not allowed on this route", ErrUnsupportedAlgorithm)
	// ErrCBCNotAllowed: AES-CBC on a route without allow_cbc.
	ErrCBCNotAllowed = fmt.Errorf("%w: AES-CBC is not allowed on this route", ErrUnsupportedAlgorithm)
	// ErrMalformedEncryption: an xenc element without the required shape.
	ErrMalformedEncryption = errors.New("wssec: xenc element does not have the required shape")
	// ErrEncryptedDataLocation: a ReferenceList names something other than
	// an EncryptedData in the Body or a header block (moved, wrapped, nested).
	ErrEncryptedDataLocation = errors.New("wssec: EncryptedData is outside the Body content and the header blocks")
	// ErrEncryptedDataReused: one EncryptedData named twice, by two keys or
	// one, or naming another key than the one that lists it.
	ErrEncryptedDataReused = errors.New("wssec: an EncryptedData is claimed by more than one key reference")
	// ErrUndecryptedData: an EncryptedData that no EncryptedKey unlocks.
	ErrUndecryptedData = errors.New("wssec: an EncryptedData is left that no EncryptedKey unlocks")
	// ErrBodyNotEncrypted: the route requires an encrypted Body and it was not.
	ErrBodyNotEncrypted = errors.New("wssec: the SOAP Body content is not encrypted")
	// ErrDecryptionConfig: no usable decryption identity (not the client's fault).
	ErrDecryptionConfig = errors.New("wssec: decryption identity is misconfigured")
	// ErrDecryptionUnavailable: the decryption key could not be reached (a
	// Vault Transit outage; not the client's fault). A crypto.Decrypter
	// wraps its transport failures with it; any other error it returns is
	// ErrDecryptionFailed.
	ErrDecryptionUnavailable = errors.New("wssec: the decryption key is not available")
	// ErrEncryptionConfig: EncryptBody cannot encrypt with these options.
	ErrEncryptionConfig = errors.New("wssec: encryption is misconfigured")
)
