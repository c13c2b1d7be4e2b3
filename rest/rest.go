// Package rest is the HTTP edge of REST routes: a plain http.Handler that
// takes the bearer token from the request, has oauth validate it and check
// the route's scopes, applies the rate limit, rewrites identity headers and
// hands the request to the upstream handler (the shared reverse proxy or a
// bridge). Refusals follow RFC 6750 and never reach the upstream. WriteError
// is the JSON error renderer of every REST and bridge route.
//
// A route may also take API keys instead of (or besides) tokens, check
// claim rules, require DPoP proofs (RFC 9449) or certificate-bound tokens
// (RFC 8705), and answer CORS preflights before any authentication (CORS).
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"wsgate/internal/ratelimit"
	"wsgate/internal/reqscope"
	"wsgate/oauth"
)

// Validator validates a raw bearer token; *oauth.Validator satisfies it.
type Validator interface {
	Validate(ctx context.Context, raw string) (*oauth.Token, error)
}

// PerSubject is the rate_limit.per value the edge applies: the subject is
// known only once the token is. Limits per client_ip, client_cert or route
// are the gateway's front door's, before any work.
const PerSubject = "subject"

// DefaultMaxFormBytes caps a form body read whole when Options.MaxFormBytes is zero.
const DefaultMaxFormBytes = 10 << 20

// Options configure one REST route's handler.
type Options struct {
	// Route is the route name, for logs.
	Route string
	// PathPrefix is the route's path_prefix; scope globs match the path under it.
	PathPrefix string
	// Validator validates access tokens; required unless APIKeys is set.
	Validator Validator
	// Scopes, when nil, requires only a valid token.
	Scopes *oauth.ScopePolicy
	// Claims, when set, are checked after the scopes (403 access_denied).
	Claims *oauth.ClaimPolicy
	// DPoP, when set, accepts Authorization: DPoP with a DPoP proof.
	DPoP *oauth.DPoPVerifier
	// DPoPRequired refuses bearer tokens: every token needs a DPoP proof.
	DPoPRequired bool
	// TrustForwardedProto reports whether r came from a trusted proxy,
	// whose X-Forwarded-Proto then names the scheme of a DPoP proof's htu.
	TrustForwardedProto func(r *http.Request) bool
	// RequireCertificateBinding refuses tokens that are not bound (RFC
	// 8705 cnf.x5t#S256) to this connection's client certificate. A token
	// that is bound is checked whether or not this is set.
	RequireCertificateBinding bool
	// APIKeys, when set, accepts an API key in APIKeyHeader instead of a token.
	APIKeys APIKeyValidator
	// APIKeyHeader names the API key header; required with APIKeys.
	APIKeyHeader string
	// CORS, when set, answers preflights and adds CORS headers to every
	// response to an allowed origin.
	CORS *CORS
	// ForwardClaims maps a claim name to the upstream header carrying it.
	// Client-sent copies of these headers are always dropped.
	ForwardClaims map[string]string
	// KeepAuthorization forwards the Authorization header upstream.
	KeepAuthorization bool
	// RateLimiter, when set, limits accepted credentials per subject: the
	// token's sub, else its client_id, else the client IP.
	RateLimiter ratelimit.Limiter
	// MaxFormBytes caps a form body (urlencoded or multipart), which an
	// accepted request has read whole to refuse a second token or a _method
	// in it; over it the answer is 413. Zero means DefaultMaxFormBytes.
	MaxFormBytes int64
	// Upstream receives accepted requests; required.
	Upstream http.Handler
	// Logger receives one audit record per decision; nil discards.
	Logger *slog.Logger
	// OnDecision, when set, is called once per request (metrics).
	OnDecision func(Decision)
}

// OutcomeReporter is implemented by an upstream handler that reports the
// outcome of the requests rest accepts itself, because it may still refuse
// them (the bridge checks the body after rest checked the token). rest then
// reports only its refusals to the request's scope, whose first decision
// wins.
type OutcomeReporter interface {
	http.Handler
	ReportsOutcome()
}

// Decision is the outcome of one request, for metrics. The same outcome and
// reason are reported to the request's reqscope.Scope.
type Decision struct {
	// Context is the request's context (it carries the caller's request state).
	Context context.Context
	Route   string
	// Outcome is Accepted, Rejected, RateLimited or Unavailable.
	Outcome reqscope.Outcome
	// Reason is oauth.Reason of the error ("ok" when accepted).
	Reason string
	// Err is the refusal's error (nil when accepted); match it with errors.Is.
	Err error
}

