package bridge

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

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
	ErrResponseTrustNotReady = errors.New("bridge: the trust anchors for upstream responses are not available")
	ErrUpstreamFault         = errors.New("bridge: the SOAP upstream answered with a SOAP Fault")
)

// ErrorBody is the JSON body of every refusal and gateway failure, the same
// shape REST routes use.
type ErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	RequestID   string `json:"request_id"`
}

// errorResponse maps err to the status, error code and description the
// client sees. Client errors show their own message (which names the field
// or the JSON problem); everything else a fixed phrase.
func errorResponse(err error) (status int, code, desc string) {
	client := func(s int, c string) (int, string, string) {
		return s, c, strings.TrimPrefix(err.Error(), "bridge: ")
	}
	switch {
	case errors.Is(err, ErrMethodNotAllowed):
		return client(http.StatusMethodNotAllowed, "method_not_allowed")
	case errors.Is(err, ErrUnknownOperation):
		return client(http.StatusNotFound, "not_found")
	case errors.Is(err, ErrUnsupportedMediaType):
		return client(http.StatusUnsupportedMediaType, "unsupported_media_type")
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, ErrRenderTooLarge):
		return client(http.StatusRequestEntityTooLarge, "request_too_large")
	case errors.Is(err, ErrInvalidJSON), errors.Is(err, ErrNotObject),
		errors.Is(err, ErrMissingField), errors.Is(err, ErrTemplateMismatch):
		return client(http.StatusBadRequest, "invalid_request")
	case errors.Is(err, ErrIdentityUnavailable), errors.Is(err, ErrResponseTrustNotReady):
		return http.StatusServiceUnavailable, "service_unavailable", "the bridge's keys are not available"
	case errors.Is(err, ErrUpstreamTimeout):
		return http.StatusGatewayTimeout, "upstream_timeout", "the upstream service did not answer in time"
	case errors.Is(err, ErrUpstreamUnavailable):
		return http.StatusBadGateway, "bad_gateway", "the upstream service is unavailable"
	case errors.Is(err, ErrUpstreamSignature):
		return http.StatusBadGateway, "bad_gateway", "the upstream service's response signature did not verify"
	case errors.Is(err, ErrBadUpstreamResponse), errors.Is(err, ErrUpstreamStatus):
		return http.StatusBadGateway, "bad_gateway", "the upstream service's response is not a usable SOAP response"
	}
	// ErrBadTemplateOutput, ErrSigning and anything unforeseen.
	return http.StatusInternalServerError, "internal_error", "internal error"
}

// responseVerifyError classifies a verify_response failure: the trust set
// not loading is the gateway's problem (503), anything else the upstream's.
func responseVerifyError(err error) error {
	if !wssec.ClientError(err) {
		return fmt.Errorf("%w: %w", ErrResponseTrustNotReady, err)
	}
	return fmt.Errorf("%w: %w", ErrUpstreamSignature, err)
}
