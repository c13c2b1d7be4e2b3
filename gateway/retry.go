package gateway

import (
	"context"
	"errors"
	"net/http"
)

// retryTransport re-sends a request the upstream never answered, for
// methods where a second copy cannot do what the first did not (RFC 9110
// 9.2.2 idempotent methods) and only without a body, which is read once.
// A POST or PATCH is never sent twice; an answer, even a 5xx, is never
// retried; nor is a request whose context ended (the route's timeout).
type retryTransport struct {
	next    http.RoundTripper
	retries int
}

// withRetries wraps t when retries > 0.
func withRetries(t http.RoundTripper, retries int) http.RoundTripper {
	if retries <= 0 {
		return t
	}
	return &retryTransport{next: t, retries: retries}
}

func retryable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return r.Body == nil || r.Body == http.NoBody
	}
	return false
}

func (t *retryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	for i := 0; i < t.retries && err != nil && retryable(r) && r.Context().Err() == nil &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded); i++ {
		res, err = t.next.RoundTrip(r)
	}
	return res, err
}