// Headers that forward_claims may never set.
var reservedHeaders = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Host": true,
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Upgrade": true, "Proxy-Connection": true, "Content-Length": true, "Content-Type": true,
	"Content-Encoding": true, "Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true,
	"X-Forwarded-Proto": true, "X-Request-Id": true,
}

type handler struct {
	o       Options
	forward []forwardHeader
	drop    map[string]bool // canonical header names dropped from client requests
}

type forwardHeader struct{ claim, header string }

// overrideHeaders make some frameworks run another method or path than the
// request line's, the one the scopes were checked for (X-HTTP-Method-Override
// and kin; X-Original-URL and X-Rewrite-URL in IIS and Symfony). They are
// removed before authorization, so the upstream acts on what was authorized.
var overrideHeaders = map[string]bool{
	"X-Http-Method-Override": true, "X-Http-Method": true, "X-Method-Override": true,
	"X-Original-Url": true, "X-Rewrite-Url": true, "X-Original-Method": true,
}

// upgradeHeaders are removed from every request: no REST route allows a
// protocol upgrade (h2c, WebSocket), and Connection, which would have the
// reverse proxy drop the headers it names, means nothing past this hop.
var upgradeHeaders = []string{"Connection", "Upgrade", "Http2-Settings"}

// New checks the options and returns the route's handler, a plain
// http.Handler that always writes the response. It reads the request ID
// and client IP from the request's reqscope.Scope (without one, the
// X-Request-ID header or a fresh ID, and the peer address) and reports its
// decision there.
func New(o Options) (http.Handler, error) {
	if (o.Validator == nil && o.APIKeys == nil) || o.Upstream == nil {
		return nil, errors.New("rest: Validator (or APIKeys) and Upstream are required")
	}
	if o.APIKeys != nil {
		canon := http.CanonicalHeaderKey(o.APIKeyHeader)
		if !validHeaderName(o.APIKeyHeader) || reservedHeaders[canon] || canon == "Dpop" {
			return nil, fmt.Errorf("rest: api_key header %q is not a usable header name", o.APIKeyHeader)
		}
	}
	if o.DPoPRequired && o.DPoP == nil {
		return nil, errors.New("rest: DPoPRequired needs DPoP")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxFormBytes <= 0 {
		o.MaxFormBytes = DefaultMaxFormBytes
	}
	h := &handler{o: o, drop: map[string]bool{}}
	for claim, name := range o.ForwardClaims {
		if claim == "" || !validHeaderName(name) {
			return nil, fmt.Errorf("rest: forward_claims %q: %q is not a valid header name", claim, name)
		}
		canon := http.CanonicalHeaderKey(name)
		if reservedHeaders[canon] || overrideHeaders[canon] {
			return nil, fmt.Errorf("rest: forward_claims %q: header %s may not be set from a claim", claim, canon)
		}
		if h.drop[canon] {
			return nil, fmt.Errorf("rest: forward_claims: header %s is named twice", canon)
		}
		h.drop[canon] = true
		h.forward = append(h.forward, forwardHeader{claim: claim, header: canon})
	}
	for canon := range overrideHeaders {
		h.drop[canon] = true
	}
	return h, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	scope := reqscope.Of(r)
	reqID := reqscope.IDOf(r)
	// One ID for this request whoever reads it next (WriteError, the
	// upstream), even when no front door set a scope.
	r.Header.Set(reqscope.Header, reqID)
	h.dropClientHeaders(r)

	var tok *oauth.Token
	var fp oauth.Fingerprint
	var hasToken bool
	var scheme string
	refuse := func(err error) {
		err = h.challengeFor(err, scheme)
		status := StatusOf(err)
		outcome, level := reqscope.Rejected, slog.LevelWarn
		switch {
		case errors.Is(err, ErrRateLimited):
			outcome = reqscope.RateLimited
		case status >= 500:
			outcome, level = reqscope.Unavailable, slog.LevelError
		}
		why := reason(err)
		attrs := make([]slog.Attr, 0, 12)
		attrs = append(attrs, slog.String("route", h.o.Route), slog.String("request_id", reqID),
			slog.String("outcome", string(outcome)), slog.String("reason", why), slog.Int("status", status),
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		if hasToken {
			attrs = append(attrs, slog.String("token_sha256", fp.LogID()))
		}
		if tok != nil {
			attrs = append(attrs, slog.String("sub", tok.Subject), slog.String("client_id", tok.ClientID))
		}
		h.o.Logger.LogAttrs(r.Context(), level, "rest request refused", attrs...)
		scope.Decide(outcome, why)
		h.decide(r.Context(), outcome, why, err)
		WriteError(w, r, status, err)
	}

	if h.o.CORS != nil {
		// A preflight carries no credentials: answered here, never forwarded.
		if IsPreflight(r) {
			if err := h.o.CORS.Preflight(w, r); err != nil {
				refuse(err)
				return
			}
			scope.Decide(reqscope.Accepted, "cors_preflight")
			return
		}
		w = h.o.CORS.Wrap(w, r)
	}

	rel, err := h.relativePath(r)
	if err != nil {
		refuse(err)
		return
	}
	if err := checkQuery(r); err != nil {
		refuse(err)
		return
	}
	cred, err := h.authenticate(r)
	tok, fp, hasToken, scheme = cred.tok, cred.fp, cred.has, cred.scheme
	if err != nil {
		refuse(err)
		return
	}
	if err := h.o.Scopes.Check(r.Method, rel, tok.Scopes); err != nil {
		refuse(err)
		return
	}
	if err := h.o.Claims.Check(r.Method, rel, tok.Claims); err != nil {
		refuse(err)
		return
	}
	if err := h.limit(r, tok); err != nil {
		refuse(err)
		return
	}
	// The body is read only now, for a request already authorized.
	if err := h.checkForm(r); err != nil {
		refuse(err)
		return
	}

	h.rewrite(r, tok, reqID)
	h.o.Logger.LogAttrs(r.Context(), slog.LevelInfo, "rest request accepted",
		slog.String("route", h.o.Route), slog.String("request_id", reqID),
		slog.String("outcome", string(reqscope.Accepted)), slog.String("reason", "ok"),
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("token_sha256", fp.LogID()),
		slog.String("sub", tok.Subject), slog.String("client_id", tok.ClientID))
	if _, later := h.o.Upstream.(OutcomeReporter); !later {
		scope.Decide(reqscope.Accepted, "ok")
	}
	h.decide(r.Context(), reqscope.Accepted, "ok", nil)
	h.o.Upstream.ServeHTTP(w, r)
}

// dropClientHeaders removes, before anything reads the request, the
// headers only the gateway may set (forward_claims) and the override and
// upgrade headers, including spellings an upstream may fold into them
// (X_Auth_Subject becomes X-Auth-Subject in CGI-style servers).
func (h *handler) dropClientHeaders(r *http.Request) {
	for k := range r.Header {
		if h.drop[http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))] {
			delete(r.Header, k)
		}
	}
	for _, k := range upgradeHeaders {
		r.Header.Del(k)
	}
}

