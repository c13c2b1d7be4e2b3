package wssec

import (
	"github.com/beevik/etree"
)

// XML Encryption inside verification. VerifyEnvelope processes the Security
// header in document order, as WSS 1.1 (section 4) requires of a receiver:
// an EncryptedKey before the Signature was applied after signing
// (sign-then-encrypt), so it is decrypted first and the signature is then
// checked over the plaintext; an EncryptedKey after the Signature was
// applied before signing (encrypt-then-sign), so the signature is checked
// over the ciphertext first and decryption follows. Either way the
// signature is checked over exactly the nodes it covered, found by identity
// in the tree as it then is, and what is forwarded is the decrypted tree.

// decryptHook is one verification's decryption state.
type decryptHook struct {
	d        *decryptor
	security *etree.Element
	after    []*etree.Element // EncryptedKeys that follow the Signature
}

// decryptBeforeSignature decrypts, when the route decrypts, what the
// EncryptedKeys placed before the Signature unlock, and remembers those
// after it. A nil hook (no Policy.Decrypt) leaves the message alone, and an
// EncryptedKey is then refused like any Security child wssec does not
// process.
func (v *Verifier) decryptBeforeSignature(env *Envelope, security *etree.Element) (*decryptHook, error) {
	if v.Policy.Decrypt == nil {
		return nil, nil
	}
	d, err := v.Policy.Decrypt.newDecryptor(env, v.Policy.Limits)
	if err != nil {
		return nil, err
	}
	if err := d.prescan(security); err != nil {
		return nil, err
	}
	h := &decryptHook{d: d, security: security}
	signatureSeen := false
	for _, c := range childElements(security) {
		switch {
		case is(c, NSDSig, "Signature"):
			signatureSeen = true
		case is(c, nsXMLEnc, "EncryptedKey") && signatureSeen:
			h.after = append(h.after, c)
		case is(c, nsXMLEnc, "EncryptedKey"):
			if err := d.decryptKey(c); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// afterSignature decrypts what the EncryptedKeys after the Signature unlock,
// once the signature over the ciphertext has verified; refuses decrypted
// content holding look-alikes or duplicate IDs, as the rest of the message
// was (indexEnvelope); enforces RequireEncrypted and that no EncryptedData
// is left; and points the forwarded header blocks at the elements that
// replaced them.
func (h *decryptHook) afterSignature(env *Envelope, forward []*etree.Element) error {
	if h == nil {
		return nil
	}
	for _, ek := range h.after {
		if err := h.d.decryptKey(ek); err != nil {
			return err
		}
	}
	if len(h.after) > 0 {
		if _, err := indexEnvelope(env, h.security); err != nil {
			return err
		}
	}
	if err := h.d.finish(); err != nil {
		return err
	}
	for i, el := range forward {
		if r := h.d.replaced[el]; r != nil {
			forward[i] = r
		}
	}
	return nil
}

// decrypting reports whether the hook processes EncryptedKeys.
func (h *decryptHook) decrypting() bool { return h != nil }
