// Package rest is the HTTP edge of REST routes: it takes the bearer token
// from the request, has oauth validate it and check the route's scopes,
// applies the rate limit, rewrites identity headers and hands the request
// to the upstream handler (the shared reverse proxy). Refusals follow RFC
// 6750 and never reach the upstream.
package rest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"wsgate/internal/ratelimit"
	"wsgate/oauth"
)

// RequestIDKey is the gin context key from which a request ID set by an
// earlier middleware is read. Without one, a sane client X-Request-ID (at
// most 64 of [A-Za-z0-9._-], as the soap edge accepts) is used, else a new ID.
const RequestIDKey = "request_id"

// RequestIDHeader carries the request ID on requests and responses.
const RequestIDHeader = "X-Request-ID"

// Validator validates a raw bearer token; *oauth.Validator satisfies it.
type Validator interface {
	Validate(ctx context.Context, raw string) (*oauth.Token, error)
}

// Rate-limit keys (config rate_limit.per).
const (
	PerSubject    = "subject"
	PerClientIP   = "client_ip"
	PerClientCert = "client_cert"
	PerRoute      = "route"
)

// Options configure one REST route's handler.
type Options struct {
	// Route is the route name, for logs.
	Route string
	// PathPrefix is the route's path_prefix; scope globs match the path under it.
	PathPrefix string
	// Validator is required.
	Validator Validator
	// Scopes, when nil, requires only a valid token.
	Scopes *oauth.ScopePolicy
	// ForwardClaims maps a claim name to the upstream header carrying it.
	// Client-sent copies of these headers are always dropped.
	ForwardClaims map[string]string
	// KeepAuthorization forwards the Authorization header upstream.
	KeepAuthorization bool
	// RateLimiter, when set, is applied per RateLimitPer.
	RateLimiter ratelimit.Limiter
	// RateLimitPer is subject, client_ip, client_cert or route.
	RateLimitPer string
	// Upstream receives accepted requests; required.
	Upstream http.Handler
	// Logger receives one audit record per decision; nil discards.
	Logger *slog.Logger
	// NewRequestID makes a request ID when none is in the context; nil means 16 random bytes, hex.
	NewRequestID func() string
	// OnDecision, when set, is called once per request (metrics).
	OnDecision func(Decision)
}

