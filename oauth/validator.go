// Package oauth validates OAuth 2.0 bearer access tokens: JWTs (JWS compact)
// verified with go-jose against a route's key set, and opaque tokens through
// RFC 7662 introspection. It is pure validation: no HTTP framework and no
// secrets backend. It consumes the small interfaces KeySource, SecretFields
// and ClientCredentials, which the secrets package satisfies.
//
// Security rules enforced here: the route's algorithm allow-list is applied
// before any key is touched; none is never accepted; jku, x5u, jwk, x5c, b64
// and crit headers are refused; kid is only a lookup key; the token's alg is
// bound to the key's type; iss, aud, exp (required), nbf and iat are checked
// with a leeway; and a cached result is honoured only while the key that
// verified it is still in the key set.
//
// Beyond the token itself: key sets found by OIDC / RFC 8414 discovery
// (DiscoverySource), claim rules on dotted claim paths (ClaimPolicy), RFC
// 9068's required claims where typ is at+jwt, DPoP proofs (RFC 9449,
// DPoPVerifier, with jti replay through a ReplayStore), certificate-bound
// tokens (RFC 8705, CheckCertificateBinding) and API keys stored as SHA-256
// entries in a secret (APIKeys).
package oauth

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Options configure a Validator. Issuer, Audience and Algorithms are
// required; Keys, Introspection or both must be set.
type Options struct {
	// Issuer must equal the iss claim exactly.
	Issuer string
	// Audience: aud must name at least one of these.
	Audience []string
	// Algorithms is the JWS alg allow-list (RS/PS/ES 256-512, EdDSA, HS 256-512).
	Algorithms []string
	// Leeway tolerates clock skew on exp, nbf and iat. Zero means none.
	Leeway time.Duration
	// RequireTyp, when set, must match the typ header (e.g. at+jwt); the
	// "application/" prefix and case are ignored (RFC 7515 section 4.1.9).
	RequireTyp string
	// Keys verifies JWTs; nil means JWTs go to introspection.
	Keys KeySource
	// Introspection validates opaque tokens (and JWTs when Keys is nil).
	Introspection *IntrospectionOptions
	// CacheEntries bounds the verified-token cache. Default DefaultCacheEntries.
	CacheEntries int
	// DisableCache turns the verified-token cache off (benchmarks, debugging).
	DisableCache bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives key-source events; nil discards.
	Logger *slog.Logger
}

// Validator validates bearer tokens for one route. Safe for concurrent use.
type Validator struct {
	o     Options
	algs  []jose.SignatureAlgorithm
	cache *tokenCache[verified]
	intro *introspector
}

// verified is a cached JWT result and the key material that produced it.
type verified struct {
	tok   *Token
	thumb [32]byte
}

var knownAlgs = map[jose.SignatureAlgorithm]bool{
	jose.RS256: true, jose.RS384: true, jose.RS512: true,
	jose.PS256: true, jose.PS384: true, jose.PS512: true,
	jose.ES256: true, jose.ES384: true, jose.ES512: true,
	jose.EdDSA: true,
	jose.HS256: true, jose.HS384: true, jose.HS512: true,
}

