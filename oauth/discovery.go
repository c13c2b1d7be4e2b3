package oauth

// Discovery is a small fetcher on top of JWKSSource rather than
// coreos/go-oidc: go-oidc's NewProvider reads only openid-configuration
// (no RFC 8414 fallback), never refreshes the document, and its
// RemoteKeySet re-fetches on every unknown kid with no TTL or rate limit.
// Here the document is refreshed like the key set, the last good one is
// kept, and the keys go through the JWKSSource cache and refetch rules
// every other route uses.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DiscoveryOptions configure a DiscoverySource. The refresh bounds apply to
// the metadata document and, through JWKSOptions, to the key set.
type DiscoveryOptions struct {
	// Issuer is the configured issuer; the document's issuer must equal it
	// exactly (OpenID Connect Discovery 1.0 section 4.3, RFC 8414 section 3.3).
	Issuer string
	// Client does the fetches (jwks_ca_cert applies to both hosts). Redirects are never followed.
	Client *http.Client
	// Timeout, MaxBytes, MinRefresh, MaxRefresh, UnknownKeyInterval, AllowHTTP: as in JWKSOptions.
	Timeout            time.Duration
	MaxBytes           int64
	MinRefresh         time.Duration
	MaxRefresh         time.Duration
	UnknownKeyInterval time.Duration
	AllowHTTP          bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives fetch failures; nil discards.
	Logger *slog.Logger
}

// DiscoverySource is a KeySource whose JWK Set URL comes from the issuer's
// metadata: <issuer>/.well-known/openid-configuration, else RFC 8414's
// /.well-known/oauth-authorization-server (inserted before the issuer's
// path). Safe for concurrent use.
type DiscoverySource struct {
	issuer string
	jwks   JWKSOptions // the fetch settings, defaulted; URL set per discovered jwks_uri
	client *http.Client
	urls   []string

	fetchMu    sync.Mutex
	state      atomic.Pointer[discoveryState]
	refreshing atomic.Bool
}

type discoveryState struct {
	jwksURI   string
	keys      *JWKSSource // nil until a document loaded
	next      time.Time
	attempted time.Time
	err       error
}

// NewDiscoverySource checks the options; it fetches nothing until used.
func NewDiscoverySource(o DiscoveryOptions) (*DiscoverySource, error) {
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%w: issuer %q is not an absolute URL without query or fragment", ErrConfig, o.Issuer)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && (o.AllowHTTP || isLoopback(u.Hostname()))) {
		return nil, fmt.Errorf("%w: discovery needs an https issuer", ErrConfig)
	}
	// The document is fetched with the settings the key set is, defaults included.
	j := JWKSOptions{Timeout: o.Timeout, MaxBytes: o.MaxBytes, MinRefresh: o.MinRefresh, MaxRefresh: o.MaxRefresh,
		UnknownKeyInterval: o.UnknownKeyInterval, AllowHTTP: o.AllowHTTP, Now: o.Now, Logger: o.Logger}.withDefaults()
	j.Client = noRedirectClient(o.Client, j.Timeout)
	s := &DiscoverySource{issuer: o.Issuer, jwks: j, client: j.Client, urls: DiscoveryURLs(o.Issuer)}
	s.state.Store(&discoveryState{})
	return s, nil
}

// DiscoveryURLs are the metadata locations tried for issuer, in order: OIDC
// Discovery's (appended to the issuer) and RFC 8414's (inserted between the
// host and the issuer's path; the same URL when the issuer has no path).
func DiscoveryURLs(issuer string) []string {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil
	}
	oidc := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	as := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + p
	return []string{oidc, as}
}

// Keys returns the current key set, loading the document first if needed.
// A due document refresh runs in the background; the last good document
// (and its key source) serves meanwhile.
func (s *DiscoverySource) Keys(ctx context.Context) (*KeySet, error) {
	st, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return st.keys.Keys(ctx)
}

// RefreshUnknownKey re-fetches the key set (rate-limited by it) for a kid it lacks.
func (s *DiscoverySource) RefreshUnknownKey(ctx context.Context) (*KeySet, error) {
	st, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return st.keys.RefreshUnknownKey(ctx)
}

// Refresh fetches the document and then the key set now (SIGHUP, tests);
// on failure the last good ones stay.
func (s *DiscoverySource) Refresh(ctx context.Context) error {
	st, _ := s.fetchIfDue(ctx, func(*discoveryState, time.Time) bool { return true })
	if st.err != nil {
		return st.err
	}
	return st.keys.Refresh(ctx)
}

