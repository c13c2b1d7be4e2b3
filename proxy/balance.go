package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Balance policies.
const (
	RoundRobin    = "round_robin"
	LeastRequests = "least_requests"
)

// Upstream states, as Pool.Status reports them.
const (
	StateHealthy   = "healthy"
	StateEjected   = "ejected"   // passive health: failures in a row
	StateUnhealthy = "unhealthy" // active health: the last probe failed
)

// maxPool is how many upstreams one Pool balances (a bit each in a mask).
const maxPool = 64

// PoolOptions configure a Pool.
type PoolOptions struct {
	// Upstreams are absolute http or https URLs that differ only in host
	// and port: a request is sent to one of them unchanged but for the host.
	Upstreams []string
	// Balance is RoundRobin (the default when empty) or LeastRequests.
	Balance string
	// Transports, parallel to Upstreams, send each one's requests and
	// probes (each its own: a TLS upstream is verified against its own
	// name); nil means a NewTransport() each.
	Transports []http.RoundTripper
	// EjectAfter failures in a row eject an upstream for EjectFor. A
	// failure is no answer (refused, reset, dropped, timed out) or a 502,
	// 503 or 504 answer. Zero values mean 3 and 30s.
	EjectAfter int
	EjectFor   time.Duration
	// Retries is how many more times a GET, HEAD, OPTIONS, PUT or DELETE
	// without a body is sent when no answer came back, on top of the
	// failovers every request gets (see Pool.RoundTrip).
	Retries int
	// Check, when set, probes every upstream in the background (Run).
	Check *HealthCheck
	// Now is the clock of ejections; nil means time.Now.
	Now func() time.Time
	// Logger receives ejections, returns and probe results; nil discards them.
	Logger *slog.Logger
}

// HealthCheck is an active probe: GET Path on each upstream's scheme, host
// and port every Interval; a 2xx or 3xx within Timeout passes.
type HealthCheck struct {
	Path     string
	Interval time.Duration
	Timeout  time.Duration
}

// Pool spreads requests over the instances of one backend and keeps each
// one's health. It is an http.RoundTripper: put it under a ReverseProxy (or
// any client) whose requests are addressed to Upstreams[0]; each request's
// host is replaced with the chosen upstream's.
type Pool struct {
	eps        []*endpoint
	least      bool
	ejectAfter int32
	ejectFor   time.Duration
	retries    int
	check      *HealthCheck
	now        func() time.Time
	logger     *slog.Logger
	rr         atomic.Uint64
}

// endpoint is one upstream and its health.
type endpoint struct {
	url      *url.URL
	raw      string
	name     string // scheme://host:port: what logs and status show (a query might hold a key)
	rt       http.RoundTripper
	inFlight atomic.Int64
	// out is when the endpoint last went out of rotation (ejected or
	// failed its probe), unix nanoseconds; 0 while in rotation, so the
	// request path reads one word to know.
	out atomic.Int64

	// fails and probation are read without the lock on the request path.
	fails     atomic.Int32 // failures in a row
	probation atomic.Bool  // back from an ejection: its first failure ejects it again
	// epoch counts ejections: an answer to a request sent before the last
	// one says nothing about the upstream since.
	epoch atomic.Uint64

	mu           sync.Mutex
	ejectedUntil time.Time // zero: not ejected
	ejections    uint64
	down         bool // the last probe failed
	checkedAt    time.Time
	lastErr      string
}

