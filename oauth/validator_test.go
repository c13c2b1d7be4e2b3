package oauth

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"wsgate/internal/testclock"
)

// newTestValidator serves the standard key set over httptest and validates against it.
func newTestValidator(t *testing.T, c *testclock.Clock, mut func(*Options)) (*Validator, *jwksServer) {
	t.Helper()
	k := tk(t)
	weak := pubJWK("weak", "RS256", k.rsaWeak)
	srv := newJWKSServer(t, jwkJSON(t,
		pubJWK("rsa1", "RS256", k.rsa),
		jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "rsa-any", Use: "sig"}, // no alg: RS* and PS*
		pubJWK("ec1", "ES256", k.p256),
		pubJWK("ec384", "", k.p384),
		pubJWK("ec521", "", k.p521),
		pubJWK("ed1", "EdDSA", k.ed),
		weak,
		jose.JSONWebKey{Key: k.p256.Public(), KeyID: "enc1", Use: "enc"},
	))
	src, err := NewJWKSSource(JWKSOptions{URL: srv.URL, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Issuer:     testIssuer,
		Audience:   []string{testAudience},
		Algorithms: []string{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"},
		Leeway:     60 * time.Second,
		RequireTyp: "at+jwt",
		Keys:       src,
		Now:        c.Now,
	}
	if mut != nil {
		mut(&o)
	}
	v, err := NewValidator(o)
	if err != nil {
		t.Fatal(err)
	}
	return v, srv
}

func with(m map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
			continue
		}
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func selfSignedDER(t *testing.T) string {
	t.Helper()
	k := tk(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.p256.Public(), k.p256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// unsigned builds an alg=none token by hand: no library will mint one.
func unsigned(t *testing.T, header string, claims map[string]any) string {
	t.Helper()
	valid := mint(t, jose.HS256, tk(t).hmac, "", claims, nil)
	payload := strings.Split(valid, ".")[1]
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + payload + "."
}

func TestValidateJWT(t *testing.T) {
	k := tk(t)
	c := newClock()
	v, _ := newTestValidator(t, c, nil)
	rsaPubDER := pkixDER(t, k.rsa.Public())

	tampered := func() string {
		tok := mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), nil)
		parts := strings.Split(tok, ".")
		other := strings.Split(mint(t, jose.RS256, k.rsa2, "rsa1", with(baseClaims(), "sub", "mallory"), nil), ".")
		return parts[0] + "." + other[1] + "." + parts[2]
	}

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"RS256 valid", mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), nil), nil},
		{"PS256 valid", mint(t, jose.PS256, k.rsa, "rsa-any", baseClaims(), nil), nil},
		{"ES256 valid", mint(t, jose.ES256, k.p256, "ec1", baseClaims(), nil), nil},
		{"ES384 valid", mint(t, jose.ES384, k.p384, "ec384", baseClaims(), nil), nil},
		{"ES512 valid", mint(t, jose.ES512, k.p521, "ec521", baseClaims(), nil), nil},
		{"EdDSA valid", mint(t, jose.EdDSA, k.ed, "ed1", baseClaims(), nil), nil},
		{"aud as a string", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "aud", testAudience), nil), nil},
		{"expired inside leeway", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "exp", t0.Add(-30*time.Second).Unix()), nil), nil},
		{"typ application/at+jwt", mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), map[jose.HeaderKey]any{"typ": "application/AT+JWT"}), nil},

		{"expired", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "exp", t0.Add(-61*time.Second).Unix()), nil), ErrExpired},
		{"no exp", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "exp", nil), nil), ErrMissingExpiry},
		{"not yet valid", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "nbf", t0.Add(2*time.Minute).Unix()), nil), ErrNotYetValid},
		{"iat in the future", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "iat", t0.Add(2*time.Minute).Unix()), nil), ErrIssuedInFuture},
		{"wrong issuer", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "iss", "https://evil.example.com/"), nil), ErrWrongIssuer},
		{"issuer without trailing slash", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "iss", "https://idp.example.com"), nil), ErrWrongIssuer},
		{"wrong audience", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "aud", []string{"orders-api"}), nil), ErrWrongAudience},
		{"no audience", mint(t, jose.RS256, k.rsa, "rsa1", with(baseClaims(), "aud", nil), nil), ErrWrongAudience},
		{"alg none, empty signature", unsigned(t, `{"alg":"none","typ":"at+jwt","kid":"rsa1"}`, baseClaims()), ErrMalformed},
		{"alg none, signature kept", unsigned(t, `{"alg":"none","typ":"at+jwt","kid":"rsa1"}`, baseClaims()) + "c2ln", ErrAlgorithmNotAllowed},
		{"alg None", unsigned(t, `{"alg":"None","kid":"rsa1"}`, baseClaims()) + "c2ln", ErrAlgorithmNotAllowed},
		{"HS256 signed with the RSA public key", mint(t, jose.HS256, rsaPubDER, "rsa1", baseClaims(), nil), ErrAlgorithmNotAllowed},
		{"alg outside allow-list (RS512)", mint(t, jose.RS512, k.rsa, "rsa-any", baseClaims(), nil), ErrAlgorithmNotAllowed},
		{"unknown kid", mint(t, jose.RS256, k.rsa2, "rotated", baseClaims(), nil), ErrUnknownKey},
		{"no kid, several keys", mint(t, jose.RS256, k.rsa, "", baseClaims(), nil), ErrUnknownKey},
		{"kid of a skipped weak key", mint(t, jose.RS256, k.rsaWeak, "weak", baseClaims(), nil), ErrUnknownKey},
		{"kid of an enc key", mint(t, jose.ES256, k.p256, "enc1", baseClaims(), nil), ErrUnknownKey},
		{"ES256 under an RSA kid", mint(t, jose.ES256, k.p256, "rsa1", baseClaims(), nil), ErrKeyMismatch},
		{"PS256 under a key bound to RS256", mint(t, jose.PS256, k.rsa, "rsa1", baseClaims(), nil), ErrKeyMismatch},
		{"ES384 under a P-256 kid", mint(t, jose.ES384, k.p384, "ec1", baseClaims(), nil), ErrKeyMismatch},
		{"signed by another key under a known kid", mint(t, jose.RS256, k.rsa2, "rsa1", baseClaims(), nil), ErrInvalidSignature},
		{"tampered payload", tampered(), ErrInvalidSignature},
		{"wrong typ", mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), map[jose.HeaderKey]any{"typ": "JWT"}), ErrWrongType},
		{"no typ", mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), nil, func(o *jose.SignerOptions) { delete(o.ExtraHeaders, "typ") }), ErrWrongType},
		{"jku header", mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), map[jose.HeaderKey]any{"jku": "https://evil.example.com/jwks"}), ErrForbiddenHeader},
		{"x5u header", mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), map[jose.HeaderKey]any{"x5u": "https://evil.example.com/cert"}), ErrForbiddenHeader},
		{"embedded jwk", mint(t, jose.ES256, k.p256, "", baseClaims(), nil, func(o *jose.SignerOptions) { o.EmbedJWK = true }), ErrForbiddenHeader},
		{"x5c header", mint(t, jose.ES256, k.p256, "ec1", baseClaims(), map[jose.HeaderKey]any{"x5c": []string{selfSignedDER(t)}}), ErrForbiddenHeader},
		{"b64 header", mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), map[jose.HeaderKey]any{"b64": true}), ErrForbiddenHeader},
		{"crit header", mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), nil, func(o *jose.SignerOptions) { o.WithCritical("exp") }), ErrCriticalHeader},
		{"kid too long", mint(t, jose.RS256, k.rsa, strings.Repeat("k", MaxKeyIDBytes+1), baseClaims(), nil), ErrMalformed},
		{"two segments", "eyJhbGciOiJSUzI1NiJ9.e30", ErrMalformed},
		{"four segments", "a.b.c.d", ErrMalformed},
		{"empty segment", "eyJhbGciOiJSUzI1NiJ9..sig", ErrMalformed},
		{"not base64", "e30.e30.$$$", ErrMalformed},
		{"header not JSON", "bm90IGpzb24.e30.c2ln", ErrMalformed},
		{"oversized", strings.Repeat("a", MaxTokenBytes-8) + ".bbbbbb.cc", ErrTokenTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := v.Validate(context.Background(), tc.token)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Validate: got %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if tok != nil {
					t.Fatal("a refused token must not return a Token")
				}
				return
			}
			if tok.Subject != "alice" || tok.ClientID != "billing-ui" || tok.Issuer != testIssuer ||
				!tok.HasScope("billing.read") || tok.Expiry.IsZero() || tok.Introspected {
				t.Fatalf("token fields wrong: %+v", tok)
			}
		})
	}
}

