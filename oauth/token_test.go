package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTokenFromRequest(t *testing.T) {
	tests := []struct {
		name   string
		url    string
		header []string
		want   string
		err    error
	}{
		{"bearer", "/", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", nil},
		{"scheme case-insensitive", "/", []string{"bearer tok"}, "tok", nil},
		{"extra spaces", "/", []string{"Bearer   tok"}, "tok", nil},
		{"none", "/", nil, "", ErrNoToken},
		{"basic scheme", "/", []string{"Basic dXNlcjpwYXNz"}, "", ErrNoToken},
		{"scheme only", "/", []string{"Bearer"}, "", ErrNoToken},
		{"empty token", "/", []string{"Bearer "}, "", ErrMalformed},
		{"two headers", "/", []string{"Bearer a", "Bearer b"}, "", ErrMultipleAuthorization},
		{"query token", "/x?access_token=abc", nil, "", ErrTokenInQuery},
		{"query token beside a header", "/x?a=1&access_token=", []string{"Bearer tok"}, "", ErrTokenInQuery},
		{"other query is fine", "/x?token=1", []string{"Bearer tok"}, "tok", nil},
		{"token with space inside", "/", []string{"Bearer a b"}, "", ErrMalformed},
		{"token with comma", "/", []string{"Bearer a,b"}, "", ErrMalformed},
		{"oversized", "/", []string{"Bearer " + strings.Repeat("a", MaxTokenBytes+1)}, "", ErrTokenTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.url, nil)
			for _, h := range tc.header {
				r.Header.Add("Authorization", h)
			}
			got, err := TokenFromRequest(r)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || got != tc.want {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestPreParse(t *testing.T) {
	tests := []struct {
		tok  string
		kind Kind
		err  error
	}{
		{"a.b.c", JWS, nil},
		{"abc", Opaque, nil},
		{"abc==", Opaque, nil},
		{"hvs.CAES", Opaque, nil},
		{"a.b.c.d.e", Opaque, nil},
		{"a..c", 0, ErrMalformed},
		{".b.c", 0, ErrMalformed},
		{"a.b.", 0, ErrMalformed},
		{"a.b+.c", 0, ErrMalformed},
		{"a.b.c=", 0, ErrMalformed},
		{"a=b", 0, ErrMalformed},
		{"a\x00b", 0, ErrMalformed},
		{"é", 0, ErrMalformed},
		{"", 0, ErrMalformed},
		{strings.Repeat("a", MaxTokenBytes), Opaque, nil},
		{strings.Repeat("a", MaxTokenBytes+1), 0, ErrTokenTooLarge},
	}
	for _, tc := range tests {
		kind, err := PreParse(tc.tok)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || (err == nil && kind != tc.kind) {
			t.Errorf("PreParse(%.20q) = %v, %v; want %v, %v", tc.tok, kind, err, tc.kind, tc.err)
		}
	}
}

func FuzzPreParse(f *testing.F) {
	for _, s := range []string{"a.b.c", "eyJhbGciOiJub25lIn0.e30.", "hvs.x", "a..b", "Bearer x", "==", "a.b.c="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		kind, err := PreParse(tok)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTokenTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
		} else {
			if len(tok) == 0 || len(tok) > MaxTokenBytes {
				t.Fatalf("accepted a token of %d bytes", len(tok))
			}
			if kind == JWS {
				parts := strings.Split(tok, ".")
				if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
					t.Fatalf("JWS %q does not have three non-empty segments", tok)
				}
			}
			if strings.ContainsAny(tok, " ,\"\\\r\n\x00") {
				t.Fatalf("accepted a token with a separator: %q", tok)
			}
		}
		// The header parser agrees with PreParse and never panics.
		if !strings.HasPrefix(tok, " ") {
			got, herr := ParseAuthorization("Bearer " + tok)
			if (herr == nil) != (err == nil) || (herr == nil && got != tok) {
				t.Fatalf("ParseAuthorization(Bearer %q) = %q, %v but PreParse = %v", tok, got, herr, err)
			}
		}
	})
}

// FuzzValidate feeds arbitrary tokens to a validator: never a panic, never a success.
func FuzzValidate(f *testing.F) {
	k := tk(f)
	c := newClock()
	set, err := ParseJWKS(jwkJSON(f, pubJWK("rsa1", "RS256", k.rsa), pubJWK("ec1", "ES256", k.p256)))
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewValidator(Options{Issuer: testIssuer, Audience: []string{testAudience},
		Algorithms: []string{"RS256", "ES256", "HS256"}, Keys: StaticKeys{set}, Now: c.Now})
	if err != nil {
		f.Fatal(err)
	}
	valid := mint(f, "RS256", k.rsa, "rsa1", baseClaims(), nil)
	f.Add(valid[:len(valid)-2] + "AA")
	f.Add(strings.Replace(valid, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.c2ln")
	f.Add("eyJhbGciOiJIUzI1NiIsImtpZCI6InJzYTEifQ.e30.c2ln")
	f.Fuzz(func(t *testing.T, tok string) {
		if tok == valid {
			return
		}
		if got, err := v.Validate(context.Background(), tok); err == nil {
			t.Fatalf("fuzzed token %q validated: %+v", tok, got)
		}
	})
}
