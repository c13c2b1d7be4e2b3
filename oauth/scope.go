package oauth

import (
	"fmt"
	"strings"
)

// ScopeRule requires one of AnyOf for requests whose method is in Methods
// (empty: every method) and whose path, relative to the route prefix,
// matches the glob Path.
type ScopeRule struct {
	Methods []string
	Path    string
	AnyOf   []string
}

// ScopePolicy decides whether a token's scopes allow a request. Every rule
// that matches the request must be satisfied (one scope of its AnyOf; an
// empty AnyOf needs only a valid token). When rules exist but none matches,
// the request is refused: scopes are an allow-list.
type ScopePolicy struct {
	rules []scopeRule
}

type scopeRule struct {
	methods map[string]bool
	glob    []string
	anyOf   []string
}

// MaxGlobSegments caps a scope rule's path pattern.
const MaxGlobSegments = 64

// NewScopePolicy checks and compiles rules. A nil or empty list allows every
// request with a valid token.
func NewScopePolicy(rules []ScopeRule) (*ScopePolicy, error) {
	p := &ScopePolicy{}
	for i, r := range rules {
		segs, err := compileGlob(r.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: scopes[%d].path: %v", ErrConfig, i, err)
		}
		cr := scopeRule{glob: segs, anyOf: append([]string(nil), r.AnyOf...)}
		if len(r.Methods) > 0 {
			cr.methods = map[string]bool{}
			for _, m := range r.Methods {
				if m == "" || strings.ContainsAny(m, " \t") {
					return nil, fmt.Errorf("%w: scopes[%d].methods: bad method %q", ErrConfig, i, m)
				}
				cr.methods[strings.ToUpper(m)] = true
			}
		}
		for _, s := range r.AnyOf {
			if !validScopeToken(s) {
				return nil, fmt.Errorf("%w: scopes[%d].any_of: %q is not a scope token (RFC 6749 section 3.3)", ErrConfig, i, s)
			}
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

// validScopeToken is RFC 6749's scope-token: 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Check returns nil when granted satisfies the policy for this request, or
// a *ScopeError (errors.Is ErrInsufficientScope) naming the scopes of the
// first unsatisfied rule.
func (p *ScopePolicy) Check(method, path string, granted []string) error {
	if p == nil || len(p.rules) == 0 {
		return nil
	}
	method = strings.ToUpper(method)
	matched := false
	for _, r := range p.rules {
		if r.methods != nil && !r.methods[method] {
			continue
		}
		if !matchSegments(r.glob, splitPath(path)) {
			continue
		}
		matched = true
		if len(r.anyOf) == 0 {
			continue
		}
		ok := false
		for _, want := range r.anyOf {
			for _, g := range granted {
				if g == want {
					ok = true
					break
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			return &ScopeError{Required: r.anyOf}
		}
	}
	if !matched {
		return &ScopeError{}
	}
	return nil
}

// MatchGlob reports whether path matches pattern. Patterns are absolute
// slash-separated paths; within a segment * matches any run of characters
// and ? one character, never a slash; a whole segment ** matches zero or
// more segments. An invalid pattern matches nothing.
func MatchGlob(pattern, path string) bool {
	segs, err := compileGlob(pattern)
	if err != nil {
		return false
	}
	return matchSegments(segs, splitPath(path))
}

func compileGlob(pattern string) ([]string, error) {
	if !strings.HasPrefix(pattern, "/") {
		return nil, fmt.Errorf("glob %q must start with /", pattern)
	}
	segs := strings.Split(pattern[1:], "/")
	if len(segs) > MaxGlobSegments {
		return nil, fmt.Errorf("glob has more than %d segments", MaxGlobSegments)
	}
	for _, s := range segs {
		if s != "**" && strings.Contains(s, "**") {
			return nil, fmt.Errorf("** must be a whole segment in %q", pattern)
		}
	}
	return segs, nil
}

// splitPath turns an absolute path into segments; "" is treated as "/".
func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	return strings.Split(p, "/")
}

// matchSegments matches pattern segments against path segments in
// O(len(pat)*len(path)) segment comparisons (no exponential backtracking).
func matchSegments(pat, path []string) bool {
	// cur[j]: pat[:i] matches path[:j].
	cur := make([]bool, len(path)+1)
	next := make([]bool, len(path)+1)
	cur[0] = true
	for _, ps := range pat {
		clear(next)
		if ps == "**" {
			seen := false
			for j := 0; j <= len(path); j++ {
				seen = seen || cur[j]
				next[j] = seen
			}
		} else {
			for j := 1; j <= len(path); j++ {
				next[j] = cur[j-1] && matchSegment(ps, path[j-1])
			}
		}
		cur, next = next, cur
	}
	return cur[len(path)]
}

// matchSegment matches one segment with * and ? (iterative, linear backtracking).
func matchSegment(pat, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		// A '*' in the pattern is always a wildcard, even facing a literal
		// '*' in the path; trying it as a literal first would drop the
		// backtracking point and let "/admin/*x" escape "/admin/*".
		case pi < len(pat) && pat[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(pat) && (pat[pi] == '?' || pat[pi] == s[si]):
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == '*' {
		pi++
	}
	return pi == len(pat)
}