// NewValidator checks the options and builds a Validator.
func NewValidator(o Options) (*Validator, error) {
	var problems []string
	if o.Issuer == "" {
		problems = append(problems, "issuer is required")
	}
	if len(o.Audience) == 0 {
		problems = append(problems, "audience is required")
	}
	if o.Keys == nil && o.Introspection == nil {
		problems = append(problems, "a key source or introspection is required")
	}
	if o.Keys != nil && len(o.Algorithms) == 0 {
		problems = append(problems, "algorithms is required")
	}
	if o.Leeway < 0 {
		problems = append(problems, "leeway is negative")
	}
	v := &Validator{o: o}
	for _, a := range o.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		if !knownAlgs[alg] {
			problems = append(problems, fmt.Sprintf("algorithm %q is not supported", a))
			continue
		}
		v.algs = append(v.algs, alg)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	if v.o.Now == nil {
		v.o.Now = time.Now
	}
	if v.o.Logger == nil {
		v.o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.DisableCache {
		v.cache = newTokenCache[verified](o.CacheEntries)
	}
	if o.Introspection != nil {
		in, err := newIntrospector(*o.Introspection, v.o)
		if err != nil {
			return nil, err
		}
		v.intro = in
	}
	return v, nil
}

// Validate checks a raw bearer token and returns what it asserts. The
// returned Token may be shared with other callers: treat it as read-only.
func (v *Validator) Validate(ctx context.Context, raw string) (*Token, error) {
	kind, err := PreParse(raw)
	if err != nil {
		return nil, err
	}
	fp := FingerprintOf(raw)
	if kind == Opaque || v.o.Keys == nil {
		if v.intro == nil {
			return nil, fmt.Errorf("%w: not a three-segment JWT", ErrMalformed)
		}
		return v.intro.introspect(ctx, raw, fp)
	}
	now := v.o.Now()
	if v.cache != nil {
		if hit, ok := v.cache.get(fp, now); ok {
			set, err := v.o.Keys.Keys(ctx)
			if err != nil {
				return nil, err
			}
			if set.Contains(hit.thumb) {
				return hit.tok, nil
			}
			// The key that verified it is gone: the token is revoked with it.
			v.cache.remove(fp)
		}
	}
	tok, thumb, err := v.verifyJWT(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(fp, verified{tok: tok, thumb: thumb}, tok.Expiry, now)
	}
	return tok, nil
}

var forbiddenHeaders = []jose.HeaderKey{"jku", "x5u", "b64"}

func (v *Validator) verifyJWT(ctx context.Context, raw string, now time.Time) (*Token, [32]byte, error) {
	var none [32]byte
	jws, err := jose.ParseSignedCompact(raw, v.algs)
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			return nil, none, ErrAlgorithmNotAllowed
		}
		return nil, none, fmt.Errorf("%w: JWS does not parse", ErrMalformed)
	}
	if len(jws.Signatures) != 1 {
		return nil, none, fmt.Errorf("%w: not exactly one signature", ErrMalformed)
	}
	sig := jws.Signatures[0]
	h := sig.Header
	if sig.Unprotected.Algorithm != "" || len(sig.Unprotected.ExtraHeaders) > 0 || sig.Unprotected.KeyID != "" {
		return nil, none, fmt.Errorf("%w: unprotected header", ErrMalformed)
	}
	if h.JSONWebKey != nil {
		return nil, none, fmt.Errorf("%w: jwk", ErrForbiddenHeader)
	}
	// Empty roots: this only detects an x5c header, it never trusts one.
	if _, err := h.Certificates(x509.VerifyOptions{Roots: x509.NewCertPool()}); !errors.Is(err, jose.ErrMissingX5cHeader) {
		return nil, none, fmt.Errorf("%w: x5c", ErrForbiddenHeader)
	}
	for _, k := range forbiddenHeaders {
		if _, ok := h.ExtraHeaders[k]; ok {
			return nil, none, fmt.Errorf("%w: %s", ErrForbiddenHeader, k)
		}
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, none, ErrCriticalHeader
	}
	if v.o.RequireTyp != "" {
		typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
		if !typEqual(typ, v.o.RequireTyp) {
			return nil, none, ErrWrongType
		}
	}
	if len(h.KeyID) > MaxKeyIDBytes {
		return nil, none, fmt.Errorf("%w: kid too long", ErrMalformed)
	}

	set, err := v.o.Keys.Keys(ctx)
	if err != nil {
		return nil, none, err
	}
	cands, err := set.lookup(h.KeyID, h.Algorithm)
	if errors.Is(err, ErrUnknownKey) {
		if r, ok := v.o.Keys.(Refresher); ok {
			if set2, rerr := r.RefreshUnknownKey(ctx); rerr == nil {
				cands, err = set2.lookup(h.KeyID, h.Algorithm)
			}
		}
	}
	if err != nil {
		return nil, none, err
	}
	var payload []byte
	var key *Key
	for _, k := range cands {
		if p, err := jws.Verify(k.key); err == nil {
			payload, key = p, k
			break
		}
	}
	if key == nil {
		return nil, none, ErrInvalidSignature
	}
	tok, err := v.claims(payload, now)
	if err != nil {
		return nil, none, err
	}
	tok.KeyID = h.KeyID
	return tok, key.Thumbprint, nil
}

