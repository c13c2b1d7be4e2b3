// Package bridge is wsgate's REST → SOAP edge. A client POSTs a JSON object
// to <prefix>/<operation>; the operation's template renders the SOAP Body
// with every value XML-escaped (and only scalars printable); the envelope is
// built for the route's SOAP version, signed with WS-Security (wssec.Signer)
// and sent to the SOAP upstream; the upstream's response must be an envelope
// of the same SOAP version, its signature is verified when the route asks
// for it, and its Body comes back as JSON (see ElementJSON for the mapping).
//
// The handler does no authentication of its own: it is meant to be the
// upstream of a rest handler, which validates the bearer token, checks
// scopes and rate limits before the bridge runs. The SOAP call is built from
// scratch, so no client header (Authorization, cookies) reaches the SOAP
// upstream; only the headers named in Options.ForwardHeaders (the route's
// forward_claims, which rest sets from the validated token) are copied.
//
// What the client sees:
//
//	200 {"status": <upstream HTTP status>, "body": <SOAP Body as JSON>}
//	502 {"fault": {"code": ..., "string": ..., "detail": ...}}  upstream SOAP Fault (1.1 or 1.2)
//	400 invalid JSON, a body that is not an object, a missing or ill-typed template field (named)
//	404 unknown operation; 405 not POST; 413 body too large; 415 not application/json
//	502 upstream unreachable, not a SOAP response, the other SOAP version, bad response signature
//	503 signing identity or response trust not loaded; 504 upstream timeout
//
// Every other status carries the REST error body that rest.WriteError writes.
package bridge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"wsgate/internal/reqscope"
	"wsgate/proxy"
	"wsgate/rest"
	"wsgate/wssec"
)

// Content types of the two SOAP HTTP bindings.
const (
	ContentType11 = "text/xml; charset=utf-8"
	ContentType12 = "application/soap+xml; charset=utf-8"
)

// Defaults for zero Options fields.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultTimeout      = 60 * time.Second
	DefaultMaxResponse  = 10 << 20
)

// IdentitySource yields the signing certificate chain (leaf first) and the
// leaf's key as one consistent pair per call. *secrets.IdentitySet satisfies
// it. It is the seam for Vault Transit: a source that returns the chain from
// the identity secret and a crypto.Signer whose Sign calls Transit fits
// unchanged.
type IdentitySource interface {
	Identity() (chain []*x509.Certificate, key crypto.Signer, err error)
}

// AssertionSource yields the SAML assertion outbound messages carry, read
// per call so that a refreshed secret takes effect.
type AssertionSource interface {
	Assertion() ([]byte, error)
}

// Operation is one bridged SOAP operation, reachable as POST <prefix>/<Name>.
type Operation struct {
	Name string
	// Action is the SOAPAction (1.1) or the action media-type parameter (1.2).
	Action string
	// Template renders the SOAP Body's content.
	Template *Template
}

// Options configure one bridge route.
type Options struct {
	// Route names the route in logs.
	Route string
	// PathPrefix is the route's path_prefix; operations are the one path segment below it.
	PathPrefix string
	// Upstream is the SOAP endpoint URL (http or https).
	Upstream string
	// SOAPVersion is wssec.SOAP11 or wssec.SOAP12.
	SOAPVersion wssec.SOAPVersion
	// Operations must have unique names.
	Operations []Operation
	// Identity signs every outbound message. Required.
	Identity IdentitySource
	// SignatureTTL is the outbound Timestamp's lifetime; zero means the Signer's 300s.
	SignatureTTL time.Duration
	// SAMLAssertion, when set, yields the SAML 2.0 assertion (signed by its
	// IdP) that every outbound message carries in wsse:Security, covered by
	// the signature: sender-vouches (bridge.sign.saml_assertion).
	SAMLAssertion AssertionSource
	// EncryptFor, when set, encrypts the outbound Body content for the
	// backend's certificate (bridge.encrypt), after signing: WSS4J's
	// default order, so the backend decrypts, then verifies a signature
	// over the plaintext it reads.
	EncryptFor interface {
		Certificate() (*x509.Certificate, error)
	}
	// VerifyResponse, when set, must verify every upstream response
	// (signature over Body and Timestamp); nil accepts unsigned responses.
	VerifyResponse *wssec.Verifier
	// Timeout bounds the whole upstream exchange, response body included;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// Transport sends upstream requests; nil means a transport with dial and
	// TLS handshake timeouts and no environment proxy.
	Transport http.RoundTripper
	// MaxBodyBytes caps the client's JSON body; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxResponseBytes caps the upstream's response (after decompression);
	// zero means Limits.MaxBytes, or DefaultMaxResponse when that is zero too.
	MaxResponseBytes int64
	// Limits bound parsing of the rendered request and of the upstream's response.
	Limits wssec.Limits
	// ForwardHeaders are copied from the incoming request to the SOAP call
	// (the route's forward_claims headers, set by rest). Nothing else is.
	ForwardHeaders []string
	// Logger receives one audit record per request; nil discards them.
	Logger *slog.Logger
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
}

