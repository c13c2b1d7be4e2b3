package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkVerify compares full validation (cache off) per algorithm with
// the bare signature check on the same token, so the gap is our overhead
// (pre-parse, go-jose parsing, header policy, key lookup, claims).
func BenchmarkVerify(b *testing.B) {
	k := tk(b)
	c := newClock()
	cases := []struct {
		alg  jose.SignatureAlgorithm
		priv any
		pub  any
		raw  func(input, sig []byte) bool
	}{
		{jose.RS256, k.rsa, k.rsa.Public(), func(in, sig []byte) bool {
			h := sha256.Sum256(in)
			return rsa.VerifyPKCS1v15(&k.rsa.PublicKey, crypto.SHA256, h[:], sig) == nil
		}},
		{jose.PS256, k.rsa, k.rsa.Public(), func(in, sig []byte) bool {
			h := sha256.Sum256(in)
			return rsa.VerifyPSS(&k.rsa.PublicKey, crypto.SHA256, h[:], sig, nil) == nil
		}},
		{jose.ES256, k.p256, k.p256.Public(), func(in, sig []byte) bool {
			h := sha256.Sum256(in)
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			return ecdsa.Verify(&k.p256.PublicKey, h[:], r, s)
		}},
		{jose.ES384, k.p384, k.p384.Public(), func(in, sig []byte) bool {
			h := sha512.Sum384(in)
			r, s := new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])
			return ecdsa.Verify(&k.p384.PublicKey, h[:], r, s)
		}},
		{jose.EdDSA, k.ed, k.ed.Public(), func(in, sig []byte) bool {
			return ed25519.Verify(k.ed.Public().(ed25519.PublicKey), in, sig)
		}},
		{jose.HS256, k.hmac, nil, func(in, sig []byte) bool {
			m := hmac.New(sha256.New, k.hmac)
			m.Write(in)
			return hmac.Equal(m.Sum(nil), sig)
		}},
	}
	for _, tc := range cases {
		var set *KeySet
		var err error
		if tc.pub == nil {
			set, err = NewHMACKeySet(k.hmac)
		} else {
			set, err = ParseJWKS(jwkJSON(b, jose.JSONWebKey{Key: tc.pub, KeyID: "k", Use: "sig"}))
		}
		if err != nil {
			b.Fatal(err)
		}
		kid := "k"
		if tc.pub == nil {
			kid = ""
		}
		tok := mint(b, tc.alg, tc.priv, kid, baseClaims(), nil)
		v, err := NewValidator(Options{Issuer: testIssuer, Audience: []string{testAudience},
			Algorithms: []string{string(tc.alg)}, Keys: StaticKeys{set}, Now: c.Now, DisableCache: true})
		if err != nil {
			b.Fatal(err)
		}
		i := strings.LastIndexByte(tok, '.')
		input := []byte(tok[:i])
		sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
		if err != nil {
			b.Fatal(err)
		}
		if !tc.raw(input, sig) {
			b.Fatalf("%s: raw check fails", tc.alg)
		}
		b.Run(string(tc.alg)+"/validate", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(tc.alg)+"/raw-signature", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !tc.raw(input, sig) {
					b.Fatal("raw check failed")
				}
			}
		})
	}
}

// BenchmarkVerifyCached is the repeat-token path: SHA-256 of the token, a
// cache hit, and the check that the verifying key is still in the set.
func BenchmarkVerifyCached(b *testing.B) {
	k := tk(b)
	c := newClock()
	set, err := ParseJWKS(jwkJSON(b, pubJWK("rsa1", "RS256", k.rsa)))
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewValidator(Options{Issuer: testIssuer, Audience: []string{testAudience},
		Algorithms: []string{"RS256"}, Keys: StaticKeys{set}, Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	tok := mint(b, jose.RS256, k.rsa, "rsa1", baseClaims(), nil)
	ctx := context.Background()
	if _, err := v.Validate(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
