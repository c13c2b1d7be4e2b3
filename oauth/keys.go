package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
)

// Key-material bounds.
const (
	// MinRSABits is the smallest RSA modulus accepted.
	MinRSABits = 2048
	// MinHMACBytes is the shortest HMAC secret accepted (HS384/HS512 need 48/64).
	MinHMACBytes = 32
	// MaxKeys caps the keys kept from one key set.
	MaxKeys = 64
	// MaxKeyIDBytes caps a kid, in the key set and in a token header.
	MaxKeyIDBytes = 256
)

// KeySource yields a route's current verification keys. Implementations may
// swap the set at any time; each call returns one consistent, immutable set.
// An error means no usable set is available (the route answers 503).
type KeySource interface {
	Keys(ctx context.Context) (*KeySet, error)
}

// Refresher is implemented by key sources that can re-fetch on an unknown
// kid (rate-limited by the source). It returns the set to retry with.
type Refresher interface {
	RefreshUnknownKey(ctx context.Context) (*KeySet, error)
}

// SecretFields yields the current fields of one secret (a KV secret's field
// name to value). *secrets.FieldSet satisfies it and keeps the last good
// values when the backend is down; an error means never loaded.
type SecretFields interface {
	Fields() (map[string]string, error)
}

// Key is one verification key of a KeySet.
type Key struct {
	// ID is the JWK kid; empty for PEM keys and HMAC secrets.
	ID string
	// Algorithm, when set by the JWK alg member, is the only alg this key verifies.
	Algorithm string
	// Thumbprint identifies the key material (RFC 7638 for public keys).
	Thumbprint [32]byte

	key any // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (HMAC)
}

// KeySet is an immutable set of verification keys.
type KeySet struct {
	keys    []*Key
	byThumb map[[32]byte]*Key
	withIDs bool // some key has a kid
	// Skipped counts JWK entries left out as unusable (enc keys, weak or unknown types).
	Skipped int
}

// Len is the number of usable keys.
func (s *KeySet) Len() int { return len(s.keys) }

// Contains reports whether key material with this thumbprint is in the set.
func (s *KeySet) Contains(thumb [32]byte) bool {
	_, ok := s.byThumb[thumb]
	return ok
}

func newKeySet(keys []*Key, skipped int) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: key set has no usable key", ErrConfig)
	}
	s := &KeySet{keys: keys, byThumb: make(map[[32]byte]*Key, len(keys)), Skipped: skipped}
	for _, k := range keys {
		s.byThumb[k.Thumbprint] = k
		s.withIDs = s.withIDs || k.ID != ""
	}
	return s, nil
}

// lookup returns the keys that may verify a token with this kid and alg.
// kid is only a map key, and is ignored when no key has one (PEM keys, HMAC
// secrets). Without a usable kid the set must hold exactly one compatible
// key, so a token cannot make us try every key.
func (s *KeySet) lookup(kid, alg string) ([]*Key, error) {
	var byID []*Key
	if !s.withIDs {
		kid = ""
	}
	if kid == "" {
		byID = s.keys
	} else {
		for _, k := range s.keys {
			if k.ID == kid {
				byID = append(byID, k)
			}
		}
	}
	if len(byID) == 0 {
		return nil, ErrUnknownKey
	}
	var ok []*Key
	for _, k := range byID {
		if k.compatible(alg) {
			ok = append(ok, k)
		}
	}
	switch {
	case len(ok) == 0:
		return nil, ErrKeyMismatch
	case kid == "" && len(ok) > 1:
		return nil, fmt.Errorf("%w: token has no kid and the set holds several candidate keys", ErrUnknownKey)
	}
	return ok, nil
}

// compatible binds the token's alg to the key: the key type and size must
// fit the algorithm family, and a JWK alg member must match exactly. This is
// what stops HS256-with-an-RSA-public-key confusion.
func (k *Key) compatible(alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		switch jose.SignatureAlgorithm(alg) {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch key.Curve {
		case elliptic.P256():
			return alg == string(jose.ES256)
		case elliptic.P384():
			return alg == string(jose.ES384)
		case elliptic.P521():
			return alg == string(jose.ES512)
		}
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	case []byte:
		switch jose.SignatureAlgorithm(alg) {
		case jose.HS256:
			return len(key) >= 32
		case jose.HS384:
			return len(key) >= 48
		case jose.HS512:
			return len(key) >= 64
		}
	}
	return false
}

// publicKey checks one public key and wraps it as a Key.
func publicKey(kid, alg string, pub any) (*Key, error) {
	if len(kid) > MaxKeyIDBytes {
		return nil, errors.New("kid too long")
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is below %d", p.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return nil, errors.New("unsupported EC curve")
		}
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T", pub)
	}
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	k := &Key{ID: kid, Algorithm: alg, key: pub}
	copy(k.Thumbprint[:], tp)
	return k, nil
}