// NewPool checks opts and returns the pool. Build it once per route and
// share it: it holds the upstreams' state.
func NewPool(opts PoolOptions) (*Pool, error) {
	if len(opts.Upstreams) == 0 {
		return nil, errors.New("proxy: no upstream")
	}
	if len(opts.Upstreams) > maxPool {
		return nil, fmt.Errorf("proxy: at most %d upstreams", maxPool)
	}
	if opts.Transports != nil && len(opts.Transports) != len(opts.Upstreams) {
		return nil, errors.New("proxy: one transport per upstream")
	}
	p := &Pool{ejectAfter: int32(opts.EjectAfter), ejectFor: opts.EjectFor,
		retries: opts.Retries, check: opts.Check, now: opts.Now, logger: opts.Logger}
	switch opts.Balance {
	case "", RoundRobin:
	case LeastRequests:
		p.least = true
	default:
		return nil, fmt.Errorf("proxy: unknown balance %q", opts.Balance)
	}
	if p.ejectAfter <= 0 {
		p.ejectAfter = 3
	}
	if p.ejectFor <= 0 {
		p.ejectFor = 30 * time.Second
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if c := p.check; c != nil && (!strings.HasPrefix(c.Path, "/") || c.Interval <= 0 || c.Timeout <= 0) {
		return nil, errors.New("proxy: health check needs a path starting with / and a positive interval and timeout")
	}
	seen := map[string]bool{}
	for i, raw := range opts.Upstreams {
		u, err := parseUpstream(raw)
		if err != nil {
			return nil, err
		}
		if len(p.eps) > 0 {
			f := p.eps[0].url
			if u.Scheme != f.Scheme || u.EscapedPath() != f.EscapedPath() || u.RawQuery != f.RawQuery {
				return nil, fmt.Errorf("proxy: upstream %q differs from %q in more than host and port", raw, p.eps[0].raw)
			}
		}
		if seen[strings.ToLower(u.Host)] {
			return nil, fmt.Errorf("proxy: upstream host %s listed twice", u.Host)
		}
		seen[strings.ToLower(u.Host)] = true
		ep := &endpoint{url: u, raw: raw, name: u.Scheme + "://" + u.Host}
		if opts.Transports != nil {
			ep.rt = opts.Transports[i]
		}
		if ep.rt == nil {
			ep.rt = NewTransport()
		}
		p.eps = append(p.eps, ep)
	}
	return p, nil
}

// Target is the URL requests to the pool are addressed to: the first upstream.
func (p *Pool) Target() string { return p.eps[0].raw }

// RoundTrip sends r to an upstream chosen by the balance policy among those
// in rotation (when none is, among all of them, as if all were: refusing
// would be the same outage, and sending everything to one would let a few
// failing requests pile the whole load on it), and records the result for passive health. When no answer
// came back it sends r again, to an upstream not yet tried while there is
// one:
//   - whatever the method, when the connection could not be made and the
//     body was never read: nothing was sent;
//   - once more for a GET, HEAD, OPTIONS, PUT or DELETE without a body, when
//     there is another upstream (the request may have been sent: only
//     those methods may be sent twice);
//   - Retries more times for those methods.
//
// A POST or PATCH that may have been sent is never sent again, an answer
// (even a 5xx) is never retried, and neither is a request whose context
// ended (the client left, or the route's timeout fired).
func (p *Pool) RoundTrip(r *http.Request) (*http.Response, error) {
	// A body that cannot be had again (a client's stream) is lent to one
	// attempt after another until one reads it; one with GetBody (read into
	// memory) is had afresh for each attempt after the first.
	var body *heldBody
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil && len(p.eps) > 1 {
		body = &heldBody{rc: r.Body}
		defer body.finish()
	}
	attempt := 0
	idempotent := retryable(r)
	failover := len(p.eps) > 1 && idempotent // the free second try of an idempotent request
	retries := p.retries
	var tried uint64
	for {
		ep, bit := p.pick(tried)
		tried |= bit
		attempt++
		res, err := p.send(ep, r, body, attempt > 1)
		if err == nil {
			return res, nil
		}
		if r.Context().Err() != nil {
			return nil, err
		}
		switch more := tried != p.all(); {
		case more && isDialError(err) && body.untouched():
		case more && failover:
			failover = false
		case retries > 0 && idempotent:
			retries--
			if !more {
				tried = 0
			}
		default:
			return nil, err
		}
	}
}

// all is the mask of every endpoint.
func (p *Pool) all() uint64 {
	if len(p.eps) == maxPool {
		return ^uint64(0)
	}
	return 1<<len(p.eps) - 1
}

// send makes one attempt on ep and records its outcome.
func (p *Pool) send(ep *endpoint, r *http.Request, body *heldBody, again bool) (*http.Response, error) {
	out := r
	again = again && r.GetBody != nil && r.Body != nil && r.Body != http.NoBody
	if ep != p.eps[0] || body != nil || again {
		// A shallow copy: a RoundTripper must not change its request, and
		// only the URL and body differ.
		out = new(http.Request)
		*out = *r
		u := *r.URL
		u.Scheme, u.Host = ep.url.Scheme, ep.url.Host
		out.URL = &u
		if r.Host == p.eps[0].url.Host {
			out.Host = "" // follow the URL (an http.NewRequest copies its host here)
		}
		switch {
		case body != nil:
			out.Body = body.attempt()
		case again:
			b, err := r.GetBody()
			if err != nil {
				return nil, err
			}
			out.Body = b
		}
	}
	if p.least {
		ep.inFlight.Add(1)
	}
	epoch := ep.epoch.Load()
	res, err := ep.rt.RoundTrip(out)
	switch {
	case err != nil:
		if p.least {
			ep.inFlight.Add(-1)
		}
		// A context that ended for its own reasons (the client left) says
		// nothing about the upstream; one the route's timeout ended does.
		if ctx := r.Context(); ctx.Err() == nil || errors.Is(context.Cause(ctx), ErrUpstreamTimeout) {
			p.failed(ep, err.Error())
		}
		return nil, err
	case res.StatusCode == http.StatusBadGateway || res.StatusCode == http.StatusServiceUnavailable ||
		res.StatusCode == http.StatusGatewayTimeout:
		p.failed(ep, res.Status)
	default:
		p.succeeded(ep, epoch)
	}
	if p.least {
		res.Body = &countedBody{ReadCloser: res.Body, ep: ep}
	}
	return res, nil
}

// pick chooses an endpoint not in tried by the balance policy: among those
// in rotation if there is one, else among all.
func (p *Pool) pick(tried uint64) (*endpoint, uint64) {
	n := len(p.eps)
	if n == 1 {
		return p.eps[0], 1
	}
	start := int(p.rr.Add(1) % uint64(n))
	var now int64
	for _, any := range []bool{false, true} { // in rotation first; then all
		var best *endpoint
		var bestBit uint64
		for i := range n {
			j := (start + i) % n
			bit := uint64(1) << j
			ep := p.eps[j]
			if tried&bit != 0 {
				continue
			}
			if !any && ep.out.Load() != 0 {
				if now == 0 {
					now = p.now().UnixNano()
				}
				if !ep.available(now) {
					continue
				}
			}
			if !p.least {
				return ep, bit
			}
			if best == nil || ep.inFlight.Load() < best.inFlight.Load() {
				best, bestBit = ep, bit
			}
		}
		if best != nil {
			return best, bestBit
		}
	}
	return nil, 0 // every endpoint tried: RoundTrip never asks then
}

// available reports whether ep, out of rotation, is back: its ejection has
// run out and its last probe (if any) passed.
func (ep *endpoint) available(now int64) bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	switch {
	case ep.down:
		return false
	case ep.ejectedUntil.IsZero():
		ep.out.Store(0)
		return true
	case now < ep.ejectedUntil.UnixNano():
		return false
	}
	// The ejection ran out: back in rotation, on probation.
	ep.ejectedUntil = time.Time{}
	ep.probation.Store(true)
	ep.out.Store(0)
	return true
}

