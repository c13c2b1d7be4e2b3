// Package proxy builds the reverse proxy every route forwards through: one
// httputil.ReverseProxy per route, using Rewrite (never Director), with
// bounded timeouts, no protocol upgrades, and error responses in the
// route's protocol that reveal nothing internal. Under it, a Pool spreads
// requests over the route's upstreams and keeps their health, and each
// plain-http upstream is reached through an H1Transport.
package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wsgate/internal/reqscope"
	"wsgate/rest"
)

// ErrUpstreamTimeout means the upstream did not send response headers within Options.Timeout.
var ErrUpstreamTimeout = errors.New("proxy: upstream response timeout")

// ErrUpgradeRefused means the upstream answered 101 Switching Protocols: no
// route allows a protocol upgrade, so the proxy never relays a tunnel.
var ErrUpgradeRefused = errors.New("proxy: upstream switched protocols; no route allows upgrades")

// ErrBadPath means the request path is outside the route prefix or holds dot-segments.
var ErrBadPath = errors.New("proxy: request path not forwardable")

// Options configure one upstream.
type Options struct {
	// Upstream is the absolute http or https URL requests are forwarded to.
	// Its path is prepended to the part of the request path after StripPrefix,
	// and its query is joined with the request's.
	Upstream string
	// StripPrefix is the route's path_prefix: /soap/orders/x goes to <upstream path>/x,
	// and /soap/orders exactly to the upstream path unchanged. Empty strips nothing.
	StripPrefix string
	// Timeout bounds the wait for the upstream's response headers; zero means none.
	Timeout time.Duration
	// Transport sends upstream requests; nil means a transport built by New
	// with dial and TLS handshake timeouts and an idle connection pool.
	Transport http.RoundTripper
	// Logger receives upstream failures; nil discards them.
	Logger *slog.Logger
	// OnError writes the client's answer when the proxy itself fails the
	// request: status is 502 (upstream unreachable, refused upgrade), 504
	// (ErrUpstreamTimeout) or 400 (ErrBadPath), err the cause, already
	// logged. It lets a route answer in its own protocol (a SOAP Fault);
	// nil means rest.WriteError, the JSON error body.
	OnError func(w http.ResponseWriter, r *http.Request, status int, err error)
}

// New returns a reverse proxy for one upstream. Build it once per upstream
// and share it: it holds the connection pool.
func New(opts Options) (*httputil.ReverseProxy, error) {
	target, err := parseUpstream(opts.Upstream)
	if err != nil {
		return nil, err
	}
	if opts.StripPrefix != "" && (!strings.HasPrefix(opts.StripPrefix, "/") ||
		(opts.StripPrefix != "/" && strings.HasSuffix(opts.StripPrefix, "/"))) {
		return nil, fmt.Errorf("proxy: strip prefix %q must start with / and not end with /", opts.StripPrefix)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rt := opts.Transport
	if rt == nil {
		rt = NewTransport()
	}
	prefix := strings.TrimSuffix(opts.StripPrefix, "/") // "/" strips nothing
	return &httputil.ReverseProxy{
		Rewrite:      func(pr *httputil.ProxyRequest) { rewrite(pr, target, prefix) },
		Transport:    &guardTransport{next: rt, timeout: opts.Timeout},
		ErrorHandler: errorHandler(logger, target.Host, opts.OnError),
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BufferPool:   newBufferPool(),
	}, nil
}

// bufferPool lends ReverseProxy its copy buffers: without one it allocates
// 32 KB per request (most of the bytes a proxied request allocated).
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([32 << 10]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[32 << 10]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		b.p.Put((*[32 << 10]byte)(buf[:32<<10]))
	}
}

func parseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("proxy: upstream %q is not an absolute http or https URL", raw)
	}
	if u.User != nil || u.Fragment != "" {
		return nil, errors.New("proxy: upstream URL must not carry credentials or a fragment")
	}
	return u, nil
}

// NewTransport is the transport for upstream calls: http.DefaultTransport's
// shape without environment proxies (an upstream is addressed directly), with
// bounded dial and handshake times and a TLS 1.2 floor. The bridge uses it
// too. A transport serves one upstream, so its whole idle pool may go to that
// host: with the default per-host cap (2, or the 32 it had here) every
// request beyond the cap in flight opened a connection and closed it after.
func NewTransport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          MaxIdleConnsPerUpstream,
		MaxIdleConnsPerHost:   MaxIdleConnsPerUpstream,
		IdleConnTimeout:       UpstreamIdleTimeout,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       UpstreamWriteBuffer,
	}
}

// UpstreamIdleTimeout is how long an idle upstream connection is kept.
const UpstreamIdleTimeout = 90 * time.Second

// UpstreamWriteBuffer is the write buffer of each upstream connection. The
// transport's default (4 KB) sent a 5 KB POST or a 6 KB SOAP envelope in
// two write syscalls, the request head and the body's first 4 KB, then the
// rest; 32 KB sends a message up to that size in one.
const UpstreamWriteBuffer = 32 << 10

// MaxIdleConnsPerUpstream is the idle connection pool of one upstream's
// transport: enough for a few hundred requests in flight to reuse their
// connections instead of dialling.
const MaxIdleConnsPerUpstream = 256

type badPathKey struct{}

// rewrite maps the inbound request onto the upstream. ReverseProxy has
// already dropped client-sent X-Forwarded-* and hop-by-hop headers.
func rewrite(pr *httputil.ProxyRequest, target *url.URL, prefix string) {
	out := pr.Out
	rest, ok := strings.CutPrefix(out.URL.Path, prefix)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) || hasDotSegment(rest) {
		// Rewrite cannot fail; mark the request so guardTransport refuses it.
		pr.Out = out.WithContext(context.WithValue(out.Context(), badPathKey{}, true))
		out = pr.Out
		rest = ""
	}
	rawRest := ""
	if out.URL.RawPath != "" {
		// Keep the client's escaping (%2F) when it still lines up with the prefix.
		if r, ok := strings.CutPrefix(out.URL.RawPath, prefix); ok {
			rawRest = r
		}
	}
	out.URL.Path, out.URL.RawPath = rest, rawRest
	pr.SetURL(target)
	if rest == "" {
		// SetURL would append a "/" to the upstream path.
		out.URL.Path, out.URL.RawPath = target.Path, target.RawPath
	}
	keepConnectionNamed(pr.In.Header, out.Header)
	// No route allows a protocol upgrade: ReverseProxy puts Upgrade and
	// "Connection: Upgrade" back for one, so take them out here (an h2c
	// upgrade also names HTTP2-Settings).
	out.Header.Del("Upgrade")
	out.Header.Del("Connection")
	out.Header.Del("Http2-Settings")
	// Not removed by Rewrite's contract; an upstream might trust them.
	out.Header.Del("Forwarded")
	out.Header.Del("X-Real-Ip")
	pr.SetXForwarded()
}

// neverRestored are the headers that stay removed when the client names
// them in Connection: the hop-by-hop ones, those the proxy sets itself, and
// the framing, which the transport owns.
var neverRestored = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Http2-Settings": true, "Content-Length": true, "Host": true,
	"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true, "X-Real-Ip": true,
}

// keepConnectionNamed puts back the headers ReverseProxy removed because
// the client named them in Connection (RFC 9110 7.6.1). The front door has
// already removed the client's own Connection-named headers, so whatever
// such a header holds now was set or kept by the gateway: its request ID,
// identity headers from a verified token. A client must not be able to
// strip those on the way upstream with "Connection: X-Request-ID".
func keepConnectionNamed(in, out http.Header) {
	for _, v := range in["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if name == "" || neverRestored[name] || out[name] != nil {
				continue
			}
			if vals := in[name]; vals != nil {
				out[name] = append([]string(nil), vals...)
			}
		}
	}
}

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// guardTransport refuses marked requests and protocol switches, and
// enforces the response-header timeout for any RoundTripper, reporting it
// as ErrUpstreamTimeout.
type guardTransport struct {
	next    http.RoundTripper
	timeout time.Duration
}

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if bad, _ := req.Context().Value(badPathKey{}).(bool); bad {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, ErrBadPath
	}
	req, err := readSmallBody(req)
	if err != nil {
		return nil, err
	}
	if g.timeout <= 0 {
		return noSwitch(g.next.RoundTrip(req))
	}
	// The cause tells the transports below (passive health) that the upstream
	// was too slow, not that the client went away.
	ctx, cancelCause := context.WithCancelCause(req.Context())
	cancel := func() { cancelCause(nil) }
	var fired atomic.Bool
	timer := time.AfterFunc(g.timeout, func() { fired.Store(true); cancelCause(ErrUpstreamTimeout) })
	res, err := noSwitch(g.next.RoundTrip(req.WithContext(ctx)))
	if !timer.Stop() && fired.Load() {
		if err == nil {
			res.Body.Close()
		}
		cancel()
		return nil, fmt.Errorf("%w after %s", ErrUpstreamTimeout, g.timeout)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	// The context must live while the body streams; end it when the body closes.
	res.Body = &cancelBody{ReadCloser: res.Body, cancel: cancel}
	return res, nil
}