func reason(err error) string {
	switch {
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, ErrAmbiguousPath):
		return "ambiguous_path"
	case errors.Is(err, ErrTokenInBody):
		return "token_in_body"
	case errors.Is(err, ErrMethodOverride):
		return "method_override"
	case errors.Is(err, ErrBodyTooLarge):
		return "body_too_large"
	case errors.Is(err, ErrUnreadableBody):
		return "unreadable_body"
	case errors.Is(err, ErrMultipleCredentials):
		return "multiple_credentials"
	case errors.Is(err, ErrCORSRefused):
		return "cors_refused"
	}
	return oauth.Reason(err)
}

func (h *handler) decide(ctx context.Context, outcome reqscope.Outcome, reason string, err error) {
	if h.o.OnDecision != nil {
		h.o.OnDecision(Decision{Context: ctx, Route: h.o.Route, Outcome: outcome, Reason: reason, Err: err})
	}
}

// relativePath returns the request path under the route prefix, refusing
// any path the scope matcher and an upstream could read differently.
func (h *handler) relativePath(r *http.Request) (string, error) {
	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	raw := r.URL.RawPath
	if clean != p || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\;\x00") ||
		strings.Contains(strings.ToLower(raw), "%2f") || strings.Contains(strings.ToLower(raw), "%5c") {
		return "", ErrAmbiguousPath
	}
	rel := strings.TrimPrefix(p, strings.TrimSuffix(h.o.PathPrefix, "/"))
	if !strings.HasPrefix(rel, "/") {
		rel = "/" + rel
	}
	return rel, nil
}

