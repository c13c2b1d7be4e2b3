package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// ErrResponseHeaderTooLarge means the upstream's response head (1xx heads
// included) exceeded maxResponseHeader bytes.
var ErrResponseHeaderTooLarge = errors.New("proxy: upstream response head too large")

// ErrBadResponse means the upstream's answer could not be read as an
// HTTP/1.1 response (garbled, truncated, too many 1xx heads).
var ErrBadResponse = errors.New("proxy: malformed upstream response")

// ErrBadRequestHeader means an outgoing header name or value is not valid
// HTTP; http.Transport refuses those too.
var ErrBadRequestHeader = errors.New("proxy: invalid outgoing header")

const (
	// maxResponseHeader bounds a response head, as http.Transport's
	// MaxResponseHeaderBytes does (its default is 10 MB; nginx's 4-8 KB).
	maxResponseHeader = 1 << 20
	// max1xx is how many informational heads are skipped before one answer.
	max1xx = 5
	// maxFastBody is the largest request body the H1Transport sends: a body
	// read into memory (readSmallBody) fits the socket buffers, so writing it
	// whole before reading cannot block on an upstream that answers early.
	maxFastBody = maxBufferedBody
)

// H1Transport sends plain-HTTP/1.1 requests to one upstream on the calling
// goroutine: it takes an idle keep-alive connection (or dials one), writes
// the request with (*http.Request).Write and reads the answer with
// http.ReadResponse, the serializer and parser http.Transport uses. It
// spares the two goroutine hand-offs per request of http.Transport's
// per-connection read and write loops. Everything else (https, another
// host, Expect, a body not held in memory, trailers, upgrades) goes to
// Fallback. It never asks for gzip: without Accept-Encoding the upstream
// answers uncompressed.
type H1Transport struct {
	host        string // the upstream's URL host, as requests carry it
	addr        string // host:port dialled
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	fallback    *http.Transport
	maxIdle     int
	idleTimeout time.Duration
	now         func() time.Time

	mu        sync.Mutex
	idle      []*h1Conn // LIFO: the most recently used first out
	janitor   *time.Timer
	closeIdle bool // set by CloseIdleConnections until the next request
}

// NewH1Transport returns the transport for the plain-http upstream (its
// scheme://host[:port]), dialling with dial and handing whatever it does
// not handle to fallback. It keeps at most maxIdle idle connections, each
// for at most idleTimeout. now nil means time.Now.
func NewH1Transport(upstream string, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	fallback *http.Transport, maxIdle int, idleTimeout time.Duration, now func() time.Time) (*H1Transport, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("proxy: %q is not a plain http upstream", upstream)
	}
	if now == nil {
		now = time.Now
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &H1Transport{host: u.Host, addr: addr, dial: dial, fallback: fallback,
		maxIdle: maxIdle, idleTimeout: idleTimeout, now: now}, nil
}

// CloseIdleConnections closes the idle connections of both paths; a
// connection in use is closed when its exchange ends, until the next request.
func (t *H1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.closeIdle = true
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	t.fallback.CloseIdleConnections()
}

// handles reports whether req is one the H1Transport sends itself.
func (t *H1Transport) handles(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host != t.host ||
		req.Method == http.MethodConnect || len(req.TransferEncoding) != 0 || len(req.Trailer) != 0 ||
		req.Header.Get("Expect") != "" || req.Header.Get("Upgrade") != "" {
		return false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	return req.GetBody != nil && req.ContentLength > 0 && req.ContentLength <= maxFastBody
}

// RoundTrip implements http.RoundTripper.
func (t *H1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.handles(req) {
		return t.fallback.RoundTrip(req)
	}
	if err := validOutgoing(req); err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	for fresh := false; ; fresh = true {
		c, err := t.conn(ctx, fresh)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		res, retry, err := c.exchange(ctx, req)
		if err == nil {
			return res, nil
		}
		if !retry || ctx.Err() != nil {
			return nil, err
		}
		// A reused connection failed where http.Transport sends again
		// (nothing went out, or a replayable request got no answer byte):
		// once more, on a new connection.
		if req.Body != nil && req.Body != http.NoBody {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r := new(http.Request) // a RoundTripper must not change its request
			*r = *req
			r.Body = body
			req = r
		}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// validOutgoing refuses what http.Transport refuses before sending.
func validOutgoing(req *http.Request) error {
	if req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method) {
		return fmt.Errorf("%w: method %q", ErrBadRequestHeader, req.Method)
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("%w: field name %q", ErrBadRequestHeader, k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("%w: value for %q", ErrBadRequestHeader, k)
			}
		}
	}
	return nil
}

// conn returns an idle connection that still looks alive, or a new one.
func (t *H1Transport) conn(ctx context.Context, fresh bool) (*h1Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	for !fresh {
		c := t.takeIdle()
		if c == nil {
			break
		}
		if c.alive() {
			c.br = newReader(c)
			return c, nil
		}
		c.close()
	}
	nc, err := t.dial(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err // a *net.OpError "dial": the pool may fail over
	}
	c := &h1Conn{t: t, nc: nc, limit: -1}
	c.br = newReader(c)
	return c, nil
}

func (t *H1Transport) takeIdle() *h1Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeIdle = false
	n := len(t.idle)
	if n == 0 {
		return nil
	}
	c := t.idle[n-1]
	t.idle[n-1] = nil
	t.idle = t.idle[:n-1]
	return c
}

// put keeps c for the next request, or closes it when the pool is full or closing.
func (t *H1Transport) put(c *h1Conn) {
	putReader(c.br)
	c.br = nil
	c.reused = true
	c.idleAt = t.now()
	t.mu.Lock()
	if t.closeIdle || len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		c.close()
		return
	}
	t.idle = append(t.idle, c)
	if t.janitor == nil && t.idleTimeout > 0 {
		t.janitor = time.AfterFunc(t.idleTimeout, t.prune)
	}
	t.mu.Unlock()
}

