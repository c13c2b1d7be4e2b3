package secrets

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// DefaultTransitMount is where the Transit engine is mounted unless told otherwise.
const DefaultTransitMount = "transit"

// ErrTransit means Vault Transit refused to sign, or answered with a
// signature that is malformed or does not verify under the signer's key.
var ErrTransit = errors.New("secrets: vault transit signing failed")

// TransitSigner is a crypto.Signer whose private key never leaves Vault: it
// signs digests with <mount>/sign/<key> (prehashed). It is pinned to the
// key version whose public key it loaded, so every signature verifies under
// Public() even after the key is rotated in Vault; build a new signer to
// move to the new version. Safe for concurrent use.
type TransitSigner struct {
	v       *Vault
	mount   string
	key     string
	version int
	keyType string
	pub     crypto.PublicKey
	// Timeout bounds one Sign call (crypto.Signer has no context). Default 30s.
	Timeout time.Duration
}

// NewTransitSigner loads the latest version of the Transit key name at mount
// (empty mount: transit) and returns a signer for it. The key must be an
// asymmetric signing key: rsa-2048/3072/4096, ecdsa-p256/p384/p521 or ed25519.
func NewTransitSigner(ctx context.Context, v *Vault, mount, name string) (*TransitSigner, error) {
	if mount == "" {
		mount = DefaultTransitMount
	}
	if err := checkMount("transit mount", mount); err != nil {
		return nil, err
	}
	if err := CheckPath(name); err != nil || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%w: transit key %q is not a key name", ErrVaultConfig, name)
	}
	where := mount + "/keys/" + name
	if err := v.ensureAuth(ctx); err != nil {
		return nil, fmt.Errorf("secrets: vault transit %s: %w: %w", where, ErrUnavailable, err)
	}
	s, err := v.client.Logical().ReadWithContext(ctx, where)
	if err != nil {
		return nil, fmt.Errorf("secrets: vault transit %s: %w: %w", where, ErrUnavailable, compact(err))
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("secrets: vault transit %s: %w", where, ErrNotFound)
	}
	keyType, _ := s.Data["type"].(string)
	latest, err := jsonInt(s.Data["latest_version"])
	if err != nil || latest < 1 {
		return nil, fmt.Errorf("%w: vault transit %s: no latest_version", ErrInvalidSecret, where)
	}
	versions, _ := s.Data["keys"].(map[string]any)
	entry, _ := versions[strconv.Itoa(latest)].(map[string]any)
	pubText, _ := entry["public_key"].(string)
	if pubText == "" {
		return nil, fmt.Errorf("%w: vault transit %s: key type %q has no public key; it cannot sign", ErrInvalidSecret, where, keyType)
	}
	pub, err := parseTransitPublicKey(keyType, pubText)
	if err != nil {
		return nil, fmt.Errorf("%w: vault transit %s version %d: %w", ErrInvalidSecret, where, latest, err)
	}
	return &TransitSigner{v: v, mount: mount, key: name, version: latest, keyType: keyType, pub: pub}, nil
}

func jsonInt(v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	case float64:
		return int(n), nil
	case int:
		return n, nil
	}
	return 0, fmt.Errorf("not a number: %T", v)
}

// parseTransitPublicKey reads the public_key of a Transit key version: PEM
// (PKIX) for RSA and ECDSA, base64 for ed25519.
func parseTransitPublicKey(keyType, text string) (crypto.PublicKey, error) {
	if keyType == "ed25519" {
		raw, err := base64.StdEncoding.DecodeString(text)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, errors.New("ed25519 public key is not 32 base64 bytes")
		}
		return ed25519.PublicKey(raw), nil
	}
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("public key is not a PEM PUBLIC KEY")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, errors.New("public key does not parse")
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
	return pub, nil
}

// Public returns the public key of the pinned version.
func (t *TransitSigner) Public() crypto.PublicKey { return t.pub }

// KeyVersion is the pinned Transit key version.
func (t *TransitSigner) KeyVersion() int { return t.version }

// transitHashes maps the hashes Transit accepts to its names.
var transitHashes = map[crypto.Hash]string{
	crypto.SHA1:   "sha1",
	crypto.SHA224: "sha2-224",
	crypto.SHA256: "sha2-256",
	crypto.SHA384: "sha2-384",
	crypto.SHA512: "sha2-512",
}