// Run keeps the document and the key set fresh until ctx ends.
func (s *DiscoverySource) Run(ctx context.Context) {
	var running *JWKSSource
	var stop []context.CancelFunc // the running key source's refresh loop
	defer func() {
		for _, c := range stop {
			c()
		}
	}()
	for {
		fctx, cancel := context.WithTimeout(ctx, s.jwks.Timeout)
		st, _ := s.fetchIfDue(fctx, func(st *discoveryState, now time.Time) bool {
			return st.attempted.IsZero() || !now.Before(st.next)
		})
		cancel()
		if st.keys != nil && st.keys != running {
			for _, c := range stop {
				c()
			}
			kctx, c := context.WithCancel(ctx)
			stop, running = []context.CancelFunc{c}, st.keys
			go st.keys.Run(kctx)
		}
		t := time.NewTimer(max(st.next.Sub(s.jwks.Now()), time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Status reports the key set's state (loaded, fetched, last error); a
// document that never loaded reports its own error.
func (s *DiscoverySource) Status() (loaded bool, fetched time.Time, lastErr error) {
	st := s.state.Load()
	if st.keys == nil {
		return false, time.Time{}, st.err
	}
	loaded, fetched, lastErr = st.keys.Status()
	if lastErr == nil {
		lastErr = st.err
	}
	return loaded, fetched, lastErr
}

// JWKSURI is the key set URL of the current document ("" before one loaded).
func (s *DiscoverySource) JWKSURI() string { return s.state.Load().jwksURI }

func (s *DiscoverySource) current(ctx context.Context) (*discoveryState, error) {
	st := s.state.Load()
	now := s.jwks.Now()
	if st.keys == nil {
		if !st.attempted.IsZero() && now.Before(st.next) {
			return nil, fmt.Errorf("%w: discovery: %v", ErrKeysUnavailable, st.err)
		}
		st, _ = s.fetchIfDue(ctx, func(st *discoveryState, now time.Time) bool {
			return st.keys == nil && (st.attempted.IsZero() || !now.Before(st.next))
		})
		if st.keys == nil {
			return nil, fmt.Errorf("%w: discovery: %v", ErrKeysUnavailable, st.err)
		}
		return st, nil
	}
	if !now.Before(st.next) && s.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer s.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), s.jwks.Timeout)
			defer cancel()
			_, _ = s.fetchIfDue(ctx, func(st *discoveryState, now time.Time) bool { return !now.Before(st.next) })
		}()
	}
	return st, nil
}

func (s *DiscoverySource) fetchIfDue(ctx context.Context, due func(*discoveryState, time.Time) bool) (*discoveryState, error) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	st := s.state.Load()
	now := s.jwks.Now()
	if !due(st, now) {
		return st, nil
	}
	next := &discoveryState{jwksURI: st.jwksURI, keys: st.keys, attempted: now}
	uri, err := s.fetchDocument(ctx)
	if err == nil && uri != st.jwksURI {
		var src *JWKSSource
		o := s.jwks
		o.URL = uri
		src, err = NewJWKSSource(o)
		if err == nil {
			next.jwksURI, next.keys = uri, src
		}
	}
	if err != nil {
		next.err = err
		next.next = now.Add(s.jwks.MinRefresh)
		s.jwks.Logger.Warn("discovery failed; keeping the last good metadata",
			"issuer", s.issuer, "error", err.Error(), "have_metadata", st.keys != nil)
	} else {
		next.next = now.Add(s.jwks.MaxRefresh)
	}
	s.state.Store(next)
	return next, err
}

// fetchDocument tries each metadata URL in turn and returns the jwks_uri
// of the first document that answers 200 and names our issuer. A document
// naming another issuer is an error, not a reason to try the next URL.
func (s *DiscoverySource) fetchDocument(ctx context.Context) (string, error) {
	var last error
	for _, u := range s.urls {
		doc, status, err := s.get(ctx, u)
		if err != nil {
			last = err
			continue
		}
		if status == http.StatusNotFound {
			last = fmt.Errorf("%s answered HTTP 404", redactURL(u))
			continue
		}
		if status != http.StatusOK {
			return "", fmt.Errorf("%s answered HTTP %d", redactURL(u), status)
		}
		var m struct {
			Issuer  *string `json:"issuer"`
			JWKSURI *string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(doc, &m); err != nil {
			return "", fmt.Errorf("%s: metadata is not a JSON object", redactURL(u))
		}
		if m.Issuer == nil || *m.Issuer != s.issuer {
			return "", fmt.Errorf("%s: metadata issuer is not the configured issuer", redactURL(u))
		}
		if m.JWKSURI == nil || *m.JWKSURI == "" {
			return "", fmt.Errorf("%s: metadata has no jwks_uri", redactURL(u))
		}
		return *m.JWKSURI, nil
	}
	return "", last
}

func (s *DiscoverySource) get(ctx context.Context, u string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.jwks.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, s.jwks.MaxBytes, "metadata")
	if err != nil {
		return nil, 0, err
	}
	return body, resp.StatusCode, nil
}

var _ Refresher = (*DiscoverySource)(nil)
