// Package soap is wsgate's HTTP edge for SOAP routes: it holds a request to
// the SOAP HTTP binding (POST, the Content-Type of the envelope's version,
// UTF-8, no Content-Encoding), reads a bounded body, verifies its
// WS-Security header with a wssec.Verifier, and forwards exactly the
// verified envelope upstream, with HTTP metadata made from it (the signed
// wsa:Action as SOAPAction, or none). A rejected request never reaches the
// upstream; the client gets a SOAP Fault in its SOAP version and the cause
// goes to the audit log under the request ID. WriteError renders the
// gateway's own errors on SOAP routes with the same fault writer.
package soap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"wsgate/internal/reqscope"
	"wsgate/wssec"
)

// DefaultMaxBodyBytes caps a request body when Options leaves both
// MaxBodyBytes and Limits.MaxBytes unset.
const DefaultMaxBodyBytes = 10 << 20

// RequestIDHeader carries the request ID in both directions.
const RequestIDHeader = reqscope.Header

// errReadBody means the body could not be read (client gone, read timeout).
var errReadBody = errors.New("soap: reading the request body failed")

// ErrContract refuses a verified message that the route's service contract
// (soap.operations: from_wsdl) does not allow: a 400 Sender Fault.
var ErrContract = errors.New("soap: the message does not match the service contract")

// errSerialize means the verified envelope could not be written back out.
var errSerialize = errors.New("soap: serializing the verified envelope failed")

// Options configure one SOAP route's handler.
type Options struct {
	// Route names the route in logs.
	Route string
	// Verifier holds the route's inbound policy. Required.
	Verifier *wssec.Verifier
	// Limits bound XML parsing; zero fields take wssec's defaults.
	Limits wssec.Limits
	// MaxBodyBytes caps the body read from the client. Zero means
	// Limits.MaxBytes, or DefaultMaxBodyBytes when that is zero too.
	MaxBodyBytes int64
	// StripSecurityHeader forwards the envelope without the processed wsse:Security header.
	StripSecurityHeader bool
	// Upstream receives verified requests, typically the route's reverse proxy. Required.
	Upstream http.Handler
	// Logger receives one audit record per decision; nil discards them.
	Logger *slog.Logger
	// NewRequestID makes the request ID of a request that comes without a
	// request scope (the handler used without the gateway's front door) and
	// without a sane X-Request-ID; nil means reqscope.NewID.
	NewRequestID func() string
	// WSDL, when set, serves GET <route>?wsdl; every other method but POST
	// is answered 405.
	WSDL http.Handler
	// Contract, when set, checks the verified envelope against the route's
	// service contract before anything is forwarded. actions are the
	// non-empty actions the client claimed in HTTP (each SOAPAction value,
	// unquoted, and the Content-Type's action parameter); v.Action is the
	// signed wsa:Action. An error is refused as ErrContract.
	Contract func(v *wssec.Verified, actions []string) error
	// OnDecision, when set, is called once per request with the verdict
	// (metrics). It runs on the request's goroutine and must not block.
	OnDecision func(Decision)

	// SignResponse, when set, signs every upstream response with this
	// identity (soap.sign_response); see forwardSigned for what is refused.
	SignResponse IdentitySource
	// ResponseTTL is the signed response Timestamp's lifetime; zero means 300s.
	ResponseTTL time.Duration
	// MaxResponseBytes caps an upstream response that is to be signed (it
	// is held in memory); zero means the request cap.
	MaxResponseBytes int64
	// Now is the clock of response signatures; nil means time.Now.
	Now func() time.Time
	// EncryptResponse, when set, encrypts every upstream response's Body
	// content for this certificate (soap.encrypt_response); with
	// SignResponse the response is signed, then encrypted.
	EncryptResponse CertificateSource
	// ForwardAttributes maps a SAML attribute name (or wssec.SubjectAttribute,
	// NameID) to the upstream header set from the verified assertion
	// (soap.saml.forward_attributes). The headers are removed from every
	// request first.
	ForwardAttributes map[string]string

	// Budget, when set, is the gateway's memory budget, shared by all its
	// SOAP routes: a request holds MemoryFactor times the body it has
	// received (the first admissionShare reserved before reading, the rest
	// as it arrives) and releases it once answered.
	Budget *Budget
	// BudgetWait bounds how long a request waits for its admission, and
	// for each growth of its share, before it is refused with 503; zero
	// means DefaultBudgetWait.
	BudgetWait time.Duration
}

