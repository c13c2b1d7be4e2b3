package rest

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

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

// Response is what a refused request gets.
type Response struct {
	Status int
	// Header holds WWW-Authenticate or Retry-After when set.
	Header http.Header
	Body   ErrorBody
}

// ErrorBody is the JSON body of every refusal.
type ErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	RequestID   string `json:"request_id"`
}

// ErrorResponse maps an error from oauth or this package to the response the
// client sees (RFC 6750 section 3 and the wsgate spec). The description is
// one of a few fixed phrases: the cause stays in the log.
func ErrorResponse(err error, requestID string) Response {
	r := Response{Header: http.Header{}, Body: ErrorBody{RequestID: requestID}}
	challenge := func(code, desc string, extra ...string) {
		parts := []string{`Bearer realm="` + Realm + `"`}
		if code != "" {
			parts = append(parts, `error="`+code+`"`)
			if desc != "" {
				parts = append(parts, `error_description="`+desc+`"`)
			}
		}
		parts = append(parts, extra...)
		r.Header.Set("WWW-Authenticate", strings.Join(parts, ", "))
	}
	var rl *RateLimitError
	var se *oauth.ScopeError
	switch {
	case errors.As(err, &rl):
		r.Status = http.StatusTooManyRequests
		r.Header.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(max(rl.RetryAfter, time.Second).Seconds())), 10))
		r.Body.Error, r.Body.Description = "rate_limited", "too many requests"
	case errors.Is(err, oauth.ErrNoToken):
		r.Status = http.StatusUnauthorized
		challenge("", "")
		r.Body.Error, r.Body.Description = "unauthorized", "a bearer token is required"
	case errors.Is(err, oauth.ErrMultipleAuthorization), errors.Is(err, oauth.ErrTokenInQuery),
		errors.Is(err, ErrAmbiguousPath):
		r.Status = http.StatusBadRequest
		desc := "the request is malformed"
		switch {
		case errors.Is(err, oauth.ErrMultipleAuthorization):
			desc = "more than one Authorization header"
		case errors.Is(err, oauth.ErrTokenInQuery):
			desc = "send the token in the Authorization header, not the query string"
		case errors.Is(err, ErrAmbiguousPath):
			desc = "the request path is not canonical"
		}
		challenge("invalid_request", desc)
		r.Body.Error, r.Body.Description = "invalid_request", desc
	case errors.As(err, &se):
		r.Status = http.StatusForbidden
		const desc = "the token lacks the required scope"
		var extra []string
		if len(se.Required) > 0 {
			// Scope tokens were checked against RFC 6749's charset, so they need no escaping.
			extra = append(extra, `scope="`+strings.Join(se.Required, " ")+`"`)
		}
		challenge("insufficient_scope", desc, extra...)
		r.Body.Error, r.Body.Description = "insufficient_scope", desc
	case errors.Is(err, oauth.ErrKeysUnavailable), errors.Is(err, oauth.ErrIntrospectionUnavailable):
		r.Status = http.StatusServiceUnavailable
		r.Header.Set("Retry-After", "30")
		r.Body.Error, r.Body.Description = "temporarily_unavailable", "token validation is temporarily unavailable"
	case errors.Is(err, oauth.ErrConfig) || oauth.Reason(err) == "error":
		r.Status = http.StatusInternalServerError
		r.Body.Error, r.Body.Description = "server_error", "internal error"
	default:
		r.Status = http.StatusUnauthorized
		desc := "the token is invalid"
		switch {
		case errors.Is(err, oauth.ErrExpired):
			desc = "the token has expired"
		case errors.Is(err, oauth.ErrNotYetValid), errors.Is(err, oauth.ErrIssuedInFuture):
			desc = "the token is not yet valid"
		case errors.Is(err, oauth.ErrMalformed), errors.Is(err, oauth.ErrTokenTooLarge):
			desc = "the token is malformed"
		}
		challenge("invalid_token", desc)
		r.Body.Error, r.Body.Description = "invalid_token", desc
	}
	return r
}

// WriteError writes ErrorResponse(err, requestID) to w.
func WriteError(w http.ResponseWriter, err error, requestID string) {
	r := ErrorResponse(err, requestID)
	h := w.Header()
	for k, v := range r.Header {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if requestID != "" {
		h.Set(RequestIDHeader, requestID)
	}
	w.WriteHeader(r.Status)
	_ = json.NewEncoder(w).Encode(r.Body)
}
