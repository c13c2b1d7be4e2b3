package gateway

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"wsgate/config"
	"wsgate/internal/metrics"
	"wsgate/internal/reqscope"
)

// The front door's refusals, before any route ran.
var (
	// ErrNoRoute means no route's path_prefix matches the path.
	ErrNoRoute = errors.New("gateway: no route for this path")
	// ErrPathNotCanonical means the path has dot segments or doubled
	// slashes, which a route and its upstream could resolve differently.
	ErrPathNotCanonical = errors.New("gateway: path is not in canonical form")
	// ErrAmbiguousFraming means the request came with both Content-Length
	// and Transfer-Encoding (RFC 9112 section 6.1: a smuggling attempt).
	ErrAmbiguousFraming = errors.New("gateway: both Content-Length and Transfer-Encoding")
	// ErrRateLimited means the route's rate limit refused the request.
	ErrRateLimited = errors.New("gateway: rate limit exceeded")
	// ErrBodyTooLarge means the declared body is over limits.max_body_bytes.
	ErrBodyTooLarge = errors.New("gateway: request body too large")
	// ErrPanic means a handler panicked; the client gets a generic 500.
	ErrPanic = errors.New("gateway: handler panic")
)

// hopByHop are the headers that describe one connection, never the message
// (RFC 9110 section 7.6.1), plus HTTP2-Settings, which belongs to an h2c
// upgrade. The front door removes them, and every header Connection names,
// before it sets any header of its own.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Upgrade", "Http2-Settings"}

// identityPrefix is the built-in family of identity headers: whatever a
// route sets from a verified identity, a client never sends.
const identityPrefix = "X-Auth-"

// trustedProxies is the parsed trusted_proxies list.
type trustedProxies []netip.Prefix

