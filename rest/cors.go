package rest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrCORSRefused refuses a preflight from an origin, or for a method or
// header, the route does not allow (403, never forwarded).
var ErrCORSRefused = errors.New("rest: CORS preflight refused")

// CORSOptions configure a route's CORS policy (the Fetch standard's CORS
// protocol). Names compare case-insensitively, origins exactly (after
// lower-casing scheme and host).
type CORSOptions struct {
	// AllowOrigins are serialized origins (https://app.example) or "*".
	AllowOrigins []string
	// AllowMethods may be requested by a preflight. Empty: GET, HEAD, POST.
	AllowMethods []string
	// AllowHeaders may be requested by a preflight (case-insensitive).
	AllowHeaders []string
	// AllowCredentials lets the browser send cookies and read the answer
	// of a credentialed request; never with "*".
	AllowCredentials bool
	// MaxAge lets the browser cache a preflight answer; zero sends none.
	MaxAge time.Duration
}

// CORS answers preflights and adds CORS headers to every response to an
// allowed origin. Safe for concurrent use.
type CORS struct {
	any      bool
	origins  map[string]bool
	methods  []string
	methodOK map[string]bool
	headers  map[string]bool // lower case
	allowHdr string
	creds    bool
	maxAge   string
}

// NewCORS checks the options.
func NewCORS(o CORSOptions) (*CORS, error) {
	c := &CORS{origins: map[string]bool{}, methodOK: map[string]bool{}, headers: map[string]bool{}, creds: o.AllowCredentials}
	if len(o.AllowOrigins) == 0 {
		return nil, errors.New("rest: cors.allow_origins is required")
	}
	for _, org := range o.AllowOrigins {
		if org == "*" {
			c.any = true
			continue
		}
		n, ok := normalizeOrigin(org)
		if !ok {
			return nil, fmt.Errorf("rest: cors.allow_origins: %q is not an origin (scheme://host[:port])", org)
		}
		c.origins[n] = true
	}
	if c.any && c.creds {
		return nil, errors.New(`rest: cors: allow_origins "*" cannot be combined with allow_credentials`)
	}
	methods := o.AllowMethods
	if len(methods) == 0 {
		methods = []string{http.MethodGet, http.MethodHead, http.MethodPost}
	}
	for _, m := range methods {
		if !validHeaderName(m) {
			return nil, fmt.Errorf("rest: cors.allow_methods: %q is not a method", m)
		}
		m = strings.ToUpper(m)
		if !c.methodOK[m] {
			c.methodOK[m] = true
			c.methods = append(c.methods, m)
		}
	}
	var hs []string
	for _, h := range o.AllowHeaders {
		if !validHeaderName(h) {
			return nil, fmt.Errorf("rest: cors.allow_headers: %q is not a header name", h)
		}
		l := strings.ToLower(h)
		if !c.headers[l] {
			c.headers[l] = true
			hs = append(hs, l)
		}
	}
	c.allowHdr = strings.Join(hs, ", ")
	if o.MaxAge < 0 {
		return nil, errors.New("rest: cors.max_age is negative")
	}
	if o.MaxAge > 0 {
		c.maxAge = strconv.FormatInt(int64(o.MaxAge/time.Second), 10)
	}
	return c, nil
}

// normalizeOrigin lower-cases scheme and host and drops a default port;
// anything with a path, query, fragment or userinfo is not an origin.
func normalizeOrigin(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	return scheme + "://" + host, true
}

// allowed returns the Access-Control-Allow-Origin value for a request's
// Origin, or "" when the origin is not allowed. A request may carry one
// Origin only.
func (c *CORS) allowed(r *http.Request) string {
	v := r.Header.Values("Origin")
	if len(v) != 1 || v[0] == "" {
		return ""
	}
	if c.any {
		return "*"
	}
	n, ok := normalizeOrigin(v[0])
	if !ok || !c.origins[n] {
		return ""
	}
	return v[0]
}

// IsPreflight reports whether r is a CORS preflight: OPTIONS with Origin
// and Access-Control-Request-Method.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// Preflight answers a preflight (see IsPreflight) with 204 and the allow
// headers when origin, method and every requested header are allowed. Else
// it writes nothing and returns ErrCORSRefused, for the caller to answer
// 403 without them. A preflight is never forwarded and needs no credentials.
func (c *CORS) Preflight(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	origin := c.allowed(r)
	method := r.Header.Get("Access-Control-Request-Method")
	if origin == "" {
		return fmt.Errorf("%w: origin not allowed", ErrCORSRefused)
	}
	// Methods are case-sensitive in CORS: "post" is not POST.
	if !c.methodOK[method] {
		return fmt.Errorf("%w: method not allowed", ErrCORSRefused)
	}
	for _, line := range r.Header.Values("Access-Control-Request-Headers") {
		for _, name := range strings.Split(line, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "" && !c.headers[name] {
				return fmt.Errorf("%w: header not allowed", ErrCORSRefused)
			}
		}
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", strings.Join(c.methods, ", "))
	if c.allowHdr != "" {
		h.Set("Access-Control-Allow-Headers", c.allowHdr)
	}
	if c.creds {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if c.maxAge != "" {
		h.Set("Access-Control-Max-Age", c.maxAge)
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Wrap returns a writer that, when the response starts, replaces any
// Access-Control-* headers (an upstream's own) with the route's for an
// allowed origin, and adds Vary: Origin. Every answer goes through it:
// the upstream's, and wsgate's own 401, 403, 413 and 429.
func (c *CORS) Wrap(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	return &corsWriter{ResponseWriter: w, c: c, origin: c.allowed(r)}
}

// WrapErrorWriter has an error renderer add the CORS headers too (for the
// gateway's own answers on the route, written outside the rest handler).
func (c *CORS) WrapErrorWriter(write func(http.ResponseWriter, *http.Request, int, error)) func(http.ResponseWriter, *http.Request, int, error) {
	return func(w http.ResponseWriter, r *http.Request, status int, err error) {
		write(c.Wrap(w, r), r, status, err)
	}
}

type corsWriter struct {
	http.ResponseWriter
	c       *CORS
	origin  string
	written bool
}

func (cw *corsWriter) apply() {
	if cw.written {
		return
	}
	cw.written = true
	h := cw.ResponseWriter.Header()
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
	if !slices.ContainsFunc(h.Values("Vary"), func(v string) bool { return strings.Contains(strings.ToLower(v), "origin") }) {
		h.Add("Vary", "Origin")
	}
	if cw.origin == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", cw.origin)
	if cw.c.creds {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	// The browser app may read our error details and the request ID.
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After, X-Request-ID")
}

func (cw *corsWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		cw.apply()
	}
	cw.ResponseWriter.WriteHeader(code)
}

func (cw *corsWriter) Write(b []byte) (int, error) {
	cw.apply()
	return cw.ResponseWriter.Write(b)
}

// Flush passes through, for streamed upstream responses.
func (cw *corsWriter) Flush() {
	cw.apply()
	if f, ok := cw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (cw *corsWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }
