package oauth

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestParseKeySecret(t *testing.T) {
	k := tk(t)
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	tests := []struct {
		name    string
		fields  map[string]string
		wantErr bool
		keys    int
	}{
		{"jwks", map[string]string{"jwks": string(jwkJSON(t, pubJWK("a", "RS256", k.rsa), pubJWK("b", "", k.ed)))}, false, 2},
		{"jwks with a private key keeps only the public half", map[string]string{"jwks": string(jwkJSON(t, jose.JSONWebKey{Key: k.p256, KeyID: "p"}))}, false, 1},
		{"jwks skips oct keys", map[string]string{"jwks": string(jwkJSON(t, jose.JSONWebKey{Key: k.hmac, KeyID: "h"}, pubJWK("a", "", k.p256)))}, false, 1},
		{"jwks of only weak keys", map[string]string{"jwks": string(jwkJSON(t, pubJWK("w", "", k.rsaWeak)))}, true, 0},
		{"pem public key", map[string]string{"public_key": pemOf("PUBLIC KEY", pkixDER(t, k.rsa.Public()))}, false, 1},
		{"pem two keys", map[string]string{"public_key": pemOf("PUBLIC KEY", pkixDER(t, k.rsa.Public())) + pemOf("PUBLIC KEY", pkixDER(t, k.p384.Public()))}, false, 2},
		{"pem private key refused", map[string]string{"public_key": pemOf("PRIVATE KEY", []byte{1})}, true, 0},
		{"pem weak RSA refused", map[string]string{"public_key": pemOf("PUBLIC KEY", pkixDER(t, k.rsaWeak.Public()))}, true, 0},
		{"pem garbage", map[string]string{"public_key": "not pem"}, true, 0},
		{"hmac std base64", map[string]string{"secret": base64.StdEncoding.EncodeToString(k.hmac)}, false, 1},
		{"hmac url base64", map[string]string{"secret": base64.RawURLEncoding.EncodeToString(k.hmac)}, false, 1},
		{"hmac too short", map[string]string{"secret": base64.StdEncoding.EncodeToString(k.hmac[:31])}, true, 0},
		{"hmac not base64", map[string]string{"secret": "!!!"}, true, 0},
		{"two fields", map[string]string{"secret": base64.StdEncoding.EncodeToString(k.hmac), "jwks": "{}"}, true, 0},
		{"no field", map[string]string{}, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseKeySecret(tc.fields)
			if tc.wantErr {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("got %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if set.Len() != tc.keys {
				t.Fatalf("%d keys, want %d", set.Len(), tc.keys)
			}
		})
	}
}

func TestKeyLookup(t *testing.T) {
	k := tk(t)
	set, err := ParseJWKS(jwkJSON(t, pubJWK("a", "RS256", k.rsa), pubJWK("b", "", k.rsa2), pubJWK("c", "", k.p256)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kid, alg string
		want     error
		n        int
	}{
		{"a", "RS256", nil, 1},
		{"a", "PS256", ErrKeyMismatch, 0},
		{"b", "PS384", nil, 1},
		{"c", "ES256", nil, 1},
		{"c", "ES512", ErrKeyMismatch, 0},
		{"c", "HS256", ErrKeyMismatch, 0},
		{"zz", "RS256", ErrUnknownKey, 0},
		{"", "ES256", nil, 1},           // one compatible key: usable without kid
		{"", "RS256", ErrUnknownKey, 0}, // two compatible keys: kid required
		{"../../etc/passwd", "RS256", ErrUnknownKey, 0},
		{strings.Repeat("a", 10), "RS256", ErrUnknownKey, 0},
	}
	for _, tc := range tests {
		got, err := set.lookup(tc.kid, tc.alg)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) || len(got) != tc.n {
			t.Errorf("lookup(%q, %q) = %d keys, %v; want %d, %v", tc.kid, tc.alg, len(got), err, tc.n, tc.want)
		}
	}
}

