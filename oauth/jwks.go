package oauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// JWKSOptions configures a JWKSSource. Zero fields take the defaults.
type JWKSOptions struct {
	// URL is the JWK Set endpoint: https, or http on a loopback host (or with AllowHTTP).
	URL string
	// Client does the fetches; nil means one with Timeout and system roots.
	// Redirects are never followed.
	Client *http.Client
	// Timeout bounds one fetch. Default 10s.
	Timeout time.Duration
	// MaxBytes caps the response body. Default 1 MiB.
	MaxBytes int64
	// MinRefresh is the floor on the cache-header lifetime and the retry delay
	// after a failed fetch. Default 30s.
	MinRefresh time.Duration
	// MaxRefresh is the refresh period without cache headers and their
	// ceiling, so a removed key stops verifying within it. Default 10m.
	MaxRefresh time.Duration
	// UnknownKeyInterval is the least time between fetches triggered by an
	// unknown kid. Default 30s.
	UnknownKeyInterval time.Duration
	// AllowHTTP permits a plain-http URL on a non-loopback host.
	AllowHTTP bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives fetch failures; nil discards.
	Logger *slog.Logger
}

// JWKSSource is a KeySource that fetches a JWK Set over HTTP, caches it per
// its cache headers (bounded by MinRefresh and MaxRefresh), re-fetches at
// most once per UnknownKeyInterval on an unknown kid, and keeps the last good
// set while the endpoint fails. Safe for concurrent use.
type JWKSSource struct {
	o      JWKSOptions
	client *http.Client
	logURL string // o.URL without any password, for logs

	state      atomic.Pointer[jwksState]
	fetchMu    sync.Mutex  // serialises fetches; waiters reuse the result
	refreshing atomic.Bool // a background refresh is running
}

type jwksState struct {
	set       *KeySet   // last good set; nil until one loaded
	fetched   time.Time // when set was fetched
	next      time.Time // when to refresh (or retry after a failure)
	attempted time.Time // last fetch attempt, good or bad
	err       error     // last fetch error, nil after a success
}

// NewJWKSSource checks the options; it fetches nothing until first used.
func NewJWKSSource(o JWKSOptions) (*JWKSSource, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: jwks_url %q is not an absolute URL", ErrConfig, o.URL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (o.AllowHTTP || isLoopback(u.Hostname())):
	default:
		return nil, fmt.Errorf("%w: jwks_url must be https", ErrConfig)
	}
	o = o.withDefaults()
	c := noRedirectClient(o.Client, o.Timeout)
	s := &JWKSSource{o: o, client: c, logURL: redactURL(o.URL)}
	s.state.Store(&jwksState{})
	return s, nil
}

// withDefaults fills in what o leaves zero; DiscoverySource fetches its
// metadata with the same settings.
func (o JWKSOptions) withDefaults() JWKSOptions {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 20
	}
	if o.MinRefresh <= 0 {
		o.MinRefresh = 30 * time.Second
	}
	if o.MaxRefresh <= 0 {
		o.MaxRefresh = 10 * time.Minute
	}
	if o.MaxRefresh < o.MinRefresh {
		o.MaxRefresh = o.MinRefresh
	}
	if o.UnknownKeyInterval <= 0 {
		o.UnknownKeyInterval = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// NewHTTPClient returns a client for JWKS or introspection calls trusting
// caPEM (system roots when empty), TLS 1.2 or later, with a total timeout.
func NewHTTPClient(caPEM []byte, timeout time.Duration) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%w: CA bundle holds no PEM certificate", ErrConfig)
		}
		t.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: t, Timeout: timeout}, nil
}

// noRedirectClient is a copy of c (nil: a new client with timeout) that
// never follows a redirect, so a fetch cannot be sent to another host.
func noRedirectClient(c *http.Client, timeout time.Duration) *http.Client {
	cc := &http.Client{Timeout: timeout}
	if c != nil {
		*cc = *c
	}
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return cc
}

// readLimited reads r whole, refusing it when longer than maxBytes; what
// names the response in that error.
func readLimited(r io.Reader, maxBytes int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxBytes {
		return nil, fmt.Errorf("%s response exceeds %d bytes", what, maxBytes)
	}
	return b, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Keys returns the current set. The first call fetches synchronously; later
// calls past the refresh time start one background refresh and return the
// last good set meanwhile.
func (s *JWKSSource) Keys(ctx context.Context) (*KeySet, error) {
	st := s.state.Load()
	now := s.o.Now()
	if st.set == nil {
		if !st.attempted.IsZero() && now.Before(st.next) {
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, st.err)
		}
		return s.fetchIfDue(ctx, func(st *jwksState, now time.Time) bool {
			return st.set == nil && (st.attempted.IsZero() || !now.Before(st.next))
		})
	}
	if !now.Before(st.next) && s.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer s.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
			defer cancel()
			_, _ = s.fetchIfDue(ctx, func(st *jwksState, now time.Time) bool { return !now.Before(st.next) })
		}()
	}
	return st.set, nil
}