// maxBufferedBody is the largest request body read into memory before it
// is sent upstream (see readSmallBody); larger ones stream.
const maxBufferedBody = UpstreamWriteBuffer / 2

// readSmallBody reads a body of known length up to maxBufferedBody into
// memory, as nginx buffers request bodies. The transport sends the head of
// a request whose body is not a plain in-memory reader on its own, and
// ReverseProxy wraps every body, so a 5 KB POST went upstream in three
// writes (the head, then one per read from the client's connection) and a
// verified SOAP envelope in two; from memory the head and body go in one.
// A body is not buffered when the client sent Expect: the upstream may
// refuse before the client sends it. A read error (client gone,
// limits.max_body_bytes) is returned as the transport returned it.
func readSmallBody(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody ||
		req.ContentLength <= 0 || req.ContentLength > maxBufferedBody || req.Header.Get("Expect") != "" {
		return req, nil
	}
	buf := make([]byte, req.ContentLength)
	_, err := io.ReadFull(req.Body, buf)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	out := new(http.Request) // a RoundTripper must not change its request
	*out = *req
	out.Body = io.NopCloser(bytes.NewReader(buf))
	// Replayable: a Pool sends it to another upstream after a failed dial
	// without wrapping it (which would split the writes again).
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return out, nil
}

// noSwitch refuses a 101 answer: rewrite dropped Upgrade, so none was
// asked for, and a tunnel would carry anything past every check.
func noSwitch(res *http.Response, err error) (*http.Response, error) {
	if err == nil && res.StatusCode == http.StatusSwitchingProtocols {
		res.Body.Close()
		return nil, ErrUpgradeRefused
	}
	return res, err
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

// errorHandler answers 504 on timeout, 400 on an unforwardable path and 502
// otherwise (a refused protocol switch included), through the route's
// renderer; the cause goes only to the log, under the request ID.
func errorHandler(logger *slog.Logger, upstream string, render func(http.ResponseWriter, *http.Request, int, error)) func(http.ResponseWriter, *http.Request, error) {
	if render == nil {
		render = rest.WriteError
	}
	return func(w http.ResponseWriter, r *http.Request, err error) {
		status, outcome, why := http.StatusBadGateway, reqscope.Failed, "bad_gateway"
		var ne net.Error
		switch {
		case errors.Is(err, ErrBadPath):
			status, outcome, why = http.StatusBadRequest, reqscope.Rejected, "bad_path"
		case errors.Is(err, ErrUpgradeRefused):
			why = "upgrade_refused"
		case errors.Is(err, ErrUpstreamTimeout), errors.As(err, &ne) && ne.Timeout():
			status, why = http.StatusGatewayTimeout, "upstream_timeout"
		}
		level := slog.LevelWarn
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			level = slog.LevelDebug // the client went away; nothing is wrong upstream
		}
		logger.LogAttrs(r.Context(), level, "upstream request failed",
			slog.String("request_id", reqscope.IDOf(r)), slog.String("upstream", upstream),
			slog.String("method", r.Method), slog.Int("status", status), slog.String("reason", why),
			slog.String("error", err.Error()))
		reqscope.Of(r).Decide(outcome, why)
		render(w, r, status, err)
	}
}
