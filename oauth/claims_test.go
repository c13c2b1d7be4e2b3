package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func keycloakClaims() map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(`{
		"sub": "alice",
		"realm_access": {"roles": ["offline_access", "admin"]},
		"resource_access": {"billing": {"roles": ["reader"]}},
		"groups": ["ops", 7, null],
		"tier": "gold",
		"https://app.example/roles": ["auditor"],
		"https://app": {"example/roles": ["decoy"]},
		"nested": {"a": {"b": {"c": "deep"}}}
	}`), &m)
	return m
}

func TestClaimPolicy(t *testing.T) {
	p, err := NewClaimPolicy([]ClaimRule{
		{Methods: []string{"delete"}, Path: "/admin/**", Require: map[string][]string{"realm_access.roles": {"admin"}}},
		{Path: "/billing/*", Require: map[string][]string{"resource_access.billing.roles": {"reader", "writer"}, "tier": {"gold"}}},
		{Path: "/audit/**", Require: map[string][]string{"https://app.example/roles": {"auditor"}}},
		{Path: "/deep", Require: map[string][]string{"nested.a.b.c": {"deep"}}},
		{Path: "/groups", Require: map[string][]string{"groups": {"7"}}},
		{Path: "/case", Require: map[string][]string{"tier": {"Gold"}}},
		{Path: "/obj", Require: map[string][]string{"nested": {"a"}}},
		{Path: "/missing", Require: map[string][]string{"realm_access.roles.admin": {"admin"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		mut          func(map[string]any)
		fail         string // claim path of the failing rule; "" passes
	}{
		{"DELETE", "/admin/users/1", nil, ""},
		{"GET", "/admin/users/1", func(m map[string]any) { delete(m, "realm_access") }, ""}, // rule is DELETE only
		{"DELETE", "/admin/users/1", func(m map[string]any) { delete(m, "realm_access") }, "realm_access.roles"},
		{"DELETE", "/admin", func(m map[string]any) {
			m["realm_access"] = map[string]any{"roles": "administrator"} // whole value, not a substring
		}, "realm_access.roles"},
		{"DELETE", "/admin", func(m map[string]any) { m["realm_access"] = map[string]any{"roles": "admin"} }, ""}, // a string claim
		{"DELETE", "/admin", func(m map[string]any) { m["realm_access"] = "admin" }, "realm_access.roles"},        // not an object
		{"DELETE", "/admin", func(m map[string]any) { m["realm_access.roles"] = []any{"admin"} }, ""},             // literal dotted name
		{"GET", "/billing/7", nil, ""},
		{"GET", "/billing/7", func(m map[string]any) { m["tier"] = "silver" }, "tier"}, // every path of a rule must hold
		{"GET", "/billing/7/x", func(m map[string]any) { m["tier"] = "silver" }, ""},   // glob does not match
		{"GET", "/audit/log", nil, ""},
		{"GET", "/audit/log", func(m map[string]any) { delete(m, "https://app.example/roles") }, "https://app.example/roles"}, // the decoy object never stands in
		{"GET", "/deep", nil, ""},
		{"GET", "/groups", nil, "groups"}, // numbers are not strings
		{"GET", "/case", nil, "tier"},     // case-sensitive
		{"GET", "/obj", nil, "nested"},    // an object never matches
		{"GET", "/missing", nil, "realm_access.roles.admin"},
		{"GET", "/unruled", func(m map[string]any) { clear(m) }, ""}, // no rule matches: pass
	} {
		c := keycloakClaims()
		if tc.mut != nil {
			tc.mut(c)
		}
		err := p.Check(tc.method, tc.path, c)
		if tc.fail == "" {
			if err != nil {
				t.Errorf("%s %s: %v", tc.method, tc.path, err)
			}
			continue
		}
		var ce *ClaimError
		if !errors.Is(err, ErrClaimRequired) || !errors.As(err, &ce) || ce.Claim != tc.fail {
			t.Errorf("%s %s: got %v, want claim %q refused", tc.method, tc.path, err, tc.fail)
		}
		if Reason(err) != "claim_required" {
			t.Errorf("reason %q", Reason(err))
		}
	}
	var nilPolicy *ClaimPolicy
	if err := nilPolicy.Check("GET", "/", nil); err != nil {
		t.Fatal(err)
	}
}

func TestClaimPolicyConfig(t *testing.T) {
	for _, rules := range [][]ClaimRule{
		{{Path: "admin", Require: map[string][]string{"a": {"b"}}}},
		{{Path: "/a/**x", Require: map[string][]string{"a": {"b"}}}},
		{{Path: "/a", Methods: []string{"GE T"}, Require: map[string][]string{"a": {"b"}}}},
		{{Path: "/a"}},
		{{Path: "/a", Require: map[string][]string{"a..b": {"b"}}}},
		{{Path: "/a", Require: map[string][]string{"": {"b"}}}},
		{{Path: "/a", Require: map[string][]string{"a": {}}}},
		{{Path: "/a", Require: map[string][]string{"a": {""}}}},
		{{Path: "/a", Require: map[string][]string{strings.Repeat("a.", MaxClaimPathSegments) + "a": {"x"}}}},
	} {
		if _, err := NewClaimPolicy(rules); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: got %v, want ErrConfig", rules, err)
		}
	}
}

// TestRFC9068RequiredClaims: where typ must be at+jwt, sub, client_id, iat
// and jti are required (RFC 9068 section 2.2); azp does not stand in for
// client_id.
func TestRFC9068RequiredClaims(t *testing.T) {
	k := tk(t)
	srv := newJWKSServer(t, jwkJSON(t, pubJWK("k1", "RS256", k.rsa)))
	clock := newClock()
	src, err := NewJWKSSource(JWKSOptions{URL: srv.URL, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"at+jwt", ""} {
		v, err := NewValidator(Options{Issuer: testIssuer, Audience: []string{testAudience}, Algorithms: []string{"RS256"},
			RequireTyp: typ, Keys: src, Now: clock.Now, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, drop := range []string{"sub", "client_id", "iat", "jti"} {
			c := baseClaims()
			delete(c, drop)
			if drop == "client_id" {
				c["azp"] = "billing-ui"
			}
			_, err := v.Validate(context.Background(), mint(t, jose.RS256, k.rsa, "k1", c, nil))
			if typ == "" {
				if err != nil {
					t.Errorf("typ unset, no %s: %v", drop, err)
				}
				continue
			}
			if !errors.Is(err, ErrMissingClaim) || Reason(err) != "missing_claim" {
				t.Errorf("no %s: got %v, want ErrMissingClaim", drop, err)
			}
		}
		c := baseClaims()
		c["jti"] = 7 // a registered claim of the wrong type: refused with or without the profile
		if _, err := v.Validate(context.Background(), mint(t, jose.RS256, k.rsa, "k1", c, nil)); !errors.Is(err, ErrInvalidClaims) {
			t.Errorf("numeric jti: %v", err)
		}
	}
}

func FuzzLookupClaim(f *testing.F) {
	f.Add(`{"realm_access":{"roles":["admin"]}}`, "realm_access.roles")
	f.Add(`{"a.b":{"c":"x"},"a":{"b.c":"y"}}`, "a.b.c")
	f.Add(`{"a":[{"b":1}]}`, "a.0.b")
	f.Fuzz(func(t *testing.T, doc, path string) {
		var m map[string]any
		if json.Unmarshal([]byte(doc), &m) != nil {
			return
		}
		segs, err := splitClaimPath(path)
		if err != nil {
			return
		}
		v := LookupClaim(m, segs)
		_ = claimHolds(v, []string{"admin"})
		if len(segs) == 1 {
			if w, ok := m[path]; ok && v == nil && w != nil {
				t.Fatalf("top-level key %q not found", path)
			}
		}
	})
}
