package rest

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"wsgate/oauth"
)

func TestErrorResponse(t *testing.T) {
	const realm = `Bearer realm="wsgate"`
	inv := func(desc string) string {
		return realm + `, error="invalid_token", error_description="` + desc + `"`
	}
	tests := []struct {
		err       error
		status    int
		code      string
		challenge string
	}{
		{oauth.ErrNoToken, 401, "unauthorized", realm},
		{oauth.ErrMultipleAuthorization, 400, "invalid_request", realm + `, error="invalid_request", error_description="more than one Authorization header"`},
		{oauth.ErrTokenInQuery, 400, "invalid_request", realm + `, error="invalid_request", error_description="send the token in the Authorization header, not the query string"`},
		{ErrAmbiguousPath, 400, "invalid_request", realm + `, error="invalid_request", error_description="the request path is not canonical"`},
		{oauth.ErrTokenTooLarge, 401, "invalid_token", inv("the token is malformed")},
		{fmt.Errorf("%w: x", oauth.ErrMalformed), 401, "invalid_token", inv("the token is malformed")},
		{oauth.ErrExpired, 401, "invalid_token", inv("the token has expired")},
		{oauth.ErrNotYetValid, 401, "invalid_token", inv("the token is not yet valid")},
		{oauth.ErrIssuedInFuture, 401, "invalid_token", inv("the token is not yet valid")},
		{oauth.ErrMissingExpiry, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrAlgorithmNotAllowed, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrForbiddenHeader, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrCriticalHeader, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrWrongType, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrUnknownKey, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrKeyMismatch, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrInvalidSignature, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrWrongIssuer, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrWrongAudience, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrInvalidClaims, 401, "invalid_token", inv("the token is invalid")},
		{oauth.ErrInactive, 401, "invalid_token", inv("the token is invalid")},
		{&oauth.ScopeError{Required: []string{"a.read", "a.admin"}}, 403, "insufficient_scope",
			realm + `, error="insufficient_scope", error_description="the token lacks the required scope", scope="a.read a.admin"`},
		{&oauth.ScopeError{}, 403, "insufficient_scope",
			realm + `, error="insufficient_scope", error_description="the token lacks the required scope"`},
		{fmt.Errorf("%w: down", oauth.ErrKeysUnavailable), 503, "temporarily_unavailable", ""},
		{oauth.ErrIntrospectionUnavailable, 503, "temporarily_unavailable", ""},
		{&RateLimitError{RetryAfter: 1500 * time.Millisecond}, 429, "rate_limited", ""},
		{oauth.ErrConfig, 500, "server_error", ""},
		{errors.New("something else"), 500, "server_error", ""},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			r := ErrorResponse(tc.err, "id-9")
			if r.Status != tc.status || r.Body.Error != tc.code || r.Body.RequestID != "id-9" || r.Body.Description == "" {
				t.Fatalf("got %d %+v", r.Status, r.Body)
			}
			if got := r.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, tc.challenge)
			}
			if tc.status == http.StatusTooManyRequests && r.Header.Get("Retry-After") != "2" {
				t.Fatalf("Retry-After %q, want 2 (rounded up)", r.Header.Get("Retry-After"))
			}
		})
	}
}
