// Package soap is wsgate's HTTP edge for SOAP routes: it reads a bounded
// request body, verifies its WS-Security header with a wssec.Verifier, and
// forwards exactly the verified envelope upstream. A rejected request never
// reaches the upstream; the client gets a SOAP Fault in its SOAP version and
// the cause goes to the audit log under the request ID.
package soap

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"wsgate/wssec"
)

// DefaultMaxBodyBytes caps a request body when Options leaves both
// MaxBodyBytes and Limits.MaxBytes unset.
const DefaultMaxBodyBytes = 10 << 20

// RequestIDHeader carries the request ID in both directions.
const RequestIDHeader = "X-Request-ID"

// errReadBody means the body could not be read (client gone, read timeout).
var errReadBody = errors.New("soap: reading the request body failed")

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
	// NewRequestID makes a request ID when the client sent no usable one;
	// nil means 16 random bytes in hex.
	NewRequestID func() string
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
	// with errors.Is (wssec.FaultCode and wssec.ClientError classify it).
	Err error
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
		newID = NewRequestID
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

// Handle is the handler as a gin.HandlerFunc.
func (h *Handler) Handle(c *gin.Context) {
	h.ServeHTTP(c.Writer, c.Request)
	c.Abort()
}

// ServeHTTP verifies the request and either forwards the verified envelope or
// answers with a SOAP Fault.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := RequestID(r, h.newID)
	w.Header().Set(RequestIDHeader, id)

	// Memory is reserved before a byte of the body is buffered, grows with
	// the body, and is held until the response is written.
	res, err := h.reserve(r)
	if err != nil {
		h.rejectBusy(w, r, id)
		return
	}
	defer res.release()

	body, err := readBody(w, r, h.maxBody, res)
	if errors.Is(err, ErrBusy) {
		h.rejectBusy(w, r, id)
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
	verified, err := h.opts.Verifier.VerifyEnvelope(r.Context(), env)
	if err != nil {
		env.Release()
		h.reject(w, r, id, env.Version, err)
		return
	}
	out, err := verified.Bytes(h.opts.StripSecurityHeader)
	signer, username := "", verified.Username
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
	var respSigner *wssec.Signer
	if h.opts.SignResponse != nil {
		if respSigner, err = h.responseSigner(); err != nil {
			h.reject(w, r, id, env.Version, err)
			return
		}
	}

	h.log.LogAttrs(r.Context(), slog.LevelInfo, "soap request accepted",
		slog.String("route", h.opts.Route),
		slog.String("request_id", id),
		slog.String("soap_version", env.Version.String()),
		slog.String("outcome", "accepted"),
		slog.String("signer", signer),
		slog.String("username", username),
	)

	h.decide(r, nil)
	if respSigner != nil {
		h.forwardSigned(w, forwardRequest(r, out, id), id, env.Version, respSigner)
		return
	}
	h.opts.Upstream.ServeHTTP(&idWriter{ResponseWriter: w, id: id}, forwardRequest(r, out, id))
}

// forwardRequest is r carrying exactly the verified bytes: what the upstream
// sees is what was checked, never the bytes that came in.
func forwardRequest(r *http.Request, body []byte, id string) *http.Request {
	out := r.Clone(r.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	out.TransferEncoding = nil
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	out.Header.Set(RequestIDHeader, id)
	return out
}

// reject answers with the fault for err and writes the audit record.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, id string, v wssec.SOAPVersion, err error) {
	f := faultFor(err, v)
	h.logRejected(r, id, v, err, f.code, f.status)
	h.decide(r, err)
	writeFault(w, f, id)
}

// logRejected writes the audit record of a refusal.
func (h *Handler) logRejected(r *http.Request, id string, v wssec.SOAPVersion, err error, code string, status int) {
	level := slog.LevelWarn
	if status == http.StatusServiceUnavailable {
		level = slog.LevelError
	}
	h.log.LogAttrs(r.Context(), level, "soap request rejected",
		slog.String("route", h.opts.Route),
		slog.String("request_id", id),
		slog.String("soap_version", v.String()),
		slog.String("outcome", "rejected"),
		slog.String("reason", err.Error()),
		slog.String("fault_code", code),
		slog.Int("status", status),
	)
}

func (h *Handler) decide(r *http.Request, err error) {
	if h.opts.OnDecision != nil {
		h.opts.OnDecision(Decision{Context: r.Context(), Route: h.opts.Route, Err: err})
	}
}

// RequestID returns the client's X-Request-ID when it is a sane token (at most
// 64 characters of [A-Za-z0-9._-]), else a fresh one from newID. Anything
// else could inject into logs or the fault document.
func RequestID(r *http.Request, newID func() string) string {
	if id := r.Header.Get(RequestIDHeader); saneID(id) {
		return id
	}
	return newID()
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '.' || c == '_' || c == '-' {
			continue
		}
		return false
	}
	return true
}

// NewRequestID returns a fresh request ID: 16 random bytes in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// idWriter keeps exactly one X-Request-ID on the response even when the
// upstream echoes the one it was sent.
type idWriter struct {
	http.ResponseWriter
	id    string
	wrote bool
}

func (w *idWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 { // 1xx responses come first and clear the header map
		w.wrote = true
		w.Header().Set(RequestIDHeader, w.id)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *idWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (w *idWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