// typEqual compares media types per RFC 7515 section 4.1.9.
func typEqual(got, want string) bool {
	norm := func(s string) string {
		s = strings.ToLower(s)
		return strings.TrimPrefix(s, "application/")
	}
	return got != "" && norm(got) == norm(want)
}

// claims decodes a verified payload and checks the registered claims.
func (v *Validator) claims(payload []byte, now time.Time) (*Token, error) {
	all, err := decodeObject(payload)
	if err != nil {
		return nil, err
	}
	var c jwt.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: registered claims have the wrong types", ErrInvalidClaims)
	}
	if c.Expiry == nil {
		return nil, ErrMissingExpiry
	}
	if err := checkClaims(c, v.o, now); err != nil {
		return nil, err
	}
	if typEqual(v.o.RequireTyp, "at+jwt") {
		if err := requireAccessTokenClaims(all); err != nil {
			return nil, err
		}
	}
	tok := &Token{
		Subject:  c.Subject,
		Issuer:   c.Issuer,
		Audience: []string(c.Audience),
		Expiry:   c.Expiry.Time(),
		Claims:   all,
	}
	tok.ClientID = stringClaim(all, "client_id")
	if tok.ClientID == "" {
		tok.ClientID = stringClaim(all, "azp")
	}
	tok.Scopes = scopesOf(all)
	return tok, nil
}

// checkClaims applies iss, aud, exp, nbf and iat with the leeway.
func checkClaims(c jwt.Claims, o Options, now time.Time) error {
	if c.Issuer != o.Issuer {
		return ErrWrongIssuer
	}
	err := c.ValidateWithLeeway(jwt.Expected{AnyAudience: jwt.Audience(o.Audience), Time: now}, o.Leeway)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrInvalidAudience):
		return ErrWrongAudience
	case errors.Is(err, jwt.ErrExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrNotValidYet):
		return ErrNotYetValid
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return ErrIssuedInFuture
	}
	return fmt.Errorf("%w: %v", ErrInvalidClaims, err)
}

// requireAccessTokenClaims enforces RFC 9068 section 2.2: a JWT access
// token carries sub, client_id, iat and jti (iss, exp and aud are checked
// by checkClaims). A token an IdP minted without them is some other JWT.
func requireAccessTokenClaims(all map[string]any) error {
	for _, k := range []string{"sub", "client_id", "jti"} {
		if s, ok := all[k].(string); !ok || s == "" {
			return fmt.Errorf("%w: %s (RFC 9068)", ErrMissingClaim, k)
		}
	}
	if _, ok := all["iat"].(json.Number); !ok {
		return fmt.Errorf("%w: iat (RFC 9068)", ErrMissingClaim)
	}
	return nil
}

// decodeObject decodes a JSON object keeping numbers exact.
func decodeObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil || d.More() {
		return nil, fmt.Errorf("%w: payload is not one JSON object", ErrInvalidClaims)
	}
	return m, nil
}

func stringClaim(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// scopesOf reads scope (space-separated string) or, when absent, scp (array
// of strings, or a space-separated string as some IdPs send).
func scopesOf(m map[string]any) []string {
	if s, ok := m["scope"].(string); ok {
		return strings.Fields(s)
	}
	switch scp := m["scp"].(type) {
	case string:
		return strings.Fields(scp)
	case []any:
		out := make([]string, 0, len(scp))
		for _, e := range scp {
			if s, ok := e.(string); ok && s != "" && !strings.ContainsAny(s, " \t") {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