// ParseJWKS reads a JSON JWK Set. Entries that are not usable signature
// verification keys (use other than sig, key_ops without verify, symmetric
// keys, weak RSA, unknown types) are skipped and counted in Skipped; private members are dropped.
func ParseJWKS(data []byte) (*KeySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: JWK Set is not valid JSON: %v", ErrConfig, err)
	}
	var keys []*Key
	skipped := 0
	for _, r := range raw.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(r); err != nil || !mayVerify(r) {
			skipped++
			continue
		}
		if _, sym := jwk.Key.([]byte); sym {
			// HMAC keys come only from a secret's `secret` field.
			skipped++
			continue
		}
		pub := jwk.Public()
		if pub.Key == nil {
			skipped++
			continue
		}
		k, err := publicKey(jwk.KeyID, jwk.Algorithm, pub.Key)
		if err != nil || len(keys) >= MaxKeys {
			skipped++
			continue
		}
		keys = append(keys, k)
	}
	return newKeySet(keys, skipped)
}

// mayVerify reports whether a JWK's intended use allows verifying
// signatures (RFC 7517): "use", when present, must be "sig" (4.2), and
// "key_ops", when present, an array of distinct strings holding "verify"
// (4.3). Values are case-sensitive; go-jose does not read key_ops.
func mayVerify(raw json.RawMessage) bool {
	var m struct {
		Use    *json.RawMessage `json:"use"`
		KeyOps *json.RawMessage `json:"key_ops"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	if m.Use != nil {
		var use string
		if json.Unmarshal(*m.Use, &use) != nil || use != "sig" {
			return false
		}
	}
	if m.KeyOps != nil { // null unmarshals as absent
		var ops []string
		if json.Unmarshal(*m.KeyOps, &ops) != nil {
			return false
		}
		verify := false
		seen := make(map[string]bool, len(ops))
		for _, op := range ops {
			if seen[op] {
				return false // "Duplicate key operation values MUST NOT be present"
			}
			seen[op] = true
			verify = verify || op == "verify"
		}
		return verify
	}
	return true
}

// ParsePublicKeyPEM reads PEM PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE blocks.
func ParsePublicKeyPEM(data []byte) (*KeySet, error) {
	var keys []*Key
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = c.PublicKey
			}
		default:
			return nil, fmt.Errorf("%w: PEM block %q is not a public key", ErrConfig, b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: PEM %s: %v", ErrConfig, b.Type, err)
		}
		k, err := publicKey("", "", pub)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if len(keys) >= MaxKeys {
			return nil, fmt.Errorf("%w: more than %d keys", ErrConfig, MaxKeys)
		}
		keys = append(keys, k)
	}
	return newKeySet(keys, 0)
}

// NewHMACKeySet makes a one-key set from an HMAC secret (HS256/384/512).
func NewHMACKeySet(secret []byte) (*KeySet, error) {
	if len(secret) < MinHMACBytes {
		return nil, fmt.Errorf("%w: HMAC secret shorter than %d bytes", ErrConfig, MinHMACBytes)
	}
	k := &Key{key: append([]byte(nil), secret...)}
	// Domain-separated hash: identifies the secret in memory, never logged.
	k.Thumbprint = sha256.Sum256(append([]byte("wsgate-hmac\x00"), secret...))
	return newKeySet([]*Key{k}, 0)
}

// ParseKeySecret reads a jwks_secret: exactly one of the fields jwks (JSON
// JWK Set), public_key (PEM) or secret (HMAC, standard or URL base64).
func ParseKeySecret(fields map[string]string) (*KeySet, error) {
	n := 0
	for _, f := range []string{"jwks", "public_key", "secret"} {
		if fields[f] != "" {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: key secret needs exactly one of jwks, public_key, secret", ErrConfig)
	}
	switch {
	case fields["jwks"] != "":
		return ParseJWKS([]byte(fields["jwks"]))
	case fields["public_key"] != "":
		return ParsePublicKeyPEM([]byte(fields["public_key"]))
	}
	s := strings.TrimSpace(fields["secret"])
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return NewHMACKeySet(b)
		}
	}
	return nil, fmt.Errorf("%w: secret is not base64", ErrConfig)
}

// StaticKeys is a KeySource that always yields the same set (tests, offline use).
type StaticKeys struct{ Set *KeySet }

// Keys returns the fixed set.
func (s StaticKeys) Keys(context.Context) (*KeySet, error) {
	if s.Set == nil {
		return nil, ErrKeysUnavailable
	}
	return s.Set, nil
}

// KeysFromSecret adapts a secret (field jwks, public_key or secret) to a
// KeySource. It re-parses only when the fields change. A secret that cannot
// be read or parsed yields ErrKeysUnavailable: an unparsable new value is not
// papered over with old keys, which may be the ones being revoked.
func KeysFromSecret(src SecretFields) KeySource { return &secretKeys{src: src} }

type secretKeys struct {
	src SecretFields

	mu     sync.Mutex
	fields map[string]string
	set    *KeySet
}

func (s *secretKeys) Keys(context.Context) (*KeySet, error) {
	f, err := s.src.Fields()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set != nil && maps.Equal(f, s.fields) {
		return s.set, nil
	}
	set, err := ParseKeySecret(f)
	if err != nil {
		s.set, s.fields = nil, nil
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	s.set, s.fields = set, maps.Clone(f)
	return set, nil
}
