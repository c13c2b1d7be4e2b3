// Package openapi holds REST and bridge routes to their OpenAPI 3 contract:
// a middleware, placed behind authentication and in front of the upstream,
// that refuses a request whose path, method, parameters or JSON body the
// document does not allow, and optionally a response that breaks it.
//
// kin-openapi does the validation; this package loads the document without
// the network, maps kin-openapi's errors to sentinels and client-safe
// locations (query.limit, body.amount), and closes the gaps a backend could
// read differently from the validator: duplicate JSON keys, invalid UTF-8,
// a scalar query parameter sent twice. Security schemes in the document are
// not enforced here: authentication is the route's own (oauth, api_key).
package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"wsgate/internal/reqscope"
)

// Sentinels, one per distinguishable refusal.
var (
	// ErrDocument is a contract document that cannot be loaded or is not valid OpenAPI 3.
	ErrDocument = errors.New("openapi: contract document unusable")
	// ErrNoSuchPath is a request path the document does not describe (404).
	ErrNoSuchPath = errors.New("openapi: path not in the contract")
	// ErrMethodNotAllowed is a described path with an undescribed method (405).
	ErrMethodNotAllowed = errors.New("openapi: method not in the contract")
	// ErrInvalidRequest is a parameter, header or body the document does not allow (400).
	ErrInvalidRequest = errors.New("openapi: request does not match the contract")
	// ErrAmbiguousBody is a JSON body two parsers could read differently:
	// a duplicate object key, invalid UTF-8, nesting deeper than maxDepth (400).
	ErrAmbiguousBody = errors.New("openapi: ambiguous JSON body")
	// ErrAmbiguousQuery is a non-array query parameter sent more than once (400).
	ErrAmbiguousQuery = errors.New("openapi: query parameter repeated")
	// ErrBodyTooLarge is a body over Options.MaxBodyBytes (413).
	ErrBodyTooLarge = errors.New("openapi: body too large")
	// ErrInvalidResponse is an upstream response the document does not allow (502).
	ErrInvalidResponse = errors.New("openapi: response does not match the contract")
)

const (
	// maxDocumentBytes caps the document and each file it references.
	maxDocumentBytes = 4 << 20
	// maxDepth caps JSON nesting in a body.
	maxDepth = 64
	// defaultMaxBody applies when Options.MaxBodyBytes is 0.
	defaultMaxBody = 1 << 20
)

// Error is a refusal with the location it names (query.limit, body.amount,
// header.Content-Type, path.id). It matches its sentinel with errors.Is.
type Error struct {
	Sentinel error
	Location string
	Cause    error
}

func (e *Error) Error() string {
	s := e.Sentinel.Error()
	if e.Location != "" {
		s += ": " + e.Location
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Is matches the sentinel.
func (e *Error) Is(target error) bool { return target == e.Sentinel }

// Unwrap gives the kin-openapi cause, for the log.
func (e *Error) Unwrap() error { return e.Cause }

// Contract is a loaded document and the router built from it, once per
// route load.
type Contract struct {
	doc    *openapi3.T
	router routers.Router
}

// Load reads the document at path and every file it references, from the
// local file system only (no http/https refs), each capped at 4 MiB, then
// validates it and builds its router. The document's servers are ignored:
// paths are matched against the request path under the route's path_prefix.
func Load(path string) (*Contract, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = true
	loader.ReadFromURIFunc = readLocal
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDocument, path, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDocument, path, err)
	}
	local := *doc
	local.Servers = nil // servers name the upstream; the gateway matches under path_prefix
	for _, p := range local.Paths.Map() {
		if len(p.Servers) > 0 {
			return nil, fmt.Errorf("%w: %s: per-path servers are not supported", ErrDocument, path)
		}
	}
	router, err := gorillamux.NewRouter(&local)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDocument, path, err)
	}
	return &Contract{doc: &local, router: router}, nil
}

// readLocal is the loader's only way to read a reference: a local file,
// bounded. A URL with a scheme other than file, or a host, is refused.
func readLocal(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
	if (u.Scheme != "" && u.Scheme != "file") || u.Host != "" {
		return nil, fmt.Errorf("reference %q: only local files are read", u.Redacted())
	}
	f, err := os.Open(filepath.FromSlash(u.Path))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDocumentBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", u.Path, maxDocumentBytes)
	}
	return b, nil
}

