package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"wsgate/internal/reqscope"
	"wsgate/oauth"
)

// Request-level failures the rest edge adds to oauth's sentinels.
var (
	// ErrAmbiguousPath refuses a path that is not canonical or that an
	// upstream could split differently from the scope matcher (encoded
	// slashes, backslashes, dot segments, ';' parameters).
	ErrAmbiguousPath = errors.New("rest: ambiguous request path")
	// ErrRateLimited is matched by *RateLimitError.
	ErrRateLimited = errors.New("rest: rate limit exceeded")
	// ErrTokenInBody refuses a form body carrying access_token (or a
	// spelling a backend folds into it) beside the Authorization header:
	// RFC 6750 section 2 allows one method per request, and the upstream
	// must never get a second, unverified token.
	ErrTokenInBody = errors.New("rest: access token in the request body refused")
	// ErrMethodOverride refuses a _method parameter (query or form body):
	// frameworks run that method instead of the one the scopes were checked for.
	ErrMethodOverride = errors.New("rest: method override parameter refused")
	// ErrBodyTooLarge refuses a form body over Options.MaxFormBytes.
	ErrBodyTooLarge = errors.New("rest: request body too large")
	// ErrUnreadableBody refuses a form body that could not be read or
	// parsed whole: a backend's parser might find a token in it ours missed.
	ErrUnreadableBody = errors.New("rest: request body unreadable")
)

// RateLimitError is a refused request and when to retry. It matches ErrRateLimited.
type RateLimitError struct{ RetryAfter time.Duration }

// Error says when to retry.
func (e *RateLimitError) Error() string {
	return ErrRateLimited.Error() + "; retry after " + e.RetryAfter.String()
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Realm is the RFC 6750 realm in every WWW-Authenticate challenge.
const Realm = "wsgate"

// ErrorBody is the JSON body of every error wsgate answers on a REST or
// bridge route.
type ErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	RequestID   string `json:"request_id"`
}

// describedError carries a description the client may read.
type describedError struct {
	err  error
	desc string
}

func (e *describedError) Error() string { return e.err.Error() }
func (e *describedError) Unwrap() error { return e.err }

// Describe attaches a client-facing description to err, for WriteError to
// show on a 4xx answer instead of the generic phrase. The caller vouches that
// desc only names what the client sent or the configuration (a missing
// JSON field), never a secret or an internal address. It is ignored on a 5xx
// and on token errors, whose phrases are fixed.
func Describe(err error, desc string) error { return &describedError{err: err, desc: desc} }

// StatusOf is the HTTP status of an error from oauth or this package.
func StatusOf(err error) int {
	var se *oauth.ScopeError
	switch {
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, oauth.ErrReplayUnavailable), errors.Is(err, oauth.ErrAPIKeysUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, oauth.ErrClaimRequired), errors.Is(err, ErrCORSRefused):
		return http.StatusForbidden
	case errors.Is(err, ErrMultipleCredentials):
		return http.StatusBadRequest
	case errors.Is(err, oauth.ErrNoToken):
		return http.StatusUnauthorized
	case errors.Is(err, oauth.ErrMultipleAuthorization), errors.Is(err, oauth.ErrTokenInQuery),
		errors.Is(err, ErrTokenInBody), errors.Is(err, ErrMethodOverride), errors.Is(err, ErrAmbiguousPath),
		errors.Is(err, ErrUnreadableBody):
		return http.StatusBadRequest
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &se):
		return http.StatusForbidden
	case errors.Is(err, oauth.ErrKeysUnavailable), errors.Is(err, oauth.ErrIntrospectionUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, oauth.ErrConfig) || oauth.Reason(err) == "error":
		return http.StatusInternalServerError
	}
	return http.StatusUnauthorized // every other oauth sentinel: the token is invalid
}