// prune closes the connections idle longer than idleTimeout; it runs on
// one timer per transport while any connection is idle.
func (t *H1Transport) prune() {
	deadline := t.now().Add(-t.idleTimeout)
	t.mu.Lock()
	var old []*h1Conn
	n := 0
	for n < len(t.idle) && !t.idle[n].idleAt.After(deadline) {
		n++ // the oldest are at the bottom
	}
	old = append(old, t.idle[:n]...)
	t.idle = append(t.idle[:0], t.idle[n:]...)
	clear(t.idle[len(t.idle):cap(t.idle)])
	if len(t.idle) > 0 {
		t.janitor.Reset(t.idle[0].idleAt.Sub(deadline))
	} else {
		t.janitor = nil
	}
	t.mu.Unlock()
	for _, c := range old {
		c.close()
	}
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, UpstreamWriteBuffer) }}
)

func newReader(c *h1Conn) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

// h1Conn is one upstream connection. It is the io.Reader under its
// bufio.Reader and the io.Writer under the request's bufio.Writer, so it
// knows whether any byte went out or came back.
type h1Conn struct {
	t        *H1Transport
	nc       net.Conn
	br       *bufio.Reader // nil while idle
	reused   bool
	idleAt   time.Time
	nwritten int64 // bytes of this exchange that went out
	nread    int64 // and came back
	limit    int64 // bytes the response head may still take; -1: no limit

	// The idle peek's state (see alive), kept to spare an allocation per request.
	raw      syscall.RawConn
	peekFn   func(fd uintptr) bool
	peekIdle bool
}

func (c *h1Conn) Read(p []byte) (int, error) {
	if c.limit == 0 {
		return 0, ErrResponseHeaderTooLarge
	}
	if c.limit > 0 && int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.nc.Read(p)
	c.nread += int64(n)
	if c.limit > 0 {
		c.limit -= int64(n)
	}
	return n, err
}

func (c *h1Conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.nwritten += int64(n)
	return n, err
}

// abort ends the exchange in progress when its context ends: the read or
// write blocked on the connection fails.
func (c *h1Conn) abort() { c.nc.Close() }

func (c *h1Conn) close() {
	c.nc.Close()
	if c.br != nil {
		c.br = nil // not pooled: a Read may still be running on it
	}
}

// exchange sends req on c and reads the answer's head. retry reports that
// c was reused and the request cannot have reached the upstream, or may
// have but is replayable and no answer byte came back (http.Transport's
// rule). On error c is closed.
func (c *h1Conn) exchange(ctx context.Context, req *http.Request) (res *http.Response, retry bool, err error) {
	c.nwritten, c.nread = 0, 0 // this exchange's
	stop := context.AfterFunc(ctx, c.abort)
	fail := func(err error, retry bool) (*http.Response, bool, error) {
		stop()
		c.close()
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("proxy: upstream request: %w", context.Cause(ctx))
		}
		return nil, retry, err
	}
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		// The body is in memory (GetBody) or absent, so it can be had again.
		return fail(err, c.reused && c.nwritten == 0)
	}
	c.limit = maxResponseHeader
	for n1xx := 0; ; n1xx++ {
		res, err = http.ReadResponse(c.br, req)
		if err != nil {
			if errors.Is(err, ErrResponseHeaderTooLarge) {
				return fail(err, false)
			}
			retry := c.reused && c.nread == 0 && replayable(req)
			if c.nread != 0 && !isNetError(err) {
				err = fmt.Errorf("%w: %w", ErrBadResponse, err)
			}
			return fail(err, retry)
		}
		if res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if n1xx == max1xx {
			return fail(fmt.Errorf("%w: more than %d informational responses", ErrBadResponse, max1xx), false)
		}
	}
	c.limit = -1
	res.Body = &h1Body{rc: res.Body, c: c, stop: stop, ctx: ctx,
		reuse: !res.Close && !req.Close && !httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close") &&
			res.StatusCode != http.StatusSwitchingProtocols}
	if res.Body.(*h1Body).rc == http.NoBody {
		res.Body.(*h1Body).finish(true)
		res.Body = http.NoBody
	}
	return res, false, nil
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
}

// replayable is http.Transport's rule for a request it sends again after a
// reused connection failed: safe methods, or an idempotency key, with a
// body that can be had again.
func replayable(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		return false
	}
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := r.Header["Idempotency-Key"]
	_, xkey := r.Header["X-Idempotency-Key"]
	return key || xkey
}

// h1Body is a response body: at its end the connection goes back to the
// pool when the exchange allows reuse, the context never fired, and no byte
// beyond the response is buffered (framing in doubt); otherwise, and on an
// early Close, the connection is closed.
type h1Body struct {
	rc    io.ReadCloser
	c     *h1Conn
	stop  func() bool
	ctx   context.Context
	reuse bool

	mu   sync.Mutex
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		b.finish(false)
		if b.ctx.Err() != nil {
			err = fmt.Errorf("proxy: upstream body: %w", context.Cause(b.ctx))
		}
	}
	return n, err
}

// Close ends the exchange. The parsed body's own Close would read the rest
// of an unfinished body; the connection is closed instead.
func (b *h1Body) Close() error {
	b.finish(false)
	return nil
}

func (b *h1Body) finish(eof bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if b.stop() && eof && b.reuse && b.c.br.Buffered() == 0 {
		b.c.t.put(b.c)
		return
	}
	b.c.close()
}