// Options configure the middleware.
type Options struct {
	// Contract is the loaded document.
	Contract *Contract
	// PathPrefix is the route's path_prefix, removed before matching.
	PathPrefix string
	// MaxBodyBytes caps a request body read for validation, and a response
	// buffered for validation. 0 means 1 MiB.
	MaxBodyBytes int64
	// ValidateResponses checks upstream responses too (status, headers,
	// body); a violation is answered with 502.
	ValidateResponses bool
	// OnError renders a refusal in the route's protocol (rest.WriteError).
	// A 4xx error passed to it may carry a client-facing description via Describe.
	OnError func(w http.ResponseWriter, r *http.Request, status int, err error)
	// Describe attaches the client-facing description (rest.Describe); may be nil.
	Describe func(err error, desc string) error
	// Logger gets the cause of each refusal.
	Logger *slog.Logger
}

// New wraps next with the contract check.
func New(next http.Handler, o Options) (http.Handler, error) {
	if o.Contract == nil || next == nil || o.OnError == nil {
		return nil, errors.New("openapi: Contract, next and OnError are required")
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = defaultMaxBody
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Describe == nil {
		o.Describe = func(err error, _ string) error { return err }
	}
	return &handler{o: o, next: next, prefix: strings.TrimSuffix(o.PathPrefix, "/")}, nil
}

type handler struct {
	o      Options
	next   http.Handler
	prefix string
}

// filterOptions: defaults are never written into the body (the upstream
// gets the bytes that were validated), an undescribed body is refused, and
// security schemes are left to the route's own authentication.
func (h *handler) filterOptions() *openapi3filter.Options {
	return &openapi3filter.Options{
		SkipSettingDefaults:               true,
		RejectWhenRequestBodyNotSpecified: true,
		IncludeResponseStatus:             true,
		AuthenticationFunc:                openapi3filter.NoopAuthenticationFunc,
	}
}

// outcomeReporter is rest.OutcomeReporter's method: a handler behind the
// authentication edge that decides the outcome of what the edge let in.
type outcomeReporter interface{ ReportsOutcome() }

// ReportsOutcome tells the REST edge in front that the contract decides the
// outcome of the requests it lets through: a request the contract refuses
// is rejected, not accepted.
func (h *handler) ReportsOutcome() {}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	input, err := h.check(r)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	if !h.o.ValidateResponses {
		h.accept(r)
		h.next.ServeHTTP(w, r)
		return
	}
	rec := &recorder{header: http.Header{}, max: h.o.MaxBodyBytes}
	h.next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.overflow {
		h.refuse(w, r, &Error{Sentinel: ErrInvalidResponse, Location: "body", Cause: ErrBodyTooLarge})
		return
	}
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 rec.status,
		Header:                 rec.header,
		Body:                   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Options:                h.filterOptions(),
	}
	if err := openapi3filter.ValidateResponse(r.Context(), rin); err != nil {
		h.refuse(w, r, &Error{Sentinel: ErrInvalidResponse, Location: location(err), Cause: err})
		return
	}
	h.accept(r)
	dst := w.Header()
	for k, v := range rec.header {
		dst[k] = v
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// accept records that the contract let r through, unless the handler
// behind it (the bridge) still decides.
func (h *handler) accept(r *http.Request) {
	if _, later := h.next.(outcomeReporter); !later {
		reqscope.Of(r).Decide(reqscope.Accepted, "ok")
	}
}

// refuse logs the cause and answers in the route's protocol.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusOf(err)
	outcome, level := reqscope.Rejected, slog.LevelWarn
	switch {
	case errors.Is(err, ErrInvalidResponse):
		outcome, level = reqscope.Failed, slog.LevelError
	case status >= http.StatusInternalServerError:
		outcome, level = reqscope.Unavailable, slog.LevelError
	}
	reqscope.Of(r).Decide(outcome, "contract")
	h.o.Logger.LogAttrs(r.Context(), level, "openapi contract refused",
		slog.String("request_id", reqscope.IDOf(r)), slog.String("outcome", string(outcome)),
		slog.Int("status", status), logCause(err))
	if status == http.StatusMethodNotAllowed {
		var e *Error
		if errors.As(err, &e) && e.Location != "" {
			w.Header().Set("Allow", e.Location)
		}
	}
	if status == http.StatusBadRequest {
		var e *Error
		if errors.As(err, &e) && e.Location != "" {
			err = h.o.Describe(err, e.Location+" does not match the API contract")
		}
	}
	h.o.OnError(w, r, status, err)
}

