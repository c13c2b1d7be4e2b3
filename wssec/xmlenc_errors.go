package wssec

import (
	"errors"
	"fmt"
)

// XML Encryption sentinels. FaultCode maps them: ErrDecryptionFailed is
// wsse:FailedCheck, the *NotAllowed ones wrap ErrUnsupportedAlgorithm
// (wsse:UnsupportedAlgorithm), the rest are wsse:InvalidSecurity.
var (
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
	// ErrEncryptionConfig: EncryptBody cannot encrypt with these options.
	ErrEncryptionConfig = errors.New("wssec: encryption is misconfigured")
)