func TestHMACConfusionWithHSAllowed(t *testing.T) {
	// Even with HS256 wrongly allowed, an RSA key never becomes an HMAC secret.
	k := tk(t)
	c := newClock()
	v, _ := newTestValidator(t, c, func(o *Options) { o.Algorithms = append(o.Algorithms, "HS256") })
	tok := mint(t, jose.HS256, pkixDER(t, k.rsa.Public()), "rsa1", baseClaims(), nil)
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("got %v, want ErrKeyMismatch", err)
	}
}

func TestHMACSecret(t *testing.T) {
	k := tk(t)
	c := newClock()
	set, err := ParseKeySecret(map[string]string{"secret": base64.StdEncoding.EncodeToString(k.hmac)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(Options{Issuer: testIssuer, Audience: []string{testAudience},
		Algorithms: []string{"HS256", "HS512", "RS256"}, Keys: StaticKeys{set}, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"HS256", mint(t, jose.HS256, k.hmac, "", baseClaims(), nil), nil},
		{"HS256 with a kid the secret does not name", mint(t, jose.HS256, k.hmac, "any", baseClaims(), nil), nil},
		{"HS512", mint(t, jose.HS512, k.hmac, "", baseClaims(), nil), nil},
		{"HS256 wrong secret", mint(t, jose.HS256, k.hmac[:40], "", baseClaims(), nil), ErrInvalidSignature},
		{"RS256 against an HMAC secret", mint(t, jose.RS256, k.rsa, "", baseClaims(), nil), ErrKeyMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Validate(context.Background(), tc.tok)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewValidatorConfig(t *testing.T) {
	keys := StaticKeys{}
	tests := []struct {
		name string
		o    Options
	}{
		{"no issuer", Options{Audience: []string{"a"}, Algorithms: []string{"RS256"}, Keys: keys}},
		{"no audience", Options{Issuer: "i", Algorithms: []string{"RS256"}, Keys: keys}},
		{"no keys or introspection", Options{Issuer: "i", Audience: []string{"a"}, Algorithms: []string{"RS256"}}},
		{"alg none", Options{Issuer: "i", Audience: []string{"a"}, Algorithms: []string{"none"}, Keys: keys}},
		{"no algorithms", Options{Issuer: "i", Audience: []string{"a"}, Keys: keys}},
		{"negative leeway", Options{Issuer: "i", Audience: []string{"a"}, Algorithms: []string{"RS256"}, Keys: keys, Leeway: -1}},
		{"http introspection", Options{Issuer: "i", Audience: []string{"a"}, Introspection: &IntrospectionOptions{URL: "http://idp.example.com/i", Credentials: staticCreds{}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewValidator(tc.o); !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want ErrConfig", err)
			}
		})
	}
}

func TestVerifiedTokenCache(t *testing.T) {
	k := tk(t)
	c := newClock()
	v, srv := newTestValidator(t, c, nil)
	tok := mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), nil)
	first, err := v.Validate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := v.Validate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatal("second validation did not come from the cache")
	}
	if v.cache.len() != 1 {
		t.Fatalf("cache holds %d entries, want 1", v.cache.len())
	}

	// Past exp the cache entry is ignored and full validation refuses the token.
	c.Add(10*time.Minute + 61*time.Second)
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("after exp: got %v, want ErrExpired", err)
	}
	_ = srv
}

func TestRemovedKeyRevokesCachedTokens(t *testing.T) {
	k := tk(t)
	c := newClock()
	v, srv := newTestValidator(t, c, nil)
	tok := mint(t, jose.ES256, k.p256, "ec1", baseClaims(), nil)
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// The IdP drops ec1; the next refresh must revoke the cached token.
	srv.set(200, jwkJSON(t, pubJWK("rsa1", "RS256", k.rsa)))
	if err := v.o.Keys.(*JWKSSource).Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after key removal: got %v, want ErrUnknownKey", err)
	}
	if v.cache.len() != 0 {
		t.Fatal("the revoked entry is still cached")
	}
}