func (p *Pool) failed(ep *endpoint, why string) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.lastErr = why
	fails := ep.fails.Add(1)
	if !ep.ejectedUntil.IsZero() || (!ep.probation.Load() && fails < p.ejectAfter) {
		return
	}
	now := p.now()
	ep.ejectedUntil = now.Add(p.ejectFor)
	ep.probation.Store(false)
	ep.ejections++
	ep.epoch.Add(1)
	if ep.out.Load() == 0 {
		ep.out.Store(now.UnixNano())
	}
	p.logger.Warn("upstream ejected", slog.String("upstream", ep.name), slog.Int("failures", int(fails)),
		slog.Duration("for", p.ejectFor), slog.String("error", why))
}

// succeeded ends a run of failures; an answer from an ejected upstream to
// a request sent while it was out (every upstream was) restores it. epoch
// is the upstream's when the request was sent.
func (p *Pool) succeeded(ep *endpoint, epoch uint64) {
	if ep.fails.Load() == 0 && !ep.probation.Load() && ep.out.Load() == 0 {
		return
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if epoch != ep.epoch.Load() {
		return // sent before it was ejected: the ejection is newer news
	}
	back := ep.probation.Load() || !ep.ejectedUntil.IsZero()
	ep.fails.Store(0)
	ep.probation.Store(false)
	ep.ejectedUntil = time.Time{}
	if !ep.down {
		ep.out.Store(0)
	}
	if back {
		p.logger.Info("upstream back in rotation", slog.String("upstream", ep.name))
	}
}

// isDialError reports a failure to connect: the request was not sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryable is RFC 9110's idempotent methods without a body, which is read once.
func retryable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return r.Body == nil || r.Body == http.NoBody
	}
	return false
}

// heldBody lends a request body to one attempt after another until one of
// them reads it: a transport closes the body of a request it could not
// send, and this keeps that close from reaching the body, so the next
// upstream can have it.
type heldBody struct {
	mu      sync.Mutex
	rc      io.ReadCloser
	current int  // the attempt that may close it
	read    bool // an attempt read from it: no other attempt may have it
	closed  bool // the current attempt closed it
	settled bool // no more attempts: a close goes through
}

func (b *heldBody) attempt() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.current++
	b.closed = false
	return &attemptBody{b: b, n: b.current}
}