// Sign signs digest (the message itself for ed25519) with the pinned key
// version. RSA signs PKCS#1 v1.5 unless opts is *rsa.PSSOptions (salt
// length "equals hash" or "auto"); ECDSA returns ASN.1 DER, as crypto.Signer
// requires. rand is unused: Vault supplies the randomness. Each signature
// is verified under Public() before it is returned.
func (t *TransitSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	req := map[string]any{"key_version": t.version}
	hash := crypto.Hash(0)
	if opts != nil {
		hash = opts.HashFunc()
	}
	var pss *rsa.PSSOptions
	switch t.pub.(type) {
	case ed25519.PublicKey:
		if hash != 0 {
			return nil, fmt.Errorf("%w: ed25519 signs the message, not a %v digest", ErrTransit, hash)
		}
		req["input"] = base64.StdEncoding.EncodeToString(digest)
	default:
		name, ok := transitHashes[hash]
		if !ok {
			return nil, fmt.Errorf("%w: hash %v is not supported", ErrTransit, hash)
		}
		if len(digest) != hash.Size() {
			return nil, fmt.Errorf("%w: digest is %d bytes, want %d for %v", ErrTransit, len(digest), hash.Size(), hash)
		}
		req["input"] = base64.StdEncoding.EncodeToString(digest)
		req["prehashed"] = true
		req["hash_algorithm"] = name
		if _, isRSA := t.pub.(*rsa.PublicKey); isRSA {
			req["signature_algorithm"] = "pkcs1v15"
			if p, ok := opts.(*rsa.PSSOptions); ok {
				pss = p
				req["signature_algorithm"] = "pss"
				switch p.SaltLength {
				case rsa.PSSSaltLengthEqualsHash:
					req["salt_length"] = "hash"
				case rsa.PSSSaltLengthAuto:
					req["salt_length"] = "auto"
				default:
					return nil, fmt.Errorf("%w: PSS salt length %d is not supported", ErrTransit, p.SaltLength)
				}
			}
		} else {
			req["marshaling_algorithm"] = "asn1"
		}
	}

	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultVaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	where := t.mount + "/sign/" + t.key
	if err := t.v.ensureAuth(ctx); err != nil {
		return nil, fmt.Errorf("%w: %s: %w: %w", ErrTransit, where, ErrUnavailable, err)
	}
	s, err := t.v.client.Logical().WriteWithContext(ctx, where, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w: %w", ErrTransit, where, ErrUnavailable, compact(err))
	}
	var text string
	if s != nil && s.Data != nil {
		text, _ = s.Data["signature"].(string)
	}
	sig, err := decodeTransitSignature(text, t.version)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTransit, where, err)
	}
	if err := t.verify(digest, sig, hash, pss); err != nil {
		return nil, fmt.Errorf("%w: %s: returned signature does not verify under version %d's public key", ErrTransit, where, t.version)
	}
	return sig, nil
}

// decodeTransitSignature decodes "vault:v<N>:<base64>" and checks N.
func decodeTransitSignature(text string, wantVersion int) ([]byte, error) {
	rest, ok := strings.CutPrefix(text, "vault:v")
	if !ok {
		return nil, errors.New(`signature is not "vault:vN:..."`)
	}
	ver, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, errors.New(`signature is not "vault:vN:..."`)
	}
	n, err := strconv.Atoi(ver)
	if err != nil || n != wantVersion {
		return nil, fmt.Errorf("signature is from key version %q, want %d", ver, wantVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) == 0 {
		return nil, errors.New("signature is not base64")
	}
	return sig, nil
}

func (t *TransitSigner) verify(digest, sig []byte, hash crypto.Hash, pss *rsa.PSSOptions) error {
	switch k := t.pub.(type) {
	case *rsa.PublicKey:
		if pss != nil {
			return rsa.VerifyPSS(k, hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: hash})
		}
		return rsa.VerifyPKCS1v15(k, hash, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ecdsa verification failed")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(k, digest, sig) {
			return errors.New("ed25519 verification failed")
		}
	}
	return nil
}