// RefreshUnknownKey re-fetches the set for a token whose kid is not in it,
// unless any fetch was attempted in the last UnknownKeyInterval; either way
// it returns the set to retry with.
func (s *JWKSSource) RefreshUnknownKey(ctx context.Context) (*KeySet, error) {
	return s.fetchIfDue(ctx, func(st *jwksState, now time.Time) bool {
		return st.attempted.IsZero() || now.Sub(st.attempted) >= s.o.UnknownKeyInterval
	})
}

// Refresh fetches the set now (SIGHUP, tests); on failure the last good set stays.
func (s *JWKSSource) Refresh(ctx context.Context) error {
	_, err := s.fetchIfDue(ctx, func(*jwksState, time.Time) bool { return true })
	if err != nil {
		return err
	}
	return s.state.Load().err
}

// Run refreshes the set whenever it is due, until ctx ends. Optional: Keys
// refreshes lazily without it.
func (s *JWKSSource) Run(ctx context.Context) {
	for {
		st := s.state.Load()
		wait := time.Duration(0)
		if !st.attempted.IsZero() {
			wait = st.next.Sub(s.o.Now())
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		fctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
		_, _ = s.fetchIfDue(fctx, func(st *jwksState, now time.Time) bool { return !now.Before(st.next) || st.attempted.IsZero() })
		cancel()
	}
}

// Status reports when the set was last fetched and the last fetch error,
// for readiness checks. loaded is false until a set has been fetched.
func (s *JWKSSource) Status() (loaded bool, fetched time.Time, lastErr error) {
	st := s.state.Load()
	return st.set != nil, st.fetched, st.err
}

// fetchIfDue fetches under fetchMu when due(state) still holds once the
// lock is held, so concurrent callers share one fetch.
func (s *JWKSSource) fetchIfDue(ctx context.Context, due func(*jwksState, time.Time) bool) (*KeySet, error) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	st := s.state.Load()
	now := s.o.Now()
	if due(st, now) {
		st = s.fetch(ctx, st, now)
	}
	if st.set == nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, st.err)
	}
	return st.set, nil
}

func (s *JWKSSource) fetch(ctx context.Context, old *jwksState, now time.Time) *jwksState {
	set, ttl, err := s.get(ctx, now)
	next := &jwksState{set: old.set, fetched: old.fetched, attempted: now}
	if err != nil {
		next.err = err
		next.next = now.Add(s.o.MinRefresh)
		s.o.Logger.Warn("jwks fetch failed; keeping the last good key set",
			"url", s.logURL, "error", err.Error(), "have_keys", old.set != nil)
	} else {
		next.set, next.fetched, next.next = set, now, now.Add(ttl)
		if set.Skipped > 0 {
			s.o.Logger.Info("jwks entries skipped as unusable", "url", s.logURL, "skipped", set.Skipped, "keys", set.Len())
		}
	}
	s.state.Store(next)
	return next
}

func (s *JWKSSource) get(ctx context.Context, now time.Time) (*KeySet, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.o.URL, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("jwks endpoint answered HTTP %d", resp.StatusCode)
	}
	body, err := readLimited(resp.Body, s.o.MaxBytes, "jwks")
	if err != nil {
		return nil, 0, err
	}
	set, err := ParseJWKS(body)
	if err != nil {
		return nil, 0, err
	}
	return set, s.lifetime(resp.Header, now), nil
}

// lifetime reads Cache-Control max-age (or Expires) and clamps it to
// [MinRefresh, MaxRefresh]; no-store/no-cache mean MinRefresh.
func (s *JWKSSource) lifetime(h http.Header, now time.Time) time.Duration {
	ttl := s.o.MaxRefresh
	found := false
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return s.o.MinRefresh
		case strings.HasPrefix(d, "max-age="):
			if n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64); err == nil && n >= 0 {
				ttl, found = time.Duration(min(n, 1<<30))*time.Second, true
			}
		}
	}
	if !found {
		if e, err := http.ParseTime(h.Get("Expires")); err == nil {
			base := now
			if d, err := http.ParseTime(h.Get("Date")); err == nil {
				base = d
			}
			ttl = e.Sub(base)
		}
	}
	return max(s.o.MinRefresh, min(ttl, s.o.MaxRefresh))
}

var _ Refresher = (*JWKSSource)(nil)

// redactURL hides a password in raw, so that logs never carry one.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
