package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"wsgate/internal/reqscope"
	"wsgate/oauth"
)

func TestWriteError(t *testing.T) {
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
		{ErrTokenInBody, 400, "invalid_request", realm + `, error="invalid_request", error_description="send the token in the Authorization header only, not in the body too"`},
		{ErrMethodOverride, 400, "invalid_request", realm + `, error="invalid_request", error_description="method override parameters are not accepted"`},
		{ErrUnreadableBody, 400, "invalid_request", ""},
		{ErrBodyTooLarge, 413, "request_too_large", ""},
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
		{Describe(oauth.ErrExpired, "ignored"), 401, "invalid_token", inv("the token has expired")},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := StatusOf(tc.err); got != tc.status {
				t.Fatalf("StatusOf = %d, want %d", got, tc.status)
			}
			w := httptest.NewRecorder()
			WriteError(w, scoped("id-9"), tc.status, tc.err)
			body := decodeError(t, w)
			if w.Code != tc.status || body.Error != tc.code || body.RequestID != "id-9" || body.Description == "" {
				t.Fatalf("got %d %+v", w.Code, body)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, tc.challenge)
			}
			if tc.status == http.StatusTooManyRequests && w.Header().Get("Retry-After") != "2" {
				t.Fatalf("Retry-After %q, want 2 (rounded up)", w.Header().Get("Retry-After"))
			}
			if strings.Contains(body.Description, "ignored") {
				t.Fatalf("a token error took a Describe'd description: %q", body.Description)
			}
			if tc.status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") != "30" {
				t.Fatalf("Retry-After %q, want 30", w.Header().Get("Retry-After"))
			}
		})
	}
}

func scoped(id string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	return r.WithContext(reqscope.With(r.Context(), reqscope.New(id, "192.0.2.1")))
}

func decodeError(t *testing.T, w *httptest.ResponseRecorder) ErrorBody {
	t.Helper()
	for name, want := range map[string]string{
		"Content-Type": "application/json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
		"Content-Length": strconv.Itoa(w.Body.Len()),
	} {
		if got := w.Header().Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	var b ErrorBody
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if w.Header().Get("X-Request-ID") != b.RequestID {
		t.Errorf("X-Request-ID %q, body request_id %q", w.Header().Get("X-Request-ID"), b.RequestID)
	}
	return b
}

// TestWriteErrorStatuses: every status the gateway answers on REST and
// bridge routes gets its code and a generic description; the cause never
// reaches the client, a Describe'd description only on a 4xx.
func TestWriteErrorStatuses(t *testing.T) {
	cause := errors.New("dial tcp 10.1.2.3:8443: secret-host refused")
	tests := []struct {
		status int
		code   string
	}{
		{400, "invalid_request"}, {403, "forbidden"}, {404, "not_found"}, {405, "method_not_allowed"},
		{413, "request_too_large"}, {415, "unsupported_media_type"}, {429, "rate_limited"},
		{500, "server_error"}, {502, "bad_gateway"}, {503, "temporarily_unavailable"}, {504, "upstream_timeout"},
		{418, "invalid_request"}, {501, "server_error"},
	}
	for _, tc := range tests {
		for _, described := range []bool{false, true} {
			err := cause
			if described {
				err = Describe(cause, "the field \"orderId\" is missing")
			}
			w := httptest.NewRecorder()
			w.Header().Set("Allow", "POST")
			WriteError(w, scoped("id-1"), tc.status, err)
			b := decodeError(t, w)
			if w.Code != tc.status || b.Error != tc.code || b.RequestID != "id-1" || b.Description == "" {
				t.Errorf("%d: got %d %+v", tc.status, w.Code, b)
			}
			if strings.Contains(w.Body.String(), "10.1.2.3") || strings.Contains(w.Body.String(), "secret-host") {
				t.Errorf("%d: the cause reached the client: %s", tc.status, w.Body)
			}
			if got := strings.Contains(b.Description, "orderId"); got != (described && tc.status < 500 && tc.status != 403) {
				t.Errorf("%d described=%v: description %q", tc.status, described, b.Description)
			}
			if w.Header().Get("WWW-Authenticate") != "" || w.Header().Get("Allow") != "POST" {
				t.Errorf("%d: headers %v", tc.status, w.Header())
			}
		}
	}
	// Without a front door: a sane client X-Request-ID, else a fresh one.
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set("X-Request-ID", "bad id\r\n")
	w := httptest.NewRecorder()
	WriteError(w, r, 404, cause)
	if b := decodeError(t, w); !reqscope.SaneID(b.RequestID) {
		t.Errorf("request_id %q", b.RequestID)
	}
}
