package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// ClientCredentials yields the introspection client's id and secret. The
// secrets package satisfies it (see CredentialsFromSecret).
type ClientCredentials interface {
	ClientCredentials(ctx context.Context) (id, secret string, err error)
}

// CredentialsFromSecret reads fields client_id and client_secret of a secret.
func CredentialsFromSecret(src SecretFields) ClientCredentials { return secretCreds{src} }

type secretCreds struct{ src SecretFields }

func (s secretCreds) ClientCredentials(context.Context) (string, string, error) {
	f, err := s.src.Fields()
	if err != nil {
		return "", "", err
	}
	if f["client_id"] == "" || f["client_secret"] == "" {
		return "", "", fmt.Errorf("%w: introspection secret lacks client_id or client_secret", ErrConfig)
	}
	return f["client_id"], f["client_secret"], nil
}

// IntrospectionOptions configure RFC 7662 token introspection. Issuer,
// Audience and Leeway come from the Validator's Options.
type IntrospectionOptions struct {
	// URL is the introspection endpoint: https, or http on a loopback host (or with AllowHTTP).
	URL string
	// Credentials authenticate wsgate to the endpoint (HTTP Basic, RFC 6749 section 2.3.1).
	Credentials ClientCredentials
	// Client makes the calls; nil means one with Timeout. Redirects are never followed.
	Client *http.Client
	// Timeout bounds one call. Default 10s.
	Timeout time.Duration
	// MaxBytes caps the response body. Default 64 KiB.
	MaxBytes int64
	// CacheTTL caps how long a result is cached; never past exp. Default 60s.
	CacheTTL time.Duration
	// NegativeTTL caps how long an inactive result is cached. Default 5s.
	NegativeTTL time.Duration
	// CacheEntries bounds the cache. Default DefaultCacheEntries.
	CacheEntries int
	// AllowHTTP permits a plain-http URL on a non-loopback host.
	AllowHTTP bool
}

type introspector struct {
	o      IntrospectionOptions
	vo     Options
	client *http.Client
	cache  *tokenCache[introResult]
	// inflight collapses concurrent introspections of one token.
	mu       sync.Mutex
	inflight map[Fingerprint]*call
}

type introResult struct {
	tok *Token
	err error
}

type call struct {
	done chan struct{}
	res  introResult
}

func newIntrospector(o IntrospectionOptions, vo Options) (*introspector, error) {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil || u.Host == "":
		return nil, fmt.Errorf("%w: introspection url %q is not an absolute URL", ErrConfig, o.URL)
	case u.Scheme == "https":
	case u.Scheme == "http" && (o.AllowHTTP || isLoopback(u.Hostname())):
	default:
		return nil, fmt.Errorf("%w: introspection url must be https", ErrConfig)
	}
	if o.Credentials == nil {
		return nil, fmt.Errorf("%w: introspection needs client credentials", ErrConfig)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 10
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 60 * time.Second
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 5 * time.Second
	}
	o.NegativeTTL = min(o.NegativeTTL, o.CacheTTL)
	c := noRedirectClient(o.Client, o.Timeout)
	return &introspector{o: o, vo: vo, client: c, cache: newTokenCache[introResult](o.CacheEntries),
		inflight: map[Fingerprint]*call{}}, nil
}

// introspect answers from the cache, or asks the endpoint once for all
// concurrent callers with the same token.
func (in *introspector) introspect(ctx context.Context, raw string, fp Fingerprint) (*Token, error) {
	if r, ok := in.cache.get(fp, in.vo.Now()); ok {
		return r.tok, r.err
	}
	in.mu.Lock()
	if c, ok := in.inflight[fp]; ok {
		in.mu.Unlock()
		select {
		case <-c.done:
			return c.res.tok, c.res.err
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrIntrospectionUnavailable, ctx.Err())
		}
	}
	c := &call{done: make(chan struct{})}
	in.inflight[fp] = c
	in.mu.Unlock()

	c.res = in.ask(ctx, raw, fp)
	in.mu.Lock()
	delete(in.inflight, fp)
	in.mu.Unlock()
	close(c.done)
	return c.res.tok, c.res.err
}

// introspectionResponse holds the RFC 7662 members wsgate checks.
type introspectionResponse struct {
	Active   bool             `json:"active"`
	Scope    string           `json:"scope"`
	ClientID string           `json:"client_id"`
	Subject  string           `json:"sub"`
	Issuer   string           `json:"iss"`
	Audience jwt.Audience     `json:"aud"`
	Expiry   *jwt.NumericDate `json:"exp"`
	NotBef   *jwt.NumericDate `json:"nbf"`
	IssuedAt *jwt.NumericDate `json:"iat"`
}

func (in *introspector) ask(ctx context.Context, raw string, fp Fingerprint) introResult {
	body, err := in.post(ctx, raw)
	if err != nil {
		// Not cached: the next request retries.
		in.vo.Logger.Warn("introspection failed", "url", in.o.URL, "error", err.Error(), "token_sha256", fp.LogID())
		return introResult{err: fmt.Errorf("%w: %v", ErrIntrospectionUnavailable, err)}
	}
	now := in.vo.Now()
	all, err := decodeObject(body)
	var r introspectionResponse
	if err == nil {
		err = json.Unmarshal(body, &r)
	}
	if err != nil {
		return introResult{err: fmt.Errorf("%w: introspection response is not valid JSON", ErrIntrospectionUnavailable)}
	}
	if !r.Active {
		res := introResult{err: ErrInactive}
		in.cache.put(fp, res, now.Add(in.o.NegativeTTL), now)
		return res
	}
	c := jwt.Claims{Issuer: r.Issuer, Audience: r.Audience, Expiry: r.Expiry, NotBefore: r.NotBef, IssuedAt: r.IssuedAt}
	if err := checkClaims(c, in.vo, now); err != nil {
		// A definite answer about this token: cache it briefly like inactive.
		res := introResult{err: err}
		in.cache.put(fp, res, now.Add(in.o.NegativeTTL), now)
		return res
	}
	tok := &Token{
		Subject:      r.Subject,
		ClientID:     r.ClientID,
		Issuer:       r.Issuer,
		Audience:     []string(r.Audience),
		Scopes:       strings.Fields(r.Scope),
		Introspected: true,
		Claims:       all,
	}
	until := now.Add(in.o.CacheTTL)
	if r.Expiry != nil {
		tok.Expiry = r.Expiry.Time()
		until = minTime(until, tok.Expiry)
	}
	in.cache.put(fp, introResult{tok: tok}, until, now)
	return introResult{tok: tok}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (in *introspector) post(ctx context.Context, raw string) ([]byte, error) {
	id, secret, err := in.o.Credentials.ClientCredentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("client credentials: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, in.o.Timeout)
	defer cancel()
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.o.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection endpoint answered HTTP %d", resp.StatusCode)
	}
	return readLimited(resp.Body, in.o.MaxBytes, "introspection")
}
