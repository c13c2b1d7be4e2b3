package secrets

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transit decryption failures. A caller tells them apart with errors.Is:
// ErrUnavailable (Vault unreachable or refusing the token) is the
// gateway's problem, ErrTransitUnsupported does not depend on the
// ciphertext, and ErrTransitDecrypt is a ciphertext Vault could not
// decrypt (the sender's fault).
var (
	// ErrTransitUnsupported: the decryption parameters are not what Vault
	// Transit does for RSA keys (RSA-OAEP with SHA-256 and MGF1-SHA-256,
	// no label).
	ErrTransitUnsupported = errors.New("secrets: vault transit cannot decrypt with these parameters")
	// ErrTransitDecrypt: Vault refused the ciphertext.
	ErrTransitDecrypt = errors.New("secrets: vault transit decryption failed")
)

// TransitDecrypter is a crypto.Decrypter whose RSA private key never
// leaves Vault: it unwraps with <mount>/decrypt/<key>, which for RSA keys
// is RSA-OAEP with SHA-256 as both the digest and the MGF1 hash and an
// empty label. It is pinned to the key version whose public key it loaded
// (the one a certificate names), so rotating the key in Vault does not
// change which key it decrypts with. Safe for concurrent use.
type TransitDecrypter struct {
	v       *Vault
	mount   string
	key     string
	version int
	pub     *rsa.PublicKey
	// Timeout bounds one Decrypt call (crypto.Decrypter has no context). Default 30s.
	Timeout time.Duration
}

// NewTransitDecrypter loads the latest version of the Transit key name at
// mount (empty mount: transit). The key must be rsa-2048, rsa-3072 or rsa-4096.
func NewTransitDecrypter(ctx context.Context, v *Vault, mount, name string) (*TransitDecrypter, error) {
	s, err := NewTransitSigner(ctx, v, mount, name)
	if err != nil {
		return nil, err
	}
	pub, ok := s.pub.(*rsa.PublicKey)
	if !ok || !strings.HasPrefix(s.keyType, "rsa-") {
		return nil, fmt.Errorf("%w: vault transit %s/keys/%s: key type %q cannot decrypt (want rsa-2048/3072/4096)",
			ErrInvalidSecret, s.mount, name, s.keyType)
	}
	return &TransitDecrypter{v: v, mount: s.mount, key: name, version: s.version, pub: pub}, nil
}

// Public returns the pinned version's RSA public key.
func (t *TransitDecrypter) Public() crypto.PublicKey { return t.pub }

// KeyVersion is the pinned Transit key version.
func (t *TransitDecrypter) KeyVersion() int { return t.version }

// Decrypt unwraps ciphertext. opts must be *rsa.OAEPOptions with Hash
// SHA-256, MGFHash zero or SHA-256 and no Label; anything else (PKCS#1
// v1.5 included) is ErrTransitUnsupported before Vault is asked. rand is
// unused.
func (t *TransitDecrypter) Decrypt(_ io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	o, ok := opts.(*rsa.OAEPOptions)
	if !ok || o == nil {
		return nil, fmt.Errorf("%w: only RSA-OAEP", ErrTransitUnsupported)
	}
	if o.Hash != crypto.SHA256 || (o.MGFHash != 0 && o.MGFHash != crypto.SHA256) || len(o.Label) > 0 {
		return nil, fmt.Errorf("%w: OAEP digest %v, MGF1 %v, label of %d bytes (Vault: SHA-256, MGF1-SHA-256, no label)",
			ErrTransitUnsupported, o.Hash, o.MGFHash, len(o.Label))
	}
	if len(ciphertext) != t.pub.Size() {
		// The length is public: Vault need not be asked.
		return nil, fmt.Errorf("%w: ciphertext of %d bytes for a %d-byte modulus", ErrTransitDecrypt, len(ciphertext), t.pub.Size())
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultVaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	where := t.mount + "/decrypt/" + t.key
	if err := t.v.ensureAuth(ctx); err != nil {
		return nil, fmt.Errorf("secrets: vault transit %s: %w: %w", where, ErrUnavailable, err)
	}
	s, err := t.v.client.Logical().WriteWithContext(ctx, where, map[string]any{
		"ciphertext": "vault:v" + strconv.Itoa(t.version) + ":" + base64.StdEncoding.EncodeToString(ciphertext),
	})
	switch {
	case isStatus(err, http.StatusBadRequest), isStatus(err, http.StatusInternalServerError):
		// Vault answers a ciphertext it cannot decrypt with 400 (malformed)
		// or 500 (v1.21: "failed to RSA decrypt the ciphertext", an
		// errutil.InternalError). Both are one failure to the sender: a
		// padding oracle needs failures it can tell apart. Vault's text
		// names no key material, but it is not repeated anyway.
		return nil, fmt.Errorf("%w: %s", ErrTransitDecrypt, where)
	case err != nil:
		return nil, fmt.Errorf("secrets: vault transit %s: %w: %w", where, ErrUnavailable, compact(err))
	}
	var text string
	if s != nil && s.Data != nil {
		text, _ = s.Data["plaintext"].(string)
	}
	plain, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: plaintext is not base64", ErrTransitDecrypt, where)
	}
	return plain, nil
}