func parseTrustedProxies(list []string) (trustedProxies, error) {
	out := make(trustedProxies, 0, len(list))
	for _, s := range list {
		p, err := config.ParseTrustedProxy(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (tp trustedProxies) contains(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range tp {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the one computation of the client's address, for the rate
// limits, the access log and every layer below (reqscope.Scope.ClientIP):
// the peer address, or, when the peer is a trusted proxy, the rightmost
// X-Forwarded-For entry that is not itself a trusted proxy. X-Real-IP is
// never believed, not even from a trusted proxy: X-Forwarded-For carries
// the whole chain, and a second header could only disagree with it.
func (tp trustedProxies) clientIP(r *http.Request) (ip string, viaTrusted bool) {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if !tp.contains(peer) {
		return peer, false
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(h); err != nil {
			break // garbage: stop believing the header here
		}
		if !tp.contains(h) {
			return h, true
		}
		peer = h
	}
	return peer, true
}

// headerSet is a set of header names matched in any letter case and with
// '_' read as '-' (CGI-style servers fold X_Auth_Subject into X-Auth-Subject).
type headerSet map[string]bool

func headerKey(name string) string {
	return http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
}

func (s headerSet) add(names ...string) {
	for _, n := range names {
		if n != "" {
			s[headerKey(n)] = true
		}
	}
}

// identityHeaders are the headers no client may send: every header any
// route of cfg sets from a verified identity (forward_claims,
// forward_client_cert, soap.saml.forward_attributes), the built-in X-Auth-*
// family (matched by prefix), and strip_request_headers.
func identityHeaders(cfg *config.Config) headerSet {
	s := headerSet{}
	s.add(cfg.StripRequestHeaders...)
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		s.add(r.ForwardClientCert)
		if r.OAuth != nil {
			for _, h := range r.OAuth.ForwardClaims {
				s.add(h)
			}
		}
		if r.SOAP != nil && r.SOAP.SAML != nil {
			for _, h := range r.SOAP.SAML.ForwardAttributes {
				s.add(h)
			}
		}
	}
	return s
}

// scrub removes from h the hop-by-hop headers, every header Connection
// names, and the identity headers, all in any spelling. It runs before the
// front door sets a header of its own, so "Connection: X-Request-ID" cannot
// have the reverse proxy delete the gateway's request ID, and "Connection:
// X-Auth-Subject" cannot bring a client's copy back past a route.
func scrub(h http.Header, identity headerSet) {
	var named headerSet // most requests name nothing: no map for them
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if named == nil {
				named = headerSet{}
			}
			named.add(strings.TrimSpace(f))
		}
	}
	for _, k := range hopByHop {
		delete(h, k)
	}
	for k := range h {
		key := headerKey(k)
		if named[key] || identity[key] || strings.HasPrefix(key, identityPrefix) || hopByHopKey(key) {
			delete(h, k)
		}
	}
}

func hopByHopKey(key string) bool {
	for _, k := range hopByHop {
		if k == key {
			return true
		}
	}
	return false
}

// ambiguousKey is the gin context key of a request whose head carried both
// Content-Length and Transfer-Encoding.
const ambiguousKey = "wsgate.ambiguous_framing"

// requestIDKey is reqscope.Header in canonical form, so the front door sets
// it in a header map without canonicalizing (allocating) per request.
const requestIDKey = "X-Request-Id"

// newEngine is gen's one router: gin with the front door as middleware in
// front of every route's handler. gin's radix tree cannot hold nested
// catch-alls (/api/*rest beside /api/v2/*rest), so the route match
// (longest path_prefix on segment boundaries) is a middleware too and the
// routes hang off NoRoute, the engine's single handler chain. gin never
// computes a client IP of its own: ForwardedByClientIP is off, no
// TrustedPlatform, no trusted proxies; the one client IP is the front
// door's (reqscope).
func (gen *generation) newEngine() *gin.Engine {
	e := gin.New()
	e.ForwardedByClientIP = false
	e.TrustedPlatform = ""
	_ = e.SetTrustedProxies(nil) // nil never fails
	e.RemoteIPHeaders = nil
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = false
	e.UseRawPath = false
	e.ContextWithFallback = true
	e.Use(gen.frontDoor)
	e.NoRoute(gen.route)
	// Each route's metric series, looked up once (see metrics.Route).
	gen.noRoute = gen.metrics.Route("none", "none")
	for _, re := range gen.router.routes {
		re.metrics = gen.metrics.Route(re.name, re.protocol)
	}
	return e
}

// route runs the route match, the rate limit and the route's handler as
// one gin handler, so the matched route passes along as a value instead of
// through the context's map.
func (gen *generation) route(c *gin.Context) {
	e := gen.match(c)
	if e == nil || !gen.limit(c, e) {
		return
	}
	gen.serveRoute(c, e)
}

// frontDoor is the first middleware of every request: it scrubs the
// headers, computes the client IP once, fixes the request ID (a client's
// X-Request-ID is believed from trusted proxies only; anyone else gets a
// fresh one, written over theirs so every layer and the upstream see it),
// creates the request's reqscope.Scope, and afterwards writes the access
// log line and the request metrics.
func (gen *generation) frontDoor(c *gin.Context) {
	start := gen.now()
	r := c.Request
	ip, trusted := gen.trusted.clientIP(r)
	id := ""
	if trusted {
		if v := r.Header.Get(reqscope.Header); reqscope.SaneID(v) {
			id = v
		}
	}
	if id == "" {
		id = reqscope.NewID()
	}
	if ambiguousFraming(r) {
		c.Set(ambiguousKey, true)
	}
	scrub(r.Header, gen.identity)
	ids := [2]string{id, id} // one allocation for the request's and the response's copy
	r.Header[requestIDKey] = ids[0:1:1]
	sc := reqscope.New(id, ip)
	c.Request = r.WithContext(reqscope.With(r.Context(), sc))
	c.Writer.Header()[requestIDKey] = ids[1:2:2]

	c.Next()

	d := gen.now().Sub(start)
	status := c.Writer.Status()
	outcome, reason := sc.Outcome()
	route, protocol := sc.Route()
	switch {
	case outcome != reqscope.Unknown:
	case route == "":
		outcome = reqscope.Invalid
	case status >= 500:
		outcome = reqscope.Unavailable
	case status >= 400:
		outcome = reqscope.Invalid // refused before the edge decided (e.g. body too large)
	case protocol == config.KindPublic:
		outcome = reqscope.Forwarded
	default:
		outcome = reqscope.Accepted
	}
	switch e := gen.router.byName[route]; {
	case route == "":
		gen.noRoute.Request(string(outcome), d)
	case e != nil && e.protocol == protocol && e.metrics != nil:
		e.metrics.Request(string(outcome), d)
	default:
		gen.metrics.Request(route, protocol, string(outcome), d)
	}
	endServerSpan(c.Request.Context(), route, protocol, string(outcome), reason, status)
	level := slog.LevelInfo
	switch outcome {
	case reqscope.Rejected, reqscope.RateLimited, reqscope.Invalid:
		level = slog.LevelWarn
	case reqscope.Unavailable, reqscope.Failed:
		level = slog.LevelError
	}
	// Path only: a query string may carry a token or a password.
	gen.logger.LogAttrs(c.Request.Context(), level, "access",
		slog.String("request_id", id),
		slog.String("client_ip", ip),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", route),
		slog.String("protocol", protocol),
		slog.String("outcome", string(outcome)),
		slog.String("reason", reason),
		slog.Int("status", status),
		slog.Int("bytes", max(c.Writer.Size(), 0)),
		slog.Float64("duration_seconds", d.Seconds()),
	)
}

// match finds the route (longest path_prefix on segment boundaries) and
// records it in the scope. A path that is not canonical, or matches no
// route, is answered here; so is a request whose framing is ambiguous. It
// returns the route, or nil when it answered.
func (gen *generation) match(c *gin.Context) *routeEntry {
	r := c.Request
	sc := reqscope.Of(r)
	e := gen.router.match(r.URL.Path)
	if e != nil {
		sc.SetRoute(e.name, e.protocol)
	}
	if !cleanPath(r.URL.Path) {
		// Dot segments or doubled slashes could make a route and its
		// upstream disagree about which resource is meant.
		sc.Decide(reqscope.Invalid, "path_not_canonical")
		render := writeNoRoute
		if e != nil {
			render = e.writeError
		}
		render(c.Writer, r, http.StatusBadRequest, ErrPathNotCanonical)
		c.Abort()
		return nil
	}
	if e == nil {
		sc.Decide(reqscope.Invalid, "no_route")
		writeNoRoute(c.Writer, r, http.StatusNotFound, ErrNoRoute)
		c.Abort()
		return nil
	}
	if c.GetBool(ambiguousKey) {
		// RFC 9112 section 6.1: answer, then close the connection, so
		// nothing that follows on it is read with the other framing.
		sc.Decide(reqscope.Invalid, "ambiguous_framing")
		c.Writer.Header().Set("Connection", "close")
		e.writeError(c.Writer, r, http.StatusBadRequest, ErrAmbiguousFraming)
		c.Abort()
		return nil
	}
	if len(r.TransferEncoding) > 0 && r.ProtoMajor == 1 && !framingTracked(r) {
		// Go drops Content-Length when Transfer-Encoding is present, so on
		// a connection the framing tracker cannot see (TLS), a chunked
		// request may have carried both: close after answering it.
		c.Writer.Header().Set("Connection", "close")
	}
	return e
}

// limit applies the route's rate limit (per client_ip, client_cert or
// route; per subject is the oauth edge's, after the token is known). It
// reports whether the request may go on; if not, it answered.
func (gen *generation) limit(c *gin.Context, e *routeEntry) bool {
	if e.limiter == nil {
		return true
	}
	r := c.Request
	sc := reqscope.Of(r)
	if ok, after := e.limiter.Allow(limitKey(e.limitPer, r, sc.ClientIP())); !ok {
		sc.Decide(reqscope.RateLimited, "rate_limited")
		gen.metrics.Rejection(e.name, metrics.OutcomeRateLimited)
		c.Writer.Header().Set("Retry-After", retryAfter(after))
		e.writeError(c.Writer, r, http.StatusTooManyRequests, ErrRateLimited)
		c.Abort()
		return false
	}
	return true
}

// serveRoute runs the matched route's handler behind the one response
// writer wrapper, turning a panic into a 500 in the route's protocol.
func (gen *generation) serveRoute(c *gin.Context, e *routeEntry) {
	r := c.Request
	w := &reqscope.IDWriter{ResponseWriter: c.Writer, ID: reqscope.Of(r).ID()}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // sentinel panic value, compared as net/http does
				panic(v)
			}
			gen.logger.Error("handler panic", slog.String("route", e.name), slog.String("request_id", w.ID),
				slog.Any("panic", v))
			reqscope.Of(r).Decide(reqscope.Failed, "panic")
			if !c.Writer.Written() {
				e.writeError(c.Writer, r, http.StatusInternalServerError, ErrPanic)
			}
		}
	}()
	e.handler.ServeHTTP(w, r)
}

// forwardClientCert sets header to the verified client certificate's
// subject; the front door has already removed every client-sent spelling.
func forwardClientCert(header string, next http.Handler) http.Handler {
	canon := http.CanonicalHeaderKey(header)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := clientSubject(r); s != "" {
			r.Header.Set(canon, headerSafe(s))
		}
		next.ServeHTTP(w, r)
	})
}

// headerSafe replaces control characters, which a DN may escape but a
// header value may not hold.
func headerSafe(s string) string {
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return '?'
		}
		return c
	}, s)
}

// timedTransport records upstream round-trip time (to response headers).
type timedTransport struct {
	next    http.RoundTripper
	metrics *metrics.Route
	now     func() time.Time
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r, span := traceUpstream(r)
	start := t.now()
	res, err := t.next.RoundTrip(r)
	t.metrics.Upstream(t.now().Sub(start))
	endUpstreamSpan(span, res, err)
	return res, err
}

// Handler is the proxy listener's handler: the front door and router of the
// configuration in service. A request runs wholly on the configuration it
// started on; a reload never splits one.
func (g *Gateway) Handler() http.Handler {
	return traced(g.tracer, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.current().engine.ServeHTTP(w, r)
	}))
}