// Decision is the outcome of one request, for metrics.
type Decision struct {
	// Context is the request's context (it carries the caller's request state).
	Context context.Context
	Route   string
	// Outcome is accepted, rejected, rate_limited or unavailable.
	Outcome string
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

// New checks the options and returns the route's gin handler. It is the
// last handler of the route: it always writes the response.
func New(o Options) (gin.HandlerFunc, error) {
	if o.Validator == nil || o.Upstream == nil {
		return nil, errors.New("rest: Validator and Upstream are required")
	}
	switch o.RateLimitPer {
	case "", PerSubject, PerClientIP, PerClientCert, PerRoute:
	default:
		return nil, fmt.Errorf("rest: rate limit per %q is not one of subject, client_ip, client_cert, route", o.RateLimitPer)
	}
	if o.RateLimiter != nil && o.RateLimitPer == "" {
		o.RateLimitPer = PerSubject
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NewRequestID == nil {
		o.NewRequestID = randomID
	}
	h := &handler{o: o, drop: map[string]bool{}}
	for claim, name := range o.ForwardClaims {
		if claim == "" || !validHeaderName(name) {
			return nil, fmt.Errorf("rest: forward_claims %q: %q is not a valid header name", claim, name)
		}
		canon := http.CanonicalHeaderKey(name)
		if reservedHeaders[canon] {
			return nil, fmt.Errorf("rest: forward_claims %q: header %s may not be set from a claim", claim, canon)
		}
		if h.drop[canon] {
			return nil, fmt.Errorf("rest: forward_claims: header %s is named twice", canon)
		}
		h.drop[canon] = true
		h.forward = append(h.forward, forwardHeader{claim: claim, header: canon})
	}
	return h.serve, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NewHandler wraps New's handler in its own gin engine, for callers that
// route with net/http. trustedProxies lists the CIDRs whose X-Forwarded-For
// is believed for the client IP (rate_limit per client_ip); nil trusts
// none, so the peer address is used.
func NewHandler(o Options, trustedProxies []string) (http.Handler, error) {
	h, err := New(o)
	if err != nil {
		return nil, err
	}
	e := gin.New()
	if err := e.SetTrustedProxies(trustedProxies); err != nil {
		return nil, fmt.Errorf("rest: trusted proxies: %w", err)
	}
	e.RedirectTrailingSlash, e.RedirectFixedPath, e.HandleMethodNotAllowed = false, false, false
	e.NoRoute(h)
	return e, nil
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

func (h *handler) serve(c *gin.Context) {
	defer c.Abort()
	r := c.Request
	reqID := c.GetString(RequestIDKey)
	if reqID == "" {
		if id := r.Header.Get(RequestIDHeader); saneID(id) {
			reqID = id
		} else {
			reqID = h.o.NewRequestID()
		}
	}
	var tok *oauth.Token
	var fp oauth.Fingerprint
	var hasToken bool
	refuse := func(err error) {
		outcome := "rejected"
		switch {
		case errors.Is(err, ErrRateLimited):
			outcome = "rate_limited"
		case !oauth.ClientError(err):
			outcome = "unavailable"
		}
		attrs := []any{"route", h.o.Route, "request_id", reqID, "outcome", outcome,
			"reason", reason(err), "method", r.Method, "path", r.URL.Path, "error", err.Error()}
		if hasToken {
			attrs = append(attrs, "token_sha256", fp.LogID())
		}
		if tok != nil {
			attrs = append(attrs, "sub", tok.Subject, "client_id", tok.ClientID)
		}
		level := slog.LevelInfo
		if outcome == "unavailable" {
			level = slog.LevelWarn
		}
		h.o.Logger.Log(r.Context(), level, "rest request refused", attrs...)
		h.decide(r.Context(), outcome, reason(err), err)
		WriteError(c.Writer, err, reqID)
	}

	rel, err := h.relativePath(r)
	if err != nil {
		refuse(err)
		return
	}
	if err := h.limit(c, nil); err != nil {
		refuse(err)
		return
	}
	raw, err := oauth.TokenFromRequest(r)
	if err != nil {
		refuse(err)
		return
	}
	hasToken, fp = true, oauth.FingerprintOf(raw)
	tok, err = h.o.Validator.Validate(r.Context(), raw)
	if err != nil {
		refuse(err)
		return
	}
	if err := h.o.Scopes.Check(r.Method, rel, tok.Scopes); err != nil {
		refuse(err)
		return
	}
	if err := h.limit(c, tok); err != nil {
		refuse(err)
		return
	}

	h.rewrite(r, tok, reqID)
	h.o.Logger.Info("rest request accepted", "route", h.o.Route, "request_id", reqID, "outcome", "accepted",
		"reason", "ok", "method", r.Method, "path", r.URL.Path, "token_sha256", fp.LogID(),
		"sub", tok.Subject, "client_id", tok.ClientID)
	h.decide(r.Context(), "accepted", "ok", nil)
	h.o.Upstream.ServeHTTP(&plainWriter{w: c.Writer, id: reqID}, r)
}

// plainWriter hides gin's CloseNotify, which panics when the underlying
// writer lacks it (flushing and hijacking stay reachable through Unwrap, for
// http.ResponseController), and keeps exactly one X-Request-ID, ours, on the
// response whatever the upstream sent.
type plainWriter struct {
	w      gin.ResponseWriter
	id     string
	headed bool
}

func (p *plainWriter) Header() http.Header { return p.w.Header() }

func (p *plainWriter) WriteHeader(code int) {
	if !p.headed && code >= 200 {
		p.headed = true
		if p.id != "" {
			p.w.Header().Set(RequestIDHeader, p.id)
		}
	}
	p.w.WriteHeader(code)
}

func (p *plainWriter) Write(b []byte) (int, error) {
	if !p.headed {
		p.WriteHeader(http.StatusOK)
	}
	return p.w.Write(b)
}

func (p *plainWriter) Unwrap() http.ResponseWriter { return p.w }

func reason(err error) string {
	switch {
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, ErrAmbiguousPath):
		return "ambiguous_path"
	}
	return oauth.Reason(err)
}

func (h *handler) decide(ctx context.Context, outcome, reason string, err error) {
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

// limit applies the rate limit: before validation for per-IP, per-cert and
// per-route keys (tok nil), after it for per-subject keys.
func (h *handler) limit(c *gin.Context, tok *oauth.Token) error {
	if h.o.RateLimiter == nil {
		return nil
	}
	var key string
	switch h.o.RateLimitPer {
	case PerSubject:
		if tok == nil {
			return nil
		}
		switch {
		case tok.Subject != "":
			key = "sub:" + tok.Subject
		case tok.ClientID != "":
			key = "client:" + tok.ClientID
		default:
			key = "ip:" + c.ClientIP()
		}
	case PerClientIP:
		if tok != nil {
			return nil
		}
		key = "ip:" + c.ClientIP()
	case PerClientCert:
		if tok != nil {
			return nil
		}
		if tls := c.Request.TLS; tls != nil && len(tls.PeerCertificates) > 0 {
			sum := sha256.Sum256(tls.PeerCertificates[0].Raw)
			key = "cert:" + hex.EncodeToString(sum[:])
		} else {
			key = "ip:" + c.ClientIP()
		}
	case PerRoute:
		if tok != nil {
			return nil
		}
		key = "route"
	}
	if ok, after := h.o.RateLimiter.Allow(key); !ok {
		return &RateLimitError{RetryAfter: after}
	}
	return nil
}

// rewrite prepares the accepted request for the upstream: our request ID,
// Authorization removed unless kept, client-sent claim headers dropped,
// ours set.
func (h *handler) rewrite(r *http.Request, tok *oauth.Token, reqID string) {
	r.Header.Set(RequestIDHeader, reqID)
	if !h.o.KeepAuthorization {
		r.Header.Del("Authorization")
	}
	// Drop client copies, including spellings an upstream may fold into ours
	// (X_Auth_Subject becomes X-Auth-Subject in CGI-style servers).
	for k := range r.Header {
		if h.drop[http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))] {
			delete(r.Header, k)
		}
	}
	// A client listing our headers in Connection would have the proxy strip
	// them as hop-by-hop after we set them.
	if conn := r.Header.Values("Connection"); len(conn) > 0 {
		var keep []string
		for _, v := range conn {
			for _, f := range strings.Split(v, ",") {
				f = strings.TrimSpace(f)
				canon := http.CanonicalHeaderKey(f)
				if f != "" && !h.drop[canon] && canon != "Authorization" {
					keep = append(keep, f)
				}
			}
		}
		r.Header.Del("Connection")
		if len(keep) > 0 {
			r.Header.Set("Connection", strings.Join(keep, ", "))
		}
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