func FuzzParseJWKS(f *testing.F) {
	k := tk(f)
	f.Add(jwkJSON(f, pubJWK("a", "RS256", k.rsa), pubJWK("b", "", k.p256), pubJWK("c", "", k.ed)))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"},{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseJWKS(data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if set.Len() == 0 || set.Len() > MaxKeys {
			t.Fatalf("set of %d keys", set.Len())
		}
		for _, key := range set.keys {
			if _, sym := key.key.([]byte); sym {
				t.Fatal("a JWK Set yielded an HMAC key")
			}
			if !set.Contains(key.Thumbprint) {
				t.Fatal("thumbprint index inconsistent")
			}
		}
	})
}

// TestParseJWKSKeyUse: RFC 7517 4.2 and 4.3. A key whose "use" is not "sig",
// or whose "key_ops" does not allow "verify" (or is malformed), must never
// verify a token: it is skipped, and a token naming it meets ErrUnknownKey.
func TestParseJWKSKeyUse(t *testing.T) {
	k := tk(t)
	// with renders pubJWK(kid, key) with extra members set (nil deletes one).
	with := func(kid string, key crypto.Signer, extra map[string]any) json.RawMessage {
		b, err := json.Marshal(pubJWK(kid, "RS256", key))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for name, v := range extra {
			if v == nil {
				delete(m, name)
			} else {
				m[name] = v
			}
		}
		if b, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name   string
		extra  map[string]any
		usable bool
	}{
		{"use sig", map[string]any{}, true},
		{"no use, no key_ops", map[string]any{"use": nil}, true},
		{"key_ops verify", map[string]any{"use": nil, "key_ops": []string{"verify"}}, true},
		{"key_ops sign and verify", map[string]any{"use": nil, "key_ops": []string{"sign", "verify"}}, true},
		{"use sig and key_ops verify", map[string]any{"key_ops": []string{"verify"}}, true},
		{"key_ops null", map[string]any{"use": nil, "key_ops": json.RawMessage("null")}, true},

		{"use enc", map[string]any{"use": "enc"}, false},
		{"use SIG (values are case-sensitive)", map[string]any{"use": "SIG"}, false},
		{"use empty string", map[string]any{"use": ""}, false},
		{"key_ops sign only", map[string]any{"use": nil, "key_ops": []string{"sign"}}, false},
		{"key_ops encrypt", map[string]any{"use": nil, "key_ops": []string{"encrypt", "wrapKey"}}, false},
		{"key_ops empty", map[string]any{"use": nil, "key_ops": []string{}}, false},
		{"key_ops Verify (values are case-sensitive)", map[string]any{"use": nil, "key_ops": []string{"Verify"}}, false},
		{"key_ops with a duplicate", map[string]any{"use": nil, "key_ops": []string{"verify", "verify"}}, false},
		{"key_ops a string", map[string]any{"use": nil, "key_ops": "verify"}, false},
		{"key_ops not strings", map[string]any{"use": nil, "key_ops": []any{1}}, false},
		{"use sig but key_ops without verify", map[string]any{"key_ops": []string{"sign"}}, false},
		{"use enc but key_ops verify", map[string]any{"use": "enc", "key_ops": []string{"verify"}}, false},
		{"use not a string", map[string]any{"use": 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A usable key "a" keeps the set non-empty; "b" is the key under test.
			doc, err := json.Marshal(map[string]any{"keys": []json.RawMessage{with("a", k.rsa, nil), with("b", k.rsa2, tc.extra)}})
			if err != nil {
				t.Fatal(err)
			}
			set, err := ParseJWKS(doc)
			if err != nil {
				t.Fatal(err)
			}
			c := newClock()
			v, err := NewValidator(Options{Issuer: testIssuer, Audience: []string{testAudience},
				Algorithms: []string{"RS256"}, Keys: StaticKeys{set}, Now: c.Now, DisableCache: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Validate(context.Background(), mint(t, jose.RS256, k.rsa2, "b", baseClaims(), nil))
			if tc.usable {
				if err != nil || set.Len() != 2 {
					t.Fatalf("a usable key was refused: %v (%d keys)", err, set.Len())
				}
				return
			}
			if !errors.Is(err, ErrUnknownKey) || set.Len() != 1 {
				t.Fatalf("Validate with the unusable key: %v (%d keys), want ErrUnknownKey", err, set.Len())
			}
		})
	}
}