// Decision is the verdict on one request, for metrics.
type Decision struct {
	// Context is the request's context (it carries the caller's request state).
	Context context.Context
	// Route is Options.Route.
	Route string
	// Err is nil when the request was accepted, else the refusal; match it
	// with errors.Is. FaultName(Err) is its label (the wsse code, or
	// MethodNotAllowed, UnsupportedMediaType, ...); ErrBusy and errors for
	// which wssec.ClientError is false are the gateway's, not the client's.
	Err error
	// Outcome is what the handler recorded in the request scope: Accepted,
	// Rejected (the client's fault) or Unavailable (the gateway's).
	Outcome reqscope.Outcome
	// Reason is FaultName(Err), empty when accepted: the label for
	// wsgate_security_rejections_total.
	Reason string
}

// Handler serves one SOAP route. It is safe for concurrent use.
type Handler struct {
	opts       Options
	maxBody    int64
	budgetWait time.Duration
	log        *slog.Logger
	newID      func() string
}

// New builds the handler for one SOAP route.
func New(opts Options) *Handler {
	maxBody := opts.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = opts.Limits.MaxBytes
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	newID := opts.NewRequestID
	if newID == nil {
		newID = reqscope.NewID
	}
	// The parser must not accept more than the body reader lets through.
	if opts.Limits.MaxBytes == 0 || opts.Limits.MaxBytes > maxBody {
		opts.Limits.MaxBytes = maxBody
	}
	wait := opts.BudgetWait
	if wait <= 0 {
		wait = DefaultBudgetWait
	}
	return &Handler{opts: opts, maxBody: maxBody, budgetWait: wait, log: log, newID: newID}
}

// ServeHTTP checks the request's HTTP binding, verifies its envelope, and
// either forwards what was verified or answers with a SOAP Fault.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := h.requestID(r)
	w.Header().Set(RequestIDHeader, id)

	if r.Method != http.MethodPost {
		if h.opts.WSDL != nil && r.Method == http.MethodGet && strings.EqualFold(r.URL.RawQuery, "wsdl") {
			h.opts.WSDL.ServeHTTP(w, r)
			return
		}
		h.reject(w, r, id, wssec.SOAP11, fmt.Errorf("%w: %.16q", ErrMethodNotAllowed, r.Method))
		return
	}
	// The HTTP metadata is checked before a byte of the body is read.
	bind, err := readBinding(r)
	if err != nil {
		h.reject(w, r, id, versionOf(r), err)
		return
	}
	if r.ContentLength > h.maxBody {
		h.reject(w, r, id, bind.version, fmt.Errorf("%w: body of %d bytes declared, over %d", wssec.ErrTooLarge, r.ContentLength, h.maxBody))
		return
	}

	// Memory is reserved before a byte of the body is buffered, grows with
	// the body, and is held until the response is written.
	res, err := h.reserve(r)
	if err != nil {
		h.reject(w, r, id, bind.version, err)
		return
	}
	defer res.release()

	body, err := readBody(w, r, h.maxBody, res)
	if errors.Is(err, ErrBusy) {
		h.reject(w, r, id, bind.version, err)
		return
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = fmt.Errorf("%w: body over %d bytes", wssec.ErrTooLarge, h.maxBody)
		} else {
			err = fmt.Errorf("%w: %v", errReadBody, err)
		}
		h.reject(w, r, id, wssec.DetectVersion(body), err)
		return
	}

	env, err := wssec.ParseEnvelope(body, h.opts.Limits)
	if err != nil {
		// The fault goes out in the version the message itself names; a
		// message that names none gets a 400 in the SOAP 1.1 shape.
		h.reject(w, r, id, wssec.DetectVersion(body), err)
		return
	}
	if env.Version != bind.version {
		env.Release()
		h.reject(w, r, id, env.Version, fmt.Errorf("%w: SOAP %s envelope sent as SOAP %s",
			ErrVersionMismatch, env.Version, bind.version))
		return
	}
	vctx, span := startVerifySpan(r.Context(), h.opts.Route)
	verified, err := h.opts.Verifier.VerifyEnvelope(vctx, env)
	endVerifySpan(span, err)
	if err != nil {
		env.Release()
		h.reject(w, r, id, env.Version, err)
		return
	}
	action, err := forwardedAction(verified.Action, bind, r)
	if err != nil {
		verified.Release()
		h.reject(w, r, id, env.Version, err)
		return
	}
	if h.opts.Contract != nil {
		if err := h.opts.Contract(verified, claimedActions(bind, r)); err != nil {
			verified.Release()
			h.reject(w, r, id, env.Version, fmt.Errorf("%w: %w", ErrContract, err))
			return
		}
	}
	out, err := verified.Bytes(h.opts.StripSecurityHeader)
	signer, username, assertion := "", verified.Username, verified.Assertion
	if verified.Signer != nil {
		signer = verified.Signer.Subject.String()
	}
	// From here on only out is forwarded: the tree's memory goes back to
	// the parser's pool.
	verified.Release()
	if err != nil {
		h.reject(w, r, id, env.Version, fmt.Errorf("%w: %v", errSerialize, err))
		return
	}

	// The response signing key is fetched before the upstream is called: a
	// request whose response could not be signed must not run at all.
	protect, err := h.responseProtection()
	if err != nil {
		h.reject(w, r, id, env.Version, err)
		return
	}

	attrs := []slog.Attr{
		slog.String("route", h.opts.Route),
		slog.String("request_id", id),
		slog.String("soap_version", env.Version.String()),
		slog.String("outcome", string(reqscope.Accepted)),
		slog.String("signer", signer),
		slog.String("username", username),
		slog.String("action", action),
	}
	if assertion != nil {
		attrs = append(attrs, slog.String("assertion_id", assertion.ID),
			slog.String("assertion_issuer", assertion.Issuer),
			slog.String("assertion_subject", assertion.Subject),
			slog.String("assertion_confirmation", assertion.Confirmation))
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "soap request accepted", attrs...)

	h.decide(r, reqscope.Accepted, "", nil)
	up := forwardRequest(r, out, env.Version, action, id)
	h.forwardAttributes(up, assertion, id)
	if protect != nil {
		h.forwardSigned(w, up, id, env.Version, protect)
		return
	}
	h.opts.Upstream.ServeHTTP(&reqscope.IDWriter{ResponseWriter: w, ID: id}, up)
}