func (b *heldBody) untouched() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.read
}

// finish ends the attempts: a close the last one made goes through now,
// and a later one goes straight through.
func (b *heldBody) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settled = true
	if b.closed {
		b.rc.Close()
	}
}

type attemptBody struct {
	b *heldBody
	n int
}

func (a *attemptBody) Read(p []byte) (int, error) {
	a.b.mu.Lock()
	a.b.read = true
	a.b.mu.Unlock()
	return a.b.rc.Read(p)
}

func (a *attemptBody) Close() error {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.n != b.current || b.closed {
		return nil // an earlier attempt's, or said already
	}
	b.closed = true
	if b.settled {
		return b.rc.Close()
	}
	return nil
}

// countedBody ends a request's count in flight when its response is done.
type countedBody struct {
	io.ReadCloser
	ep   *endpoint
	once sync.Once
}

func (c *countedBody) Close() error {
	c.once.Do(func() { c.ep.inFlight.Add(-1) })
	return c.ReadCloser.Close()
}

// UpstreamStatus is one upstream's state, for /readyz.
type UpstreamStatus struct {
	// URL is the upstream's scheme, host and port (never its path or query).
	URL string `json:"url"`
	// State is healthy, ejected (failures in a row, until EjectedUntil) or
	// unhealthy (the last probe failed).
	State   string `json:"state"`
	Healthy bool   `json:"healthy"`
	// InFlight counts requests waiting on it (least_requests only).
	InFlight int64 `json:"in_flight,omitempty"`
	// Failures is the failures in a row so far.
	Failures     int       `json:"failures,omitempty"`
	Ejections    uint64    `json:"ejections,omitempty"`
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	// CheckedAt is the last probe's time (health_check only).
	CheckedAt time.Time `json:"checked_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// Status reports every upstream, in configuration order.
func (p *Pool) Status() []UpstreamStatus {
	now := p.now()
	out := make([]UpstreamStatus, 0, len(p.eps))
	for _, ep := range p.eps {
		ep.mu.Lock()
		s := UpstreamStatus{URL: ep.name, State: StateHealthy, Healthy: true, InFlight: ep.inFlight.Load(),
			Failures: int(ep.fails.Load()), Ejections: ep.ejections, CheckedAt: ep.checkedAt, LastError: ep.lastErr}
		switch {
		case ep.down:
			s.State, s.Healthy = StateUnhealthy, false
		case !ep.ejectedUntil.IsZero() && now.Before(ep.ejectedUntil):
			s.State, s.Healthy, s.EjectedUntil = StateEjected, false, ep.ejectedUntil
		}
		ep.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// Run probes every upstream at once and then every Check.Interval until
// ctx ends; without a Check it returns at once.
func (p *Pool) Run(ctx context.Context) {
	if p.check == nil {
		return
	}
	t := time.NewTicker(p.check.Interval)
	defer t.Stop()
	for {
		p.Probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Probe probes every upstream once, now (tests and start-up).
func (p *Pool) Probe(ctx context.Context) {
	if p.check == nil {
		return
	}
	var wg sync.WaitGroup
	for _, ep := range p.eps {
		wg.Go(func() { p.probe(ctx, ep) })
	}
	wg.Wait()
}

func (p *Pool) probe(parent context.Context, ep *endpoint) {
	ctx, cancel := context.WithTimeout(parent, p.check.Timeout)
	defer cancel()
	why := ""
	u := *ep.url
	u.Path, u.RawPath, u.RawQuery = "", "", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+p.check.Path, nil)
	if err == nil {
		req.Header.Set("User-Agent", "wsgate-health-check")
		var res *http.Response
		if res, err = ep.rt.RoundTrip(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
			res.Body.Close()
			if res.StatusCode >= 400 || res.StatusCode < 200 {
				why = "health check answered " + res.Status
			}
		}
	}
	if err != nil {
		if parent.Err() != nil {
			return // shutting down: no verdict
		}
		why = err.Error()
	}
	now := p.now()
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.checkedAt = now
	switch {
	case why != "" && !ep.down:
		ep.down, ep.lastErr = true, why
		if ep.out.Load() == 0 {
			ep.out.Store(now.UnixNano())
		}
		p.logger.Warn("upstream failed its health check", slog.String("upstream", ep.name), slog.String("error", why))
	case why == "" && ep.down:
		ep.down = false
		if ep.ejectedUntil.IsZero() {
			ep.out.Store(0)
		}
		p.logger.Info("upstream passed its health check", slog.String("upstream", ep.name))
	}
}