func TestSecretKeyRemovalRevokesCachedTokens(t *testing.T) {
	k := tk(t)
	c := newClock()
	sec := &fakeSecret{fields: map[string]string{"jwks": string(jwkJSON(t, pubJWK("ec1", "ES256", k.p256), pubJWK("ed1", "EdDSA", k.ed)))}}
	v, err := NewValidator(Options{Issuer: testIssuer, Audience: []string{testAudience},
		Algorithms: []string{"ES256", "EdDSA"}, Keys: KeysFromSecret(sec), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, jose.EdDSA, k.ed, "ed1", baseClaims(), nil)
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	sec.put(map[string]string{"jwks": string(jwkJSON(t, pubJWK("ec1", "ES256", k.p256)))})
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after removal from the secret: got %v, want ErrUnknownKey", err)
	}
	// A secret that cannot be read is a 503, not an accepted cached token.
	sec.put(nil)
	sec.err = errors.New("vault down, never loaded")
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("unreadable secret: got %v, want ErrKeysUnavailable", err)
	}
}

func TestClaimsNotAnObject(t *testing.T) {
	k := tk(t)
	v, _ := newTestValidator(t, newClock(), func(o *Options) { o.RequireTyp = "" })
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.rsa}, (&jose.SignerOptions{}).WithHeader("kid", "rsa1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, payload := range []string{`[]`, `"x"`, `{"exp":"tomorrow"}`, `{} {}`} {
		obj, err := s.Sign([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Validate(context.Background(), tok); !errors.Is(err, ErrInvalidClaims) {
			t.Errorf("payload %s: got %v, want ErrInvalidClaims", payload, err)
		}
	}
}

func TestScopesFromScp(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		want   []string
	}{
		{"scope string", map[string]any{"scope": "a b  c"}, []string{"a", "b", "c"}},
		{"scp array", map[string]any{"scp": []any{"a", "b", 7, "c d"}}, []string{"a", "b"}},
		{"scp string", map[string]any{"scp": "a b"}, []string{"a", "b"}},
		{"scope wins over scp", map[string]any{"scope": "a", "scp": []any{"b"}}, []string{"a"}},
		{"none", map[string]any{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scopesOf(tc.claims)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache[int](4)
	for i := range 10 {
		c.put(FingerprintOf(fmt.Sprint(i)), i, t0.Add(time.Minute), t0)
	}
	if c.len() > 4 {
		t.Fatalf("%d entries, cap 4", c.len())
	}
	c.put(FingerprintOf("past"), 1, t0, t0)
	if _, ok := c.get(FingerprintOf("past"), t0); ok {
		t.Fatal("an entry already expired was cached")
	}
	c.put(FingerprintOf("x"), 1, t0.Add(time.Second), t0)
	if _, ok := c.get(FingerprintOf("x"), t0.Add(time.Second)); ok {
		t.Fatal("an entry was served at its deadline")
	}
}
