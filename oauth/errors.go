package oauth

import (
	"errors"
	"strings"
)

// Each distinguishable failure has one sentinel; callers test with errors.Is.
// The HTTP response is derived from these by the rest package, never from the text.
var (
	// Request shape: RFC 6750 invalid_request (400).
	ErrMultipleAuthorization = errors.New("oauth: more than one Authorization header")
	ErrTokenInQuery          = errors.New("oauth: access token in the query string refused")

	// No credentials for this scheme: 401 without an error code.
	ErrNoToken = errors.New("oauth: no bearer token")

	// Token shape, checked before any parsing (invalid_token).
	ErrTokenTooLarge = errors.New("oauth: token exceeds the size limit")
	ErrMalformed     = errors.New("oauth: token is malformed")

	// JOSE header (invalid_token).
	ErrAlgorithmNotAllowed = errors.New("oauth: signature algorithm not in the allow-list")
	ErrForbiddenHeader     = errors.New("oauth: jku, x5u, jwk, x5c or b64 header refused")
	ErrCriticalHeader      = errors.New("oauth: crit header refused")
	ErrWrongType           = errors.New("oauth: typ header is not the required type")

	// Keys and signature (invalid_token).
	ErrUnknownKey       = errors.New("oauth: no key in the key set matches the token")
	ErrKeyMismatch      = errors.New("oauth: key type or algorithm does not match the token's alg")
	ErrInvalidSignature = errors.New("oauth: signature does not verify")

	// Claims (invalid_token).
	ErrExpired        = errors.New("oauth: token is expired")
	ErrMissingExpiry  = errors.New("oauth: token has no exp claim")
	ErrNotYetValid    = errors.New("oauth: token is not yet valid (nbf)")
	ErrIssuedInFuture = errors.New("oauth: token is issued in the future (iat)")
	ErrWrongIssuer    = errors.New("oauth: iss is not the configured issuer")
	ErrWrongAudience  = errors.New("oauth: aud names none of the configured audiences")
	ErrInvalidClaims  = errors.New("oauth: claims are not a valid JSON object")
	ErrInactive       = errors.New("oauth: introspection reports the token inactive")

	// Claims a profile requires (invalid_token): RFC 9068 section 2.2 where typ is at+jwt.
	ErrMissingClaim = errors.New("oauth: token lacks a claim its profile requires")

	// Proof of possession (invalid_token): the token is bound to a key or
	// certificate the request does not prove.
	ErrCertificateBinding = errors.New("oauth: token is not bound to this connection's client certificate")
	ErrDPoPBinding        = errors.New("oauth: token is not bound to the DPoP proof's key")
	ErrDPoPRequired       = errors.New("oauth: token must be presented with a DPoP proof")

	// DPoP proof (401 invalid_dpop_proof, RFC 9449 section 7.1).
	ErrDPoPProof  = errors.New("oauth: DPoP proof is invalid")
	ErrDPoPReplay = errors.New("oauth: DPoP proof was already used")

	// API keys (401 invalid_token).
	ErrInvalidAPIKey = errors.New("oauth: API key is not valid")

	// Authorization (403 insufficient_scope).
	ErrInsufficientScope = errors.New("oauth: token lacks a required scope")
	// Authorization (403 access_denied): a claim rule does not hold.
	ErrClaimRequired = errors.New("oauth: token lacks a required claim value")

	// Dependencies, not the client's fault (503).
	ErrKeysUnavailable          = errors.New("oauth: verification keys are not available")
	ErrIntrospectionUnavailable = errors.New("oauth: introspection endpoint is not available")
	ErrReplayUnavailable        = errors.New("oauth: DPoP replay store is not available")
	ErrAPIKeysUnavailable       = errors.New("oauth: API key secret is not available")

	// Configuration (returned by constructors only).
	ErrConfig = errors.New("oauth: invalid configuration")
)