// logCause is what the log learns of a refusal: the sentinel, the location
// and the schema keyword that failed (type, enum, pattern...). Never the
// kin-openapi text: its schema errors quote the offending request or
// response value, which may be a password or a card number.
func logCause(err error) slog.Attr {
	var e *Error
	if !errors.As(err, &e) {
		return slog.String("error", "unclassified contract failure")
	}
	attrs := []slog.Attr{slog.String("error", e.Sentinel.Error()), slog.String("location", e.Location)}
	var se *openapi3.SchemaError
	if errors.As(e.Cause, &se) {
		attrs = append(attrs, slog.String("schema_field", se.SchemaField))
	}
	return slog.Attr{Key: "cause", Value: slog.GroupValue(attrs...)}
}

// StatusOf maps this package's errors to the HTTP status of the refusal.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, ErrNoSuchPath):
		return http.StatusNotFound
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrBodyTooLarge) && !errors.Is(err, ErrInvalidResponse):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrInvalidResponse):
		return http.StatusBadGateway
	case errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrAmbiguousBody), errors.Is(err, ErrAmbiguousQuery):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// check validates r against the contract. On success r.Body holds the
// validated bytes (read once, bounded) for the upstream.
func (h *handler) check(r *http.Request) (*openapi3filter.RequestValidationInput, error) {
	rel := r.URL.Path
	if h.prefix != "" {
		rel = strings.TrimPrefix(rel, h.prefix)
	}
	if rel == "" || rel[0] != '/' {
		rel = "/" + rel
	}
	probe := r.WithContext(r.Context())
	u := *r.URL
	u.Path, u.RawPath, u.Host, u.Scheme = rel, "", "", ""
	probe.URL = &u
	probe.Host = ""

	route, params, err := h.o.Contract.router.FindRoute(probe)
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return nil, &Error{Sentinel: ErrMethodNotAllowed, Location: h.allowed(probe)}
	case err != nil:
		return nil, &Error{Sentinel: ErrNoSuchPath}
	}

	// Query: a scalar parameter sent twice is read first-wins by the
	// validator and last-wins by many frameworks.
	// ParseQuery, unlike URL.Query, reports the pairs it could not read (a
	// ';' separator, a bad escape): a backend may read them, so they are refused.
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, &Error{Sentinel: ErrAmbiguousQuery, Location: "query", Cause: err}
	}
	for name, vals := range q {
		if len(vals) > 1 && !isArrayParam(route, name) {
			return nil, &Error{Sentinel: ErrAmbiguousQuery, Location: "query." + name}
		}
	}

	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		body, err = io.ReadAll(io.LimitReader(r.Body, h.o.MaxBodyBytes+1))
		_ = r.Body.Close()
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe) || int64(len(body)) > h.o.MaxBodyBytes:
			return nil, &Error{Sentinel: ErrBodyTooLarge, Location: "body"}
		case err != nil:
			return nil, &Error{Sentinel: ErrInvalidRequest, Location: "body", Cause: err}
		}
		if len(body) > 0 && isJSON(r.Header.Get("Content-Type")) {
			if err := checkJSON(body); err != nil {
				return nil, &Error{Sentinel: ErrAmbiguousBody, Location: "body", Cause: err}
			}
		}
		if rb := route.Operation.RequestBody; rb != nil && rb.Value != nil && len(body) > 0 &&
			rb.Value.Content.Get(r.Header.Get("Content-Type")) == nil {
			return nil, &Error{Sentinel: ErrInvalidRequest, Location: "header.Content-Type"}
		}
		r.ContentLength = int64(len(body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		probe.Body = io.NopCloser(bytes.NewReader(body))
		probe.ContentLength = int64(len(body))
	}

	input := &openapi3filter.RequestValidationInput{
		Request:     probe,
		PathParams:  params,
		QueryParams: q,
		Route:       route,
		Options:     h.filterOptions(),
	}
	if err := openapi3filter.ValidateRequest(r.Context(), input); err != nil {
		return nil, &Error{Sentinel: ErrInvalidRequest, Location: location(err), Cause: err}
	}
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return input, nil
}