// Handler serves one bridge route. It is safe for concurrent use.
type Handler struct {
	o        Options
	prefix   string
	upstream *url.URL
	ops      map[string]*Operation
	client   *http.Client
	maxResp  int64
	log      *slog.Logger
	forward  []string
}

// New checks the options and builds the handler.
func New(o Options) (*Handler, error) {
	u, err := url.Parse(o.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("bridge: upstream %q must be an absolute http or https URL without credentials or fragment", o.Upstream)
	}
	if o.SOAPVersion != wssec.SOAP11 && o.SOAPVersion != wssec.SOAP12 {
		return nil, errors.New("bridge: SOAP version must be 1.1 or 1.2")
	}
	if o.Identity == nil {
		return nil, errors.New("bridge: a signing identity is required")
	}
	if len(o.Operations) == 0 {
		return nil, errors.New("bridge: at least one operation is required")
	}
	h := &Handler{o: o, upstream: u, ops: map[string]*Operation{}}
	for i := range o.Operations {
		op := &o.Operations[i]
		if op.Name == "" || strings.ContainsAny(op.Name, "/?#%") {
			return nil, fmt.Errorf("bridge: operation name %q is not one path segment", op.Name)
		}
		if _, dup := h.ops[op.Name]; dup {
			return nil, fmt.Errorf("bridge: operation %q is defined twice", op.Name)
		}
		if !validAction(op.Action) {
			return nil, fmt.Errorf("bridge: operation %q: action must be printable ASCII without spaces, quotes or backslashes", op.Name)
		}
		if op.Template == nil {
			return nil, fmt.Errorf("bridge: operation %q has no template", op.Name)
		}
		h.ops[op.Name] = op
	}
	h.prefix = strings.TrimSuffix(o.PathPrefix, "/")
	for _, name := range o.ForwardHeaders {
		canon := http.CanonicalHeaderKey(name)
		switch canon {
		case "Authorization", "Proxy-Authorization", "Cookie", "Host", "Content-Type", "Content-Length", "Soapaction":
			return nil, fmt.Errorf("bridge: header %s may not be forwarded", canon)
		}
		h.forward = append(h.forward, canon)
	}
	if h.o.MaxBodyBytes <= 0 {
		h.o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if h.o.Timeout <= 0 {
		h.o.Timeout = DefaultTimeout
	}
	h.maxResp = o.MaxResponseBytes
	if h.maxResp <= 0 {
		h.maxResp = o.Limits.MaxBytes
	}
	if h.maxResp <= 0 {
		h.maxResp = DefaultMaxResponse
	}
	if h.o.Limits.MaxBytes <= 0 || h.o.Limits.MaxBytes > h.maxResp {
		h.o.Limits.MaxBytes = h.maxResp
	}
	rt := o.Transport
	if rt == nil {
		rt = proxy.NewTransport()
	}
	h.client = &http.Client{
		Transport: rt,
		// A redirect would re-send a signed message somewhere else, or turn
		// it into a GET; either way the answer is not the operation's.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	h.log = o.Logger
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.o.Now == nil {
		h.o.Now = time.Now
	}
	return h, nil
}

// validAction keeps the action safe inside a quoted header value.
func validAction(a string) bool {
	if a == "" {
		return false
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// result is what one request comes to: the response and the audit detail.
type result struct {
	op             string
	status         int
	body           any // written as JSON when err is nil
	err            error
	upstreamStatus int
	signer         string
}

// ReportsOutcome tells rest that the bridge, its upstream, reports the
// outcome of the requests rest accepts: the bridge may still refuse them.
func (h *Handler) ReportsOutcome() {}

// ServeHTTP runs one bridged call and writes the JSON answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.o.Now()
	id := reqscope.IDOf(r)
	r.Header.Set(reqscope.Header, id) // one ID for the SOAP call, the answer and the log
	res := h.serve(w, r, id)

	status := res.status
	if res.err != nil && !errors.Is(res.err, ErrUpstreamFault) {
		status = errorStatus(res.err)
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		err := res.err
		if status < 500 {
			// A client error's message names only its JSON or the template's fields.
			err = rest.Describe(err, strings.TrimPrefix(err.Error(), "bridge: "))
		}
		rest.WriteError(w, r, status, err)
	} else {
		out, err := json.Marshal(res.body)
		if err != nil { // cannot happen for the types built here
			res.err, status = err, http.StatusInternalServerError
			rest.WriteError(w, r, status, err)
		} else {
			out = append(out, '\n')
			hdr := w.Header()
			hdr.Set(reqscope.Header, id)
			hdr.Set("Content-Type", "application/json")
			hdr.Set("Cache-Control", "no-store")
			hdr.Set("X-Content-Type-Options", "nosniff")
			hdr.Set("Content-Length", strconv.Itoa(len(out)))
			w.WriteHeader(status)
			_, _ = w.Write(out)
		}
	}
	h.audit(r, id, res, status, h.o.Now().Sub(start))
}

// audit logs the request and reports its outcome to the request's scope:
// client errors are Rejected (WARN), the upstream's failures Failed and
// the gateway's Unavailable (ERROR); a SOAP Fault is an answer (INFO).
func (h *Handler) audit(r *http.Request, id string, res result, status int, took time.Duration) {
	outcome, level, why := reqscope.Accepted, slog.LevelInfo, reason(res.err)
	switch {
	case res.err == nil, errors.Is(res.err, ErrUpstreamFault):
	case status < 500:
		outcome, level = reqscope.Rejected, slog.LevelWarn
	case upstreamError(res.err):
		outcome, level = reqscope.Failed, slog.LevelError
	default:
		outcome, level = reqscope.Unavailable, slog.LevelError
	}
	reqscope.Of(r).Decide(outcome, why)
	attrs := []slog.Attr{
		slog.String("route", h.o.Route),
		slog.String("request_id", id),
		slog.String("operation", res.op),
		slog.String("outcome", string(outcome)),
		slog.String("reason", why),
		slog.Int("status", status),
		slog.Float64("duration_seconds", took.Seconds()),
	}
	if res.upstreamStatus != 0 {
		attrs = append(attrs, slog.Int("upstream_status", res.upstreamStatus))
	}
	if res.signer != "" {
		attrs = append(attrs, slog.String("response_signer", res.signer))
	}
	if res.err != nil {
		attrs = append(attrs, slog.String("error", res.err.Error()))
	}
	h.log.LogAttrs(r.Context(), level, "bridge request", attrs...)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, id string) result {
	name, ok := strings.CutPrefix(r.URL.Path, h.prefix+"/")
	op := h.ops[name]
	if !ok || op == nil {
		return result{err: ErrUnknownOperation}
	}
	res := result{op: op.Name}
	fail := func(err error) result { res.err = err; return res }
	if r.Method != http.MethodPost {
		return fail(ErrMethodNotAllowed)
	}
	if !jsonMediaType(r.Header.Get("Content-Type")) {
		return fail(ErrUnsupportedMediaType)
	}
	data, err := h.readJSON(w, r)
	if err != nil {
		return fail(err)
	}

	env, err := h.envelope(op, data)
	if err != nil {
		return fail(err)
	}
	chain, key, err := h.o.Identity.Identity()
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrIdentityUnavailable, err))
	}
	signer := wssec.Signer{Chain: chain, Key: key, TTL: h.o.SignatureTTL, Now: h.o.Now}
	if h.o.SAMLAssertion != nil {
		if signer.SAMLAssertion, err = h.o.SAMLAssertion.Assertion(); err != nil {
			return fail(fmt.Errorf("%w: SAML assertion: %w", ErrIdentityUnavailable, err))
		}
		signer.SAMLLimits = h.o.Limits
	}
	var signed []byte
	if h.o.EncryptFor != nil {
		cert, cerr := h.o.EncryptFor.Certificate()
		if cerr != nil {
			return fail(fmt.Errorf("%w: encryption certificate: %w", ErrIdentityUnavailable, cerr))
		}
		signed, err = wssec.SignThenEncrypt(env, &signer, cert, wssec.EncryptOptions{Now: h.o.Now})
	} else {
		signed, err = signer.Sign(env)
	}
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrSigning, err))
	}

	status, ct, respBody, err := h.call(r, op, signed, id)
	res.upstreamStatus = status
	if err != nil {
		return fail(err)
	}
	return h.answer(r.Context(), res, status, ct, respBody)
}

