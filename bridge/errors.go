package bridge

import (
	"errors"
	"fmt"
	"net/http"

	"wsgate/rest"
	"wsgate/wssec"
)

// Each distinguishable failure has one sentinel; match with errors.Is.
var (
	// The client's request (4xx). Their messages, with the detail wrapped
	// after them, are what the client reads: they only ever carry names
	// from the configuration or the client's own JSON.
	ErrMethodNotAllowed     = errors.New("bridge: only POST is allowed")
	ErrUnknownOperation     = errors.New("bridge: no such operation")
	ErrUnsupportedMediaType = errors.New("bridge: the request body must be application/json")
	ErrBodyTooLarge         = errors.New("bridge: the request body is too large")
	ErrInvalidJSON          = errors.New("bridge: the request body is not valid JSON")
	ErrNotObject            = errors.New("bridge: the request body must be a JSON object")
	ErrMissingField         = errors.New("bridge: the request body lacks the field")
	ErrTemplateMismatch     = errors.New("bridge: the request body does not fit the operation's template")
	ErrNotScalar            = errors.New("bridge: a field the template prints is not a string, number, boolean or null")
	ErrRenderTooLarge       = errors.New("bridge: the rendered SOAP request is too large")

	// The gateway (5xx): the client sees a fixed phrase, the log the cause.
	ErrBadTemplateOutput   = errors.New("bridge: the operation's template did not render a well-formed SOAP Body")
	ErrIdentityUnavailable = errors.New("bridge: the signing identity is not available")
	ErrSigning             = errors.New("bridge: signing the SOAP request failed")

	// The upstream (502/503/504).
	ErrUpstreamUnavailable   = errors.New("bridge: the SOAP upstream could not be reached")
	ErrUpstreamTimeout       = errors.New("bridge: the SOAP upstream did not answer in time")
	ErrBadUpstreamResponse   = errors.New("bridge: the SOAP upstream's response is not a usable SOAP envelope")
	ErrUpstreamStatus        = errors.New("bridge: the SOAP upstream answered with an error status and no SOAP Fault")
	ErrUpstreamSignature     = errors.New("bridge: the SOAP upstream's response signature did not verify")
	ErrVersionMismatch       = errors.New("bridge: the SOAP upstream answered in the other SOAP version")
	ErrResponseTrustNotReady = errors.New("bridge: the trust anchors for upstream responses are not available")
	ErrUpstreamFault         = errors.New("bridge: the SOAP upstream answered with a SOAP Fault")
)

// ErrorBody is the JSON error body of bridge routes: rest.WriteError's.
type ErrorBody = rest.ErrorBody

// reasons are the short, machine-readable reasons of the audit log and the
// request's scope, one per sentinel.
var reasons = []struct {
	err    error
	reason string
}{
	{ErrMethodNotAllowed, "method_not_allowed"},
	{ErrUnknownOperation, "unknown_operation"},
	{ErrUnsupportedMediaType, "unsupported_media_type"},
	{ErrBodyTooLarge, "body_too_large"},
	{ErrInvalidJSON, "invalid_json"},
	{ErrNotObject, "not_object"},
	{ErrMissingField, "missing_field"},
	{ErrNotScalar, "not_scalar"},
	{ErrTemplateMismatch, "template_mismatch"},
	{ErrRenderTooLarge, "render_too_large"},
	{ErrBadTemplateOutput, "bad_template_output"},
	{ErrIdentityUnavailable, "identity_unavailable"},
	{ErrSigning, "signing_failed"},
	{ErrUpstreamUnavailable, "upstream_unavailable"},
	{ErrUpstreamTimeout, "upstream_timeout"},
	{ErrBadUpstreamResponse, "bad_upstream_response"},
	{ErrUpstreamStatus, "upstream_status"},
	{ErrUpstreamSignature, "upstream_signature"},
	{ErrVersionMismatch, "version_mismatch"},
	{ErrResponseTrustNotReady, "response_trust_unavailable"},
	{ErrUpstreamFault, "upstream_fault"},
}

// reason is err's short reason: "ok" for nil, "error" when unforeseen.
func reason(err error) string {
	if err == nil {
		return "ok"
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "error"
}

// errorStatus maps err to the status the client sees; rest.WriteError
// writes the body (a client error's own message as its description, a
// fixed phrase otherwise).
func errorStatus(err error) int {
	switch {
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrUnknownOperation):
		return http.StatusNotFound
	case errors.Is(err, ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, ErrRenderTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrInvalidJSON), errors.Is(err, ErrNotObject), errors.Is(err, ErrMissingField),
		errors.Is(err, ErrNotScalar), errors.Is(err, ErrTemplateMismatch):
		return http.StatusBadRequest
	case errors.Is(err, ErrIdentityUnavailable), errors.Is(err, ErrResponseTrustNotReady):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrUpstreamTimeout):
		return http.StatusGatewayTimeout
	case upstreamError(err):
		return http.StatusBadGateway
	}
	// ErrBadTemplateOutput, ErrSigning and anything unforeseen.
	return http.StatusInternalServerError
}

// upstreamError reports whether err is the upstream's failure (502, 504).
func upstreamError(err error) bool {
	for _, e := range []error{ErrUpstreamUnavailable, ErrUpstreamTimeout, ErrBadUpstreamResponse,
		ErrUpstreamStatus, ErrUpstreamSignature, ErrVersionMismatch} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// responseVerifyError classifies a verify_response failure: the trust set
// not loading is the gateway's problem (503), anything else the upstream's.
func responseVerifyError(err error) error {
	if !wssec.ClientError(err) {
		return fmt.Errorf("%w: %w", ErrResponseTrustNotReady, err)
	}
	return fmt.Errorf("%w: %w", ErrUpstreamSignature, err)
}
