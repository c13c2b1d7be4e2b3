package oauth

import (
	"fmt"
	"slices"
	"strings"
)

// ClaimRule requires, for requests whose method is in Methods (empty: every
// method) and whose path under the route prefix matches the glob Path (the
// scope rules' glob), that every claim path in Require holds one of its
// listed values.
type ClaimRule struct {
	Methods []string
	Path    string
	// Require maps a dotted claim path (realm_access.roles) to the values
	// of which the claim must hold at least one.
	Require map[string][]string
}

// ClaimPolicy checks claim rules. Unlike scopes, claim rules are not an
// allow-list: a request no rule matches passes (the scope rules decide
// whether it is covered at all). Every matching rule must hold.
type ClaimPolicy struct {
	rules []claimRule
}

type claimRule struct {
	methods map[string]bool
	glob    []string
	require []claimReq // sorted by path, so the first failure is deterministic
}

type claimReq struct {
	path  string
	segs  []string
	anyOf []string
}

// Claim path bounds, checked when the policy is built.
const (
	// MaxClaimPathSegments caps the depth of a dotted claim path.
	MaxClaimPathSegments = 16
	// MaxClaimArray caps how many array elements one check reads.
	MaxClaimArray = 1024
)

// NewClaimPolicy checks and compiles rules; nil or empty allows everything.
func NewClaimPolicy(rules []ClaimRule) (*ClaimPolicy, error) {
	p := &ClaimPolicy{}
	for i, r := range rules {
		segs, err := compileGlob(r.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: claims[%d].path: %v", ErrConfig, i, err)
		}
		methods, err := compileMethods(r.Methods)
		if err != nil {
			return nil, fmt.Errorf("%w: claims[%d].methods: %v", ErrConfig, i, err)
		}
		if len(r.Require) == 0 {
			return nil, fmt.Errorf("%w: claims[%d].require: at least one claim", ErrConfig, i)
		}
		cr := claimRule{methods: methods, glob: segs}
		for path, vals := range r.Require {
			cs, err := splitClaimPath(path)
			if err != nil {
				return nil, fmt.Errorf("%w: claims[%d].require: %v", ErrConfig, i, err)
			}
			if len(vals) == 0 || slices.Contains(vals, "") {
				return nil, fmt.Errorf("%w: claims[%d].require[%q]: at least one non-empty value", ErrConfig, i, path)
			}
			cr.require = append(cr.require, claimReq{path: path, segs: cs, anyOf: slices.Clone(vals)})
		}
		slices.SortFunc(cr.require, func(a, b claimReq) int { return strings.Compare(a.path, b.path) })
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

// compileMethods upper-cases a method list; nil for "every method".
func compileMethods(ms []string) (map[string]bool, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	out := make(map[string]bool, len(ms))
	for _, m := range ms {
		if m == "" || strings.ContainsAny(m, " \t") {
			return nil, fmt.Errorf("bad method %q", m)
		}
		out[strings.ToUpper(m)] = true
	}
	return out, nil
}

// splitClaimPath splits a dotted claim path, refusing empty segments.
func splitClaimPath(path string) ([]string, error) {
	segs := strings.Split(path, ".")
	if len(segs) > MaxClaimPathSegments {
		return nil, fmt.Errorf("claim path %q is deeper than %d", path, MaxClaimPathSegments)
	}
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("claim path %q has an empty segment", path)
		}
	}
	return segs, nil
}

// Check returns nil when claims satisfy every rule matching the request, or
// a *ClaimError (errors.Is ErrClaimRequired) naming the first failing path.
func (p *ClaimPolicy) Check(method, path string, claims map[string]any) error {
	if p == nil || len(p.rules) == 0 {
		return nil
	}
	method = strings.ToUpper(method)
	segs := splitPath(path)
	for _, r := range p.rules {
		if r.methods != nil && !r.methods[method] {
			continue
		}
		if !matchSegments(r.glob, segs) {
			continue
		}
		for _, req := range r.require {
			if !claimHolds(LookupClaim(claims, req.segs), req.anyOf) {
				return &ClaimError{Claim: req.path}
			}
		}
	}
	return nil
}

// LookupClaim walks nested JSON objects along segs. At each level the
// longest run of segments that is itself a key wins, so a namespaced claim
// whose name holds dots ("https://app.example/roles") is found as written,
// before "https://app" is tried as an object. The claims were signed by the
// issuer, so which spelling it chose is the issuer's, not the client's. A
// missing path yields nil.
func LookupClaim(claims map[string]any, segs []string) any {
	cur := claims
	for len(segs) > 0 {
		found := false
		for n := len(segs); n >= 1; n-- {
			v, ok := cur[strings.Join(segs[:n], ".")]
			if !ok {
				continue
			}
			segs = segs[n:]
			if len(segs) == 0 {
				return v
			}
			m, isObj := v.(map[string]any)
			if !isObj {
				return nil
			}
			cur, found = m, true
			break
		}
		if !found {
			return nil
		}
	}
	return nil
}

// claimHolds reports whether v (a string, or an array whose string elements
// count) equals one of anyOf exactly.
func claimHolds(v any, anyOf []string) bool {
	switch x := v.(type) {
	case string:
		return slices.Contains(anyOf, x)
	case []any:
		for i, e := range x {
			if i >= MaxClaimArray {
				return false
			}
			if s, ok := e.(string); ok && slices.Contains(anyOf, s) {
				return true
			}
		}
	case []string:
		for i, s := range x {
			if i >= MaxClaimArray {
				return false
			}
			if slices.Contains(anyOf, s) {
				return true
			}
		}
	}
	return false
}
