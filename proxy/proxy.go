// Package proxy builds the reverse proxy every route forwards through: one
// httputil.ReverseProxy per upstream, using Rewrite (never Director), with
// bounded timeouts and error responses that reveal nothing internal.
package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// ErrUpstreamTimeout means the upstream did not send response headers within Options.Timeout.
var ErrUpstreamTimeout = errors.New("proxy: upstream response timeout")

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
		ErrorHandler: errorHandler(logger, target.Host),
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}, nil
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
// too.
func NewTransport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

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
	// Not removed by Rewrite's contract; an upstream might trust them.
	out.Header.Del("Forwarded")
	out.Header.Del("X-Real-Ip")
	pr.SetXForwarded()
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// guardTransport refuses marked requests and enforces the response-header
// timeout for any RoundTripper, reporting it as ErrUpstreamTimeout.
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
	if g.timeout <= 0 {
		return g.next.RoundTrip(req)
	}
	ctx, cancel := context.WithCancel(req.Context())
	var fired atomic.Bool
	timer := time.AfterFunc(g.timeout, func() { fired.Store(true); cancel() })
	res, err := g.next.RoundTrip(req.WithContext(ctx))
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
	if rwc, ok := res.Body.(io.ReadWriteCloser); ok { // 101 Switching Protocols
		res.Body = &cancelRWC{ReadWriteCloser: rwc, cancel: cancel}
	} else {
		res.Body = &cancelBody{ReadCloser: res.Body, cancel: cancel}
	}
	return res, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

type cancelRWC struct {
	io.ReadWriteCloser
	cancel context.CancelFunc
}

func (b *cancelRWC) Close() error { err := b.ReadWriteCloser.Close(); b.cancel(); return err }

// errorHandler answers 504 on timeout, 400 on an unforwardable path and 502
// otherwise, with a short JSON body; the cause goes only to the log.
func errorHandler(logger *slog.Logger, upstream string) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		reqID := r.Header.Get("X-Request-ID")
		status, code, desc := http.StatusBadGateway, "bad_gateway", "the upstream service is unavailable"
		var ne net.Error
		switch {
		case errors.Is(err, ErrBadPath):
			status, code, desc = http.StatusBadRequest, "bad_request", "the request path cannot be forwarded"
		case errors.Is(err, ErrUpstreamTimeout), errors.As(err, &ne) && ne.Timeout():
			status, code, desc = http.StatusGatewayTimeout, "upstream_timeout", "the upstream service did not answer in time"
		}
		level := slog.LevelWarn
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			level = slog.LevelDebug // the client went away; nothing is wrong upstream
		}
		logger.Log(r.Context(), level, "upstream request failed",
			"request_id", reqID, "upstream", upstream, "method", r.Method, "status", status, "error", err)

		body, _ := json.Marshal(struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			RequestID   string `json:"request_id,omitempty"`
		}{code, desc, reqID})
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(status)
		w.Write(append(body, '\n'))
	}
}