// WriteError is the one JSON error renderer of REST and bridge routes (and
// of the gateway's own answers on them): status as given, the RFC 6750 style
// body {"error", "error_description", "request_id"}, X-Request-ID, and for
// token errors the WWW-Authenticate challenge. The description is a fixed
// phrase chosen from status and err (or Describe's, on a 4xx); the cause
// stays in the caller's log. For 405 the caller sets Allow. For 429 and 503
// the caller may set Retry-After; otherwise it comes from a *RateLimitError,
// or is 30s when the IdP is unavailable.
func WriteError(w http.ResponseWriter, r *http.Request, status int, err error) {
	h := w.Header()
	code, desc := describe(h, status, err)
	// A token error keeps its fixed phrase, which its challenge repeats.
	token := status == http.StatusUnauthorized || status == http.StatusForbidden || h.Get("WWW-Authenticate") != ""
	if d := (*describedError)(nil); status < 500 && !token && errors.As(err, &d) && d.desc != "" {
		desc = d.desc
	}
	id := reqscope.IDOf(r)
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(ErrorBody{Error: code, Description: desc, RequestID: id}) // strings only: cannot fail
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	h.Set(reqscope.Header, id)
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// describe returns the error code and generic description for status and
// err, setting the challenge and Retry-After headers they call for.
func describe(h http.Header, status int, err error) (code, desc string) {
	var dc *dpopChallenge
	dpop := errors.As(err, &dc)
	challenge := func(code, desc string, extra ...string) {
		parts := []string{`Bearer realm="` + Realm + `"`}
		if dpop {
			// RFC 9449 section 7.1: DPoP error="…", algs="…" (no realm).
			parts = nil
		}
		if code != "" {
			parts = append(parts, `error="`+code+`"`)
			if desc != "" {
				parts = append(parts, `error_description="`+desc+`"`)
			}
		}
		parts = append(parts, extra...)
		if dpop {
			parts = append(parts, `algs="`+strings.Join(dc.algs, " ")+`"`)
			h.Set("WWW-Authenticate", "DPoP "+strings.Join(parts, ", "))
			return
		}
		h.Set("WWW-Authenticate", strings.Join(parts, ", "))
	}
	switch status {
	case http.StatusBadRequest:
		code, desc = "invalid_request", "the request is malformed"
		switch {
		case errors.Is(err, oauth.ErrMultipleAuthorization):
			desc = "more than one Authorization header"
		case errors.Is(err, oauth.ErrTokenInQuery):
			desc = "send the token in the Authorization header, not the query string"
		case errors.Is(err, ErrTokenInBody):
			desc = "send the token in the Authorization header only, not in the body too"
		case errors.Is(err, ErrMethodOverride):
			desc = "method override parameters are not accepted"
		case errors.Is(err, ErrAmbiguousPath):
			desc = "the request path is not canonical"
		case errors.Is(err, ErrMultipleCredentials):
			desc = "send one credential: an API key or an Authorization header"
		default:
			return code, desc
		}
		challenge(code, desc)
	case http.StatusUnauthorized:
		if errors.Is(err, oauth.ErrNoToken) {
			challenge("", "")
			if errors.Is(err, ErrNoAPIKey) {
				return "unauthorized", "an API key is required"
			}
			return "unauthorized", "a bearer token is required"
		}
		if errors.Is(err, oauth.ErrDPoPProof) || errors.Is(err, oauth.ErrDPoPReplay) {
			code, desc = "invalid_dpop_proof", "the DPoP proof is invalid"
			if errors.Is(err, oauth.ErrDPoPReplay) {
				desc = "the DPoP proof was already used"
			}
			challenge(code, desc)
			return code, desc
		}
		code, desc = "invalid_token", "the token is invalid"
		switch {
		case errors.Is(err, oauth.ErrInvalidAPIKey):
			desc = "the API key is invalid"
		case errors.Is(err, oauth.ErrDPoPRequired), errors.Is(err, oauth.ErrDPoPBinding):
			desc = "the token must be used with a DPoP proof of its key"
		case errors.Is(err, oauth.ErrCertificateBinding):
			desc = "the token is not bound to this client certificate"
		case errors.Is(err, oauth.ErrExpired):
			desc = "the token has expired"
		case errors.Is(err, oauth.ErrNotYetValid), errors.Is(err, oauth.ErrIssuedInFuture):
			desc = "the token is not yet valid"
		case errors.Is(err, oauth.ErrMalformed), errors.Is(err, oauth.ErrTokenTooLarge):
			desc = "the token is malformed"
		}
		challenge(code, desc)
	case http.StatusForbidden:
		var se *oauth.ScopeError
		if errors.Is(err, oauth.ErrClaimRequired) {
			return "access_denied", "the token does not grant access to this resource"
		}
		if !errors.As(err, &se) {
			return "forbidden", "access denied"
		}
		code, desc = "insufficient_scope", "the token lacks the required scope"
		var extra []string
		if len(se.Required) > 0 {
			// Scope tokens were checked against RFC 6749's charset, so they need no escaping.
			extra = append(extra, `scope="`+strings.Join(se.Required, " ")+`"`)
		}
		challenge(code, desc, extra...)
	case http.StatusNotFound:
		return "not_found", "no such resource"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed", "the method is not allowed here"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large", "the request body is too large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type", "the request body's content type is not accepted"
	case http.StatusTooManyRequests:
		var rl *RateLimitError
		if h.Get("Retry-After") == "" && errors.As(err, &rl) {
			h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(max(rl.RetryAfter, time.Second).Seconds())), 10))
		}
		return "rate_limited", "too many requests"
	case http.StatusBadGateway:
		return "bad_gateway", "the upstream service is unavailable"
	case http.StatusServiceUnavailable:
		if errors.Is(err, oauth.ErrKeysUnavailable) || errors.Is(err, oauth.ErrIntrospectionUnavailable) ||
			errors.Is(err, oauth.ErrReplayUnavailable) || errors.Is(err, oauth.ErrAPIKeysUnavailable) {
			if h.Get("Retry-After") == "" {
				h.Set("Retry-After", "30")
			}
			return "temporarily_unavailable", "token validation is temporarily unavailable"
		}
		return "temporarily_unavailable", "the service is temporarily unavailable"
	case http.StatusGatewayTimeout:
		return "upstream_timeout", "the upstream service did not answer in time"
	default:
		if status >= 400 && status < 500 {
			return "invalid_request", "the request was refused"
		}
		return "server_error", "internal error"
	}
	return code, desc
}