// ScopeError is returned when a request needs a scope the token lacks. It
// matches ErrInsufficientScope with errors.Is.
type ScopeError struct {
	// Required lists the scopes of which one would have satisfied the failing
	// rule; empty when no rule covers the request (deny by default).
	Required []string
}

// Error names the scopes that would have satisfied the failing rule.
func (e *ScopeError) Error() string {
	if len(e.Required) == 0 {
		return ErrInsufficientScope.Error() + ": no scope rule covers this request"
	}
	return ErrInsufficientScope.Error() + ": one of " + strings.Join(e.Required, " ")
}

// Is makes errors.Is(err, ErrInsufficientScope) true.
func (e *ScopeError) Is(target error) bool { return target == ErrInsufficientScope }

// reasons maps each sentinel to a short stable code for logs and metrics.
var reasons = []struct {
	err  error
	code string
}{
	{ErrMultipleAuthorization, "multiple_authorization"},
	{ErrTokenInQuery, "token_in_query"},
	{ErrNoToken, "no_token"},
	{ErrTokenTooLarge, "token_too_large"},
	{ErrMalformed, "malformed"},
	{ErrAlgorithmNotAllowed, "algorithm_not_allowed"},
	{ErrForbiddenHeader, "forbidden_header"},
	{ErrCriticalHeader, "crit_header"},
	{ErrWrongType, "wrong_typ"},
	{ErrUnknownKey, "unknown_key"},
	{ErrKeyMismatch, "key_mismatch"},
	{ErrInvalidSignature, "bad_signature"},
	{ErrExpired, "expired"},
	{ErrMissingExpiry, "missing_exp"},
	{ErrNotYetValid, "not_yet_valid"},
	{ErrIssuedInFuture, "iat_in_future"},
	{ErrWrongIssuer, "wrong_issuer"},
	{ErrWrongAudience, "wrong_audience"},
	{ErrInvalidClaims, "invalid_claims"},
	{ErrInactive, "inactive"},
	{ErrMissingClaim, "missing_claim"},
	{ErrCertificateBinding, "certificate_binding"},
	{ErrDPoPBinding, "dpop_binding"},
	{ErrDPoPRequired, "dpop_required"},
	{ErrDPoPProof, "invalid_dpop_proof"},
	{ErrDPoPReplay, "dpop_replay"},
	{ErrInvalidAPIKey, "invalid_api_key"},
	{ErrInsufficientScope, "insufficient_scope"},
	{ErrClaimRequired, "claim_required"},
	{ErrKeysUnavailable, "keys_unavailable"},
	{ErrIntrospectionUnavailable, "introspection_unavailable"},
	{ErrReplayUnavailable, "replay_unavailable"},
	{ErrAPIKeysUnavailable, "api_keys_unavailable"},
	{ErrConfig, "config"},
}

// Reason returns a short stable code for err (e.g. "expired"), for logs and
// metric labels; "ok" for nil and "error" for anything not an oauth sentinel.
func Reason(err error) string {
	if err == nil {
		return "ok"
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return "error"
}

// ClientError reports whether err is the client's fault (a 4xx) rather than
// a dependency's (keys or introspection unavailable: a 503).
func ClientError(err error) bool {
	return !errors.Is(err, ErrKeysUnavailable) && !errors.Is(err, ErrIntrospectionUnavailable) &&
		!errors.Is(err, ErrReplayUnavailable) && !errors.Is(err, ErrAPIKeysUnavailable) &&
		!errors.Is(err, ErrConfig)
}

// ClaimError is returned when a claim rule does not hold. It matches
// ErrClaimRequired with errors.Is. Claim names the claim path that failed
// (for the log only: clients see a generic access_denied).
type ClaimError struct{ Claim string }

// Error names the claim path whose rule failed.
func (e *ClaimError) Error() string { return ErrClaimRequired.Error() + ": " + e.Claim }

// Is makes errors.Is(err, ErrClaimRequired) true.
func (e *ClaimError) Is(target error) bool { return target == ErrClaimRequired }