// allowed lists the methods the document describes for probe's path, for
// the 405's Allow header.
func (h *handler) allowed(probe *http.Request) string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace} {
		try := *probe
		try.Method = m
		if _, _, err := h.o.Contract.router.FindRoute(&try); err == nil {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

func isArrayParam(route *routers.Route, name string) bool {
	find := func(ps openapi3.Parameters) *openapi3.Parameter {
		if p := ps.GetByInAndName(openapi3.ParameterInQuery, name); p != nil {
			return p
		}
		return nil
	}
	p := find(route.Operation.Parameters)
	if p == nil {
		p = find(route.PathItem.Parameters)
	}
	if p == nil {
		return false // undescribed: a backend may read it either way
	}
	return p.Schema != nil && p.Schema.Value != nil && p.Schema.Value.Type.Is(openapi3.TypeArray)
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// location names where err points in the request: query.limit, path.id,
// header.X-Trace, body.items.0.sku, or body.
func location(err error) string {
	var me openapi3.MultiError
	if errors.As(err, &me) && len(me) > 0 {
		return location(me[0])
	}
	var re *openapi3filter.RequestError
	if errors.As(err, &re) {
		if p := re.Parameter; p != nil {
			return p.In + "." + p.Name
		}
		if re.RequestBody != nil {
			var se *openapi3.SchemaError
			if errors.As(err, &se) {
				if ptr := se.JSONPointer(); len(ptr) > 0 {
					return "body." + strings.Join(ptr, ".")
				}
			}
			return "body"
		}
		return "request"
	}
	var rse *openapi3filter.ResponseError
	if errors.As(err, &rse) {
		var se *openapi3.SchemaError
		if errors.As(err, &se) {
			if ptr := se.JSONPointer(); len(ptr) > 0 {
				return "response.body." + strings.Join(ptr, ".")
			}
		}
		return "response"
	}
	return "request"
}

// checkJSON refuses a JSON text two parsers could read differently: a
// duplicate key in an object (first-wins vs last-wins), invalid UTF-8
// (replaced by U+FFFD in Go, kept by others), nesting past maxDepth, more
// than one value. json.Valid checks the grammar first, so the scan below
// only has to find strings, keys and brackets.
func checkJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("invalid UTF-8")
	}
	if !json.Valid(b) {
		return errors.New("not one JSON value")
	}
	type frame struct {
		object bool
		keys   map[string]struct{}
	}
	var stack []frame
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			if len(stack) >= maxDepth {
				return fmt.Errorf("nested deeper than %d", maxDepth)
			}
			stack = append(stack, frame{object: b[i] == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case '"':
			start := i
			escaped := false
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					escaped = true
					i++
				}
			}
			top := len(stack) - 1
			if top < 0 || !stack[top].object || !followedByColon(b[i+1:]) {
				continue
			}
			k := string(b[start+1 : i])
			if escaped {
				if err := json.Unmarshal(b[start:i+1], &k); err != nil {
					return err
				}
			}
			if stack[top].keys == nil {
				stack[top].keys = map[string]struct{}{}
			}
			if _, dup := stack[top].keys[k]; dup {
				return fmt.Errorf("duplicate key %q", truncate(k))
			}
			stack[top].keys[k] = struct{}{}
		}
	}
	return nil
}

// followedByColon reports whether the next non-space byte is ':' (the
// string before it was an object key).
func followedByColon(rest []byte) bool {
	for _, c := range rest {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == ':'
	}
	return false
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// recorder buffers the upstream's response for validation, up to max bytes.
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	max      int64
	overflow bool
}

func (c *recorder) Header() http.Header { return c.header }

func (c *recorder) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *recorder) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if int64(c.body.Len()+len(p)) > c.max {
		c.overflow = true
		return 0, ErrBodyTooLarge
	}
	return c.body.Write(p)
}