// requestID is the request scope's ID. Behind the gateway's front door
// there is one; a handler used on its own (tests, embedding) takes a sane
// client X-Request-ID or makes one, and reports its decisions through
// OnDecision only.
func (h *Handler) requestID(r *http.Request) string {
	if id := reqscope.Of(r).ID(); id != "" {
		return id
	}
	if id := r.Header.Get(RequestIDHeader); reqscope.SaneID(id) {
		return id
	}
	return h.newID()
}

// reject answers with the fault for err, writes the audit record and
// reports the decision. v is the SOAP version of the fault.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, id string, v wssec.SOAPVersion, err error) {
	f := faultFor(err, v)
	// Receiver faults are the gateway's condition, not the client's.
	outcome, level := reqscope.Rejected, slog.LevelWarn
	if f.class == classReceiver {
		outcome, level = reqscope.Unavailable, slog.LevelError
	}
	// The reason is an error's text: it names what failed, never a body,
	// token or key.
	h.log.LogAttrs(r.Context(), level, "soap request rejected",
		slog.String("route", h.opts.Route),
		slog.String("request_id", id),
		slog.String("soap_version", v.String()),
		slog.String("outcome", string(outcome)),
		slog.String("reason", err.Error()),
		slog.String("fault_code", f.name),
		slog.Int("status", f.status),
	)
	h.decide(r, outcome, f.name, err)
	writeFault(w, f, id)
}

// decide reports the verdict to the request scope (the front door's access
// log and metrics) and to Options.OnDecision.
func (h *Handler) decide(r *http.Request, o reqscope.Outcome, reason string, err error) {
	reqscope.Of(r).Decide(o, reason)
	if h.opts.OnDecision != nil {
		h.opts.OnDecision(Decision{Context: r.Context(), Route: h.opts.Route, Err: err, Outcome: o, Reason: reason})
	}
}

// FaultName is the short name of the fault err is answered with, for
// metrics labels and logs: the wsse code (FailedCheck, InvalidSecurity, ...)
// or, for faults about the HTTP binding or SOAP processing, one of
// MethodNotAllowed, UnsupportedMediaType, VersionMismatch, MustUnderstand,
// ServiceUnavailable.
func FaultName(err error) string {
	return faultFor(err, wssec.SOAP11).name
}

// claimedActions are the actions a client named in HTTP, for
// Options.Contract: every non-empty SOAPAction value (quotes removed) and
// the Content-Type's action parameter.
func claimedActions(b binding, r *http.Request) []string {
	var out []string
	if b.action != "" {
		out = append(out, b.action)
	}
	for _, sa := range r.Header.Values("SOAPAction") {
		claim := strings.TrimSpace(sa)
		if len(claim) >= 2 && claim[0] == '"' && claim[len(claim)-1] == '"' {
			claim = claim[1 : len(claim)-1]
		}
		if claim != "" {
			out = append(out, claim)
		}
	}
	return out
}