// paramIs reports whether a query or form parameter name is want (lower
// case) as a lenient backend reads it: PHP turns '.' and ' ' into '_' and
// "name[...]" into an array under name; case is ignored to be safe.
func paramIs(name, want string) bool {
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	name = strings.TrimSpace(name)
	name = strings.NewReplacer(".", "_", " ", "_").Replace(name)
	return strings.EqualFold(name, want)
}

// checkParams refuses a second token or a method override among params.
func checkParams(params url.Values, inToken error) error {
	for name := range params {
		switch {
		case paramIs(name, "access_token"):
			return inToken
		case paramIs(name, "_method"):
			return ErrMethodOverride
		}
	}
	return nil
}

// checkQuery refuses a token (oauth refuses exactly "access_token"; this
// catches the spellings a backend folds into it) or a _method in the query.
func checkQuery(r *http.Request) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	q, _ := url.ParseQuery(r.URL.RawQuery) // what did parse is what a backend may read
	return checkParams(q, oauth.ErrTokenInQuery)
}

// checkForm reads an urlencoded or multipart body whole (up to
// MaxFormBytes), refuses a token or a _method field in it, and puts the
// bytes back for the upstream. Other bodies stream untouched.
func (h *handler) checkForm(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data") {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.o.MaxFormBytes+1))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: %w", ErrBodyTooLarge, err)
		}
		return fmt.Errorf("%w: %w", ErrUnreadableBody, err)
	}
	if int64(len(body)) > h.o.MaxFormBytes {
		return fmt.Errorf("%w: form body over %d bytes", ErrBodyTooLarge, h.o.MaxFormBytes)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if mt == "application/x-www-form-urlencoded" {
		form, _ := url.ParseQuery(string(body))
		return checkParams(form, ErrTokenInBody)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			// A backend's parser may read more of it than ours did.
			return fmt.Errorf("%w: multipart: %w", ErrUnreadableBody, err)
		}
		if err := checkParams(url.Values{part.FormName(): nil}, ErrTokenInBody); err != nil {
			return err
		}
	}
}

// clientIP is the front door's client IP; without a scope (a handler used
// on its own) the peer address.
func clientIP(r *http.Request) string {
	if ip := reqscope.Of(r).ClientIP(); ip != "" {
		return ip
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// limit applies the rate limit to an authenticated request, per subject.
func (h *handler) limit(r *http.Request, tok *oauth.Token) error {
	if h.o.RateLimiter == nil {
		return nil
	}
	var key string
	switch {
	case tok.Subject != "":
		key = "sub:" + tok.Subject
	case tok.ClientID != "":
		key = "client:" + tok.ClientID
	default:
		key = "ip:" + clientIP(r)
	}
	if ok, after := h.o.RateLimiter.Allow(key); !ok {
		return &RateLimitError{RetryAfter: after}
	}
	return nil
}

// rewrite prepares the accepted request for the upstream: our request ID,
// Authorization removed unless kept, our claim headers set (client copies
// went in dropClientHeaders).
func (h *handler) rewrite(r *http.Request, tok *oauth.Token, reqID string) {
	r.Header.Set(reqscope.Header, reqID)
	h.dropCredentialHeaders(r)
	if !h.o.KeepAuthorization {
		r.Header.Del("Authorization")
	}
	for _, f := range h.forward {
		v, ok := claimValue(tok, f.claim)
		if !ok {
			continue
		}
		if !validHeaderValue(v) {
			h.o.Logger.Warn("claim not forwarded: not a valid header value", "route", h.o.Route,
				"request_id", reqID, "claim", f.claim, "header", f.header)
			continue
		}
		r.Header.Set(f.header, v)
	}
}

// MaxForwardedValue caps a forwarded claim header.
const MaxForwardedValue = 4096

func validHeaderValue(v string) bool {
	if len(v) > MaxForwardedValue {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// claimValue renders a claim for a header: scope (and scp) as the granted
// scopes space-separated, strings and numbers as is, arrays of scalars
// comma-separated, anything else as compact JSON.
func claimValue(tok *oauth.Token, claim string) (string, bool) {
	if claim == "scope" || claim == "scp" {
		if len(tok.Scopes) == 0 {
			return "", false
		}
		return strings.Join(tok.Scopes, " "), true
	}
	v, ok := tok.Claims[claim]
	if !ok || v == nil {
		return "", false
	}
	switch x := v.(type) {
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := scalar(e)
			if !ok {
				b, err := json.Marshal(x)
				return string(b), err == nil
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	}
	if s, ok := scalar(v); ok {
		return s, true
	}
	b, err := json.Marshal(v)
	return string(b), err == nil
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}