// readJSON reads the size-capped body and decodes it as one JSON object.
// Numbers keep their JSON text (json.Number), so large IDs survive.
func (h *Handler) readJSON(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("%w (over %d bytes)", ErrBodyTooLarge, h.o.MaxBodyBytes)
		}
		return nil, fmt.Errorf("%w: the body could not be read", ErrInvalidJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidJSON, jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON value", ErrInvalidJSON)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w, not %s", ErrNotObject, jsonKind(v))
	}
	return obj, nil
}

// jsonProblem describes a decoding error without echoing Go types.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return "malformed"
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "an object"
}

// jsonMediaType accepts application/json and application/*+json.
func jsonMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// envelope renders op's template over data inside a SOAP envelope of the
// route's version and parses the result with the hardened parser, so what
// is signed is a checked tree.
func (h *Handler) envelope(op *Operation, data map[string]any) (*wssec.Envelope, error) {
	ns, prefix := wssec.NSSOAP11, "soapenv"
	if h.o.SOAPVersion == wssec.SOAP12 {
		ns, prefix = wssec.NSSOAP12, "env"
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<` + prefix + `:Envelope xmlns:` + prefix + `="` + ns + `"><` + prefix + `:Header/><` + prefix + `:Body>`)
	head := int64(b.Len())
	if err := op.Template.Render(&limitWriter{w: &b, n: h.o.Limits.MaxBytes - head - 64}, data); err != nil {
		return nil, err
	}
	b.WriteString(`</` + prefix + `:Body></` + prefix + `:Envelope>`)
	env, err := wssec.ParseEnvelope(b.Bytes(), h.o.Limits)
	if err != nil {
		return nil, fmt.Errorf("%w: operation %s: %w", ErrBadTemplateOutput, op.Name, err)
	}
	return env, nil
}

var errTimeout = errors.New("bridge: upstream timeout")

// call sends the signed envelope and reads the whole, size-capped answer.
func (h *Handler) call(r *http.Request, op *Operation, signed []byte, id string) (status int, contentType string, body []byte, err error) {
	ctx, cancel := context.WithTimeoutCause(r.Context(), h.o.Timeout, errTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.upstream.String(), bytes.NewReader(signed))
	if err != nil {
		return 0, "", nil, fmt.Errorf("%w: %w", ErrUpstreamUnavailable, err)
	}
	if h.o.SOAPVersion == wssec.SOAP12 {
		req.Header.Set("Content-Type", ContentType12+`; action="`+op.Action+`"`)
	} else {
		req.Header.Set("Content-Type", ContentType11)
		req.Header.Set("SOAPAction", `"`+op.Action+`"`)
	}
	req.Header.Set("Accept", "text/xml, application/soap+xml")
	req.Header.Set("User-Agent", "wsgate-bridge")
	req.Header.Set(reqscope.Header, id)
	for _, name := range h.forward {
		if v := r.Header.Values(name); len(v) > 0 {
			req.Header[name] = append([]string(nil), v...)
		}
	}
	classify := func(err error) error {
		if errors.Is(context.Cause(ctx), errTimeout) {
			return fmt.Errorf("%w after %s: %w", ErrUpstreamTimeout, h.o.Timeout, err)
		}
		return fmt.Errorf("%w: %w", ErrUpstreamUnavailable, err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, "", nil, classify(err)
	}
	defer resp.Body.Close()
	status, contentType = resp.StatusCode, resp.Header.Get("Content-Type")
	body, err = io.ReadAll(io.LimitReader(resp.Body, h.maxResp+1))
	if err != nil {
		return status, contentType, nil, classify(err)
	}
	if int64(len(body)) > h.maxResp {
		return status, contentType, nil, fmt.Errorf("%w: over %d bytes", ErrBadUpstreamResponse, h.maxResp)
	}
	return status, contentType, body, nil
}

// answer turns the upstream's response into the client's.
func (h *Handler) answer(ctx context.Context, res result, status int, contentType string, body []byte) result {
	fail := func(err error) result { res.err = err; return res }
	if len(bytes.TrimSpace(body)) == 0 {
		// A one-way operation's 202/204. With verify_response there is
		// nothing to verify, so it cannot be trusted to mean success.
		if status/100 == 2 && h.o.VerifyResponse == nil {
			res.status, res.body = http.StatusOK, Object{{"status", status}, {"body", nil}}
			return res
		}
		return fail(fmt.Errorf("%w: empty body with HTTP %d", ErrBadUpstreamResponse, status))
	}
	env, err := wssec.ParseEnvelope(body, h.o.Limits)
	if err != nil {
		if status/100 != 2 {
			return fail(fmt.Errorf("%w: HTTP %d: %w", ErrUpstreamStatus, status, err))
		}
		return fail(fmt.Errorf("%w: %w", ErrBadUpstreamResponse, err))
	}
	defer env.Release() // what res keeps is strings, not the tree
	if err := h.sameVersion(env.Version, contentType); err != nil {
		return fail(err)
	}
	if h.o.VerifyResponse != nil {
		v, err := h.o.VerifyResponse.VerifyEnvelope(ctx, env)
		if err != nil {
			return fail(responseVerifyError(err))
		}
		if v.Signer != nil {
			res.signer = v.Signer.Subject.String()
		}
	}
	if f := FaultOf(env); f != nil {
		res.err = fmt.Errorf("%w: %s", ErrUpstreamFault, f.Code)
		res.status, res.body = http.StatusBadGateway, Object{{"fault", f.JSON()}}
		return res
	}
	if status/100 != 2 {
		return fail(fmt.Errorf("%w: HTTP %d", ErrUpstreamStatus, status))
	}
	res.status, res.body = http.StatusOK, Object{{"status", status}, {"body", BodyJSON(env.Body)}}
	return res
}

// sameVersion refuses a response in the other SOAP version than the route's
// (a 1.2 envelope to a 1.1 call, or the reverse), or whose content type
// names the other version's binding: mapping it would hand the client a
// Body its operation never defined.
func (h *Handler) sameVersion(got wssec.SOAPVersion, contentType string) error {
	if got != h.o.SOAPVersion {
		return fmt.Errorf("%w: a SOAP %s envelope to a SOAP %s call", ErrVersionMismatch, got, h.o.SOAPVersion)
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	other := "application/soap+xml"
	if h.o.SOAPVersion == wssec.SOAP12 {
		other = "text/xml"
	}
	if mt == other {
		return fmt.Errorf("%w: SOAP %s envelope sent as %s", ErrVersionMismatch, got, mt)
	}
	return nil
}
