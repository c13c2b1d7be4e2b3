package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"wsgate/config"
	"wsgate/internal/metrics"
	"wsgate/internal/reqscope"
	"wsgate/rest"
	"wsgate/soap"
	"wsgate/wssec"
)

// reqState is what the front door learns about one request while the route
// handles it: which route and, from the edge's decision, the outcome.
type reqState struct {
	id       string
	clientIP string
	route    string // "" until a route matched
	protocol string
	outcome  string // "" until a decision was reported
}

type reqStateKey struct{}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(reqStateKey{}).(*reqState)
	return st
}

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

// clientIP is the peer address, or, when the peer is a trusted proxy, the
// rightmost X-Forwarded-For entry that is not itself a trusted proxy.
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

// frontDoor wraps every request on the proxy listener: it fixes the request
// ID (a client's X-Request-ID is believed from trusted proxies only; anyone
// else gets a fresh one, written over theirs so the edges use it too), takes
// one gateway for the whole request (a reload never splits a request),
// and afterwards writes the access log line and the request metrics.
type frontDoor struct {
	cur     func() *generation
	metrics *metrics.Metrics
	now     func() time.Time
}

func (f *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := f.now()
	g := f.cur()
	ip, trusted := g.trusted.clientIP(r)
	id := ""
	if trusted {
		if v := r.Header.Get(soap.RequestIDHeader); saneRequestID(v) {
			id = v
		}
	}
	if id == "" {
		id = reqscope.NewID()
	}
	r.Header.Set(soap.RequestIDHeader, id)
	st := &reqState{id: id, clientIP: ip}
	r = r.WithContext(context.WithValue(r.Context(), reqStateKey{}, st))

	sw := &statusWriter{ResponseWriter: w, id: id}
	w.Header().Set(soap.RequestIDHeader, id)
	g.handler.ServeHTTP(sw, r)

	d := f.now().Sub(start)
	outcome := st.outcome
	switch {
	case outcome != "":
	case st.route == "":
		outcome = metrics.OutcomeInvalid
	case sw.status >= 400:
		outcome = metrics.OutcomeInvalid // refused before the edge decided (e.g. body too large)
	default:
		outcome = metrics.OutcomeForwarded
	}
	route, protocol := st.route, st.protocol
	if route == "" {
		route, protocol = "none", "none"
	}
	f.metrics.Request(route, protocol, outcome, d)
	// Path only: a query string may carry a token or a password.
	g.logger.LogAttrs(r.Context(), slog.LevelInfo, "access",
		slog.String("request_id", id),
		slog.String("client_ip", ip),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", st.route),
		slog.String("outcome", outcome),
		slog.Int("status", sw.code()),
		slog.Int64("bytes", sw.bytes),
		slog.Duration("duration", d),
	)
}

// saneRequestID accepts at most 64 characters of [A-Za-z0-9._-], so an ID
// cannot inject into logs or fault documents.
func saneRequestID(id string) bool {
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

// statusWriter records the status and body size, and keeps exactly one
// X-Request-ID, ours, on the response even when an upstream sends its own.
type statusWriter struct {
	http.ResponseWriter
	id     string
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		w.Header().Set(soap.RequestIDHeader, w.id)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// routeTag marks the request as handled by a route, for the access log and metrics.
func routeTag(name, protocol string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := stateOf(r.Context()); st != nil {
			st.route, st.protocol = name, protocol
		}
		next.ServeHTTP(w, r)
	})
}

// forwardClientCert sets header to the verified client certificate's
// subject, after dropping every client-sent spelling of it.
func forwardClientCert(header string, next http.Handler) http.Handler {
	canon := http.CanonicalHeaderKey(header)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k := range r.Header {
			if http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")) == canon {
				delete(r.Header, k)
			}
		}
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

// soapDecision reports a soap edge decision to the request's state and the metrics.
func soapDecision(m *metrics.Metrics) func(soap.Decision) {
	return func(d soap.Decision) {
		outcome := metrics.OutcomeAccepted
		if d.Err != nil {
			outcome = metrics.OutcomeRejected
			// Busy (memory budget) and trust/replay failures are the
			// gateway's, not the sender's: no WSS rejection is counted.
			if errors.Is(d.Err, soap.ErrBusy) || !wssec.ClientError(d.Err) {
				outcome = metrics.OutcomeUnavailable
			} else {
				m.Rejection(d.Route, wssec.FaultCode(d.Err))
			}
		}
		if st := stateOf(d.Context); st != nil {
			st.outcome = outcome
		}
	}
}

// restDecision reports a rest edge decision to the request's state and the metrics.
func restDecision(m *metrics.Metrics) func(rest.Decision) {
	return func(d rest.Decision) {
		switch d.Outcome {
		case metrics.OutcomeRejected, metrics.OutcomeRateLimited:
			m.Rejection(d.Route, d.Reason)
		}
		if st := stateOf(d.Context); st != nil {
			st.outcome = d.Outcome
		}
	}
}

// timedTransport records upstream round-trip time (to response headers).
type timedTransport struct {
	next    http.RoundTripper
	route   string
	metrics *metrics.Metrics
	now     func() time.Time
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := t.now()
	res, err := t.next.RoundTrip(r)
	t.metrics.Upstream(t.route, t.now().Sub(start))
	return res, err
}

// Handler is the proxy listener's handler: the front door in front of the
// configuration in service.
func (g *Gateway) Handler() http.Handler {
	return &frontDoor{cur: g.current, metrics: g.metrics, now: g.now}
}
