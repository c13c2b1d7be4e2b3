package oauth

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/**", "/", true},
		{"/*", "/*0", true}, // a literal * in the path must not use up the pattern's *
		{"/admin/*", "/admin/*x", true},
		{"/a*b", "/a*xb", true},
		{"/**", "", true},
		{"/**", "/a/b/c", true},
		{"/orders/**", "/orders", true},
		{"/orders/**", "/orders/", true},
		{"/orders/**", "/orders/1/lines", true},
		{"/orders/**", "/ordersX", false},
		{"/orders/*", "/orders/1", true},
		{"/orders/*", "/orders/1/lines", false},
		{"/orders/*/lines", "/orders/42/lines", true},
		{"/orders/*/lines", "/orders/lines", false},
		{"/a/**/z", "/a/z", true},
		{"/a/**/z", "/a/b/c/z", true},
		{"/a/**/z", "/a/b/c/y", false},
		{"/v?/x", "/v1/x", true},
		{"/v?/x", "/v10/x", false},
		{"/*.json", "/a.json", true},
		{"/*.json", "/a/b.json", false},
		{"/exact", "/exact", true},
		{"/exact", "/Exact", false},
		{"relative", "/relative", false},
		{"/a**", "/abc", false}, // ** only as a whole segment
	}
	for _, tc := range tests {
		if got := MatchGlob(tc.pattern, tc.path); got != tc.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestScopePolicy(t *testing.T) {
	p, err := NewScopePolicy([]ScopeRule{
		{Methods: []string{"GET"}, Path: "/**", AnyOf: []string{"billing.read", "billing.admin"}},
		{Methods: []string{"post", "PUT", "DELETE"}, Path: "/**", AnyOf: []string{"billing.write"}},
		{Path: "/admin/**", AnyOf: []string{"billing.admin"}},
		{Methods: []string{"GET"}, Path: "/health", AnyOf: nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		method   string
		path     string
		granted  []string
		wantErr  bool
		required string
	}{
		{"read ok", "GET", "/invoices/1", []string{"billing.read"}, false, ""},
		{"read via second any_of", "GET", "/invoices", []string{"billing.admin"}, false, ""},
		{"read missing", "GET", "/invoices", []string{"billing.write"}, true, "billing.read billing.admin"},
		{"write ok, lower-case method in config", "POST", "/invoices", []string{"billing.write"}, false, ""},
		{"write missing", "DELETE", "/invoices/1", []string{"billing.read"}, true, "billing.write"},
		{"every matching rule applies", "GET", "/admin/users", []string{"billing.read"}, true, "billing.admin"},
		{"admin ok", "GET", "/admin/users", []string{"billing.admin"}, false, ""},
		{"no rule covers PATCH: denied", "PATCH", "/invoices/1", []string{"billing.write", "billing.read"}, true, ""},
		{"no scopes at all", "GET", "/invoices", nil, true, "billing.read billing.admin"},
		{"scope is exact, not prefix", "GET", "/invoices", []string{"billing.reader", "billing"}, true, "billing.read billing.admin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Check(tc.method, tc.path, tc.granted)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("got %v", err)
				}
				return
			}
			var se *ScopeError
			if !errors.Is(err, ErrInsufficientScope) || !errors.As(err, &se) {
				t.Fatalf("got %v, want a ScopeError", err)
			}
			if got := strings.Join(se.Required, " "); got != tc.required {
				t.Fatalf("required %q, want %q", got, tc.required)
			}
		})
	}
	var none *ScopePolicy
	if err := none.Check("GET", "/", nil); err != nil {
		t.Fatalf("nil policy: %v", err)
	}
}

func TestScopePolicyConfig(t *testing.T) {
	bad := [][]ScopeRule{
		{{Path: "no-slash", AnyOf: []string{"a"}}},
		{{Path: "/a**", AnyOf: []string{"a"}}},
		{{Path: "/", AnyOf: []string{`bad"scope`}}},
		{{Path: "/", AnyOf: []string{"two words"}}},
		{{Path: "/", AnyOf: []string{""}}},
		{{Path: "/", Methods: []string{"G ET"}}},
		{{Path: "/" + strings.Repeat("a/", MaxGlobSegments+1)}},
	}
	for _, rules := range bad {
		if _, err := NewScopePolicy(rules); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: got %v, want ErrConfig", rules, err)
		}
	}
}

// globRegexp is an independent oracle for MatchGlob, for ASCII input.
func globRegexp(pattern string) *regexp.Regexp {
	segs := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	var b strings.Builder
	b.WriteString("(?s)^") // (?s): a path may hold any byte, newlines too
	for i, s := range segs {
		if s == "**" {
			// zero or more whole segments
			if i == len(segs)-1 {
				b.WriteString("(/.*)?")
			} else {
				b.WriteString("(/[^/]*)*?")
			}
			continue
		}
		b.WriteString("/")
		for _, r := range s {
			switch r {
			case '*':
				b.WriteString("[^/]*")
			case '?':
				b.WriteString("[^/]")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func FuzzMatchGlob(f *testing.F) {
	for _, s := range [][2]string{{"/**", "/a/b"}, {"/a/*/c", "/a/b/c"}, {"/a/**/z", "/a/z"}, {"/v?/x", "/v1/x"},
		{"/**/**", "/"}, {"/*a*b*", "/xaybz"}, {"/a/**", "/a"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		got := MatchGlob(pattern, path)
		if _, err := compileGlob(pattern); err != nil {
			if got {
				t.Fatalf("invalid pattern %q matched", pattern)
			}
			return
		}
		if !isASCII(pattern) || !isASCII(path) || len(pattern) > 200 || len(path) > 200 {
			return
		}
		p := path
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		if want := globRegexp(pattern).MatchString(p); got != want {
			t.Fatalf("MatchGlob(%q, %q) = %v, oracle says %v", pattern, path, got, want)
		}
		// Literal patterns match themselves; /** matches everything.
		if !strings.ContainsAny(path, "*?") && strings.HasPrefix(path, "/") && !strings.Contains(path, "**") && !MatchGlob(path, path) {
			t.Fatalf("literal %q does not match itself", path)
		}
		if !MatchGlob("/**", path) {
			t.Fatalf("/** does not match %q", path)
		}
	})
}

func FuzzScopeCheck(f *testing.F) {
	f.Add("GET", "/invoices/1", "billing.read other")
	f.Add("PATCH", "/admin/x", "")
	f.Fuzz(func(t *testing.T, method, path, granted string) {
		p, err := NewScopePolicy([]ScopeRule{
			{Methods: []string{"GET"}, Path: "/**", AnyOf: []string{"r"}},
			{Path: "/admin/**", AnyOf: []string{"a"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		g := strings.Fields(granted)
		err = p.Check(method, path, g)
		if err != nil && !errors.Is(err, ErrInsufficientScope) {
			t.Fatalf("unexpected error %v", err)
		}
		// Without any granted scope, a GET can never pass.
		if len(g) == 0 && strings.EqualFold(method, "GET") && err == nil {
			t.Fatal("GET allowed without scopes")
		}
	})
}
