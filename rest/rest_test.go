package rest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/internal/ratelimit"
	"wsgate/internal/reqscope"
	"wsgate/oauth"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const (
	issuer   = "https://idp.example.com/"
	audience = "billing-api"
	prefix   = "/api/billing"
)

var (
	keyOnce    sync.Once
	key, other *rsa.PrivateKey
)

func rsaKeys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if other, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return key, other
}

func claims(kv ...any) map[string]any {
	m := map[string]any{
		"iss": issuer, "aud": audience, "sub": "alice", "client_id": "billing-ui",
		"scope": "billing.read profile", "iat": t0.Unix(), "exp": t0.Add(5 * time.Minute).Unix(),
		"jti": "jti-1", // RFC 9068 requires it where typ is at+jwt
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
		} else {
			m[kv[i].(string)] = kv[i+1]
		}
	}
	return m
}

func mint(t testing.TB, alg jose.SignatureAlgorithm, k any, kid, typ string, c map[string]any) string {
	t.Helper()
	o := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, o)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// upstream records what reached it.
type upstream struct {
	*httptest.Server
	hits     atomic.Int64
	mu       sync.Mutex
	last     http.Header
	lastBody []byte
	method   string
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.last, u.lastBody, u.method = r.Header.Clone(), body, r.Method
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("upstream:" + r.URL.Path))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) headers() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// reverseProxy stands in for proxy.New: an httputil.ReverseProxy with Rewrite.
func reverseProxy(t testing.TB, target string) http.Handler {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.SetXForwarded()
	}}
}

type fixture struct {
	handler   http.Handler    // rest's handler
	scope     *reqscope.Scope // of the last request through do
	up        *upstream
	jwks      *httptest.Server
	jwksDown  atomic.Bool
	decisions []Decision
	mu        sync.Mutex
	logs      *bytes.Buffer
}

func (f *fixture) lastDecision() Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.decisions) == 0 {
		return Decision{}
	}
	return f.decisions[len(f.decisions)-1]
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func newFixture(t testing.TB, mut func(*Options)) *fixture {
	t.Helper()
	k, _ := rsaKeys(t)
	f := &fixture{up: newUpstream(t), logs: &bytes.Buffer{}}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	f.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.jwksDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(set)
	}))
	t.Cleanup(f.jwks.Close)
	now := func() time.Time { return t0 }
	src, err := oauth.NewJWKSSource(oauth.JWKSOptions{URL: f.jwks.URL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	v, err := oauth.NewValidator(oauth.Options{Issuer: issuer, Audience: []string{audience},
		Algorithms: []string{"RS256"}, Leeway: time.Minute, RequireTyp: "at+jwt", Keys: src, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	scopes, err := oauth.NewScopePolicy([]oauth.ScopeRule{
		{Methods: []string{"GET"}, Path: "/**", AnyOf: []string{"billing.read"}},
		{Methods: []string{"POST", "PUT", "DELETE"}, Path: "/**", AnyOf: []string{"billing.write"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Route: "billing", PathPrefix: prefix, Validator: v, Scopes: scopes,
		ForwardClaims: map[string]string{"sub": "X-Auth-Subject", "scope": "X-Auth-Scopes", "client_id": "X-Auth-Client"},
		Upstream:      reverseProxy(t, f.up.URL),
		Logger:        slog.New(slog.NewJSONHandler(&lockedBuffer{b: f.logs}, nil)),
		OnDecision: func(d Decision) {
			f.mu.Lock()
			f.decisions = append(f.decisions, d)
			f.mu.Unlock()
		},
	}
	if mut != nil {
		mut(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.handler = h
	return f
}

// do sends r through rest as the gateway would: inside a request scope with
// the front door's request ID and client IP.
func (f *fixture) do(r *http.Request) *httptest.ResponseRecorder {
	f.scope = reqscope.New("req-1", "192.0.2.1")
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r.WithContext(reqscope.With(r.Context(), f.scope)))
	return w
}

func get(path string, auth ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for _, a := range auth {
		r.Header.Add("Authorization", a)
	}
	return r
}

func TestRejections(t *testing.T) {
	k, o := rsaKeys(t)
	f := newFixture(t, nil)
	good := mint(t, jose.RS256, k, "k1", "at+jwt", claims())
	parts := strings.Split(good, ".")
	evil := strings.Split(mint(t, jose.RS256, o, "k1", "at+jwt", claims("sub", "root")), ".")
	rsaPub, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k1","typ":"at+jwt"}`)) + "." + parts[1] + "."

	const (
		realm     = `Bearer realm="wsgate"`
		invalid   = realm + `, error="invalid_token", error_description="the token is invalid"`
		malformed = realm + `, error="invalid_token", error_description="the token is malformed"`
	)
	tests := []struct {
		name      string
		req       *http.Request
		status    int
		challenge string
		code      string
		want      error
	}{
		{"no token", get(prefix + "/invoices"), 401, realm, "unauthorized", oauth.ErrNoToken},
		{"basic credentials", get(prefix+"/invoices", "Basic YTpi"), 401, realm, "unauthorized", oauth.ErrNoToken},
		{"expired", get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims("exp", t0.Add(-2*time.Minute).Unix()))),
			401, realm + `, error="invalid_token", error_description="the token has expired"`, "invalid_token", oauth.ErrExpired},
		{"not yet valid", get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims("nbf", t0.Add(2*time.Minute).Unix()))),
			401, realm + `, error="invalid_token", error_description="the token is not yet valid"`, "invalid_token", oauth.ErrNotYetValid},
		{"wrong issuer", get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims("iss", "https://evil/"))),
			401, invalid, "invalid_token", oauth.ErrWrongIssuer},
		{"wrong audience", get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims("aud", "orders-api"))),
			401, invalid, "invalid_token", oauth.ErrWrongAudience},
		{"alg none", get(prefix+"/invoices", "Bearer "+none+"c2ln"), 401, invalid, "invalid_token", oauth.ErrAlgorithmNotAllowed},
		{"alg none, empty signature", get(prefix+"/invoices", "Bearer "+none), 401, malformed, "invalid_token", oauth.ErrMalformed},
		{"HS256 signed with the RSA public key", get(prefix+"/invoices", "Bearer "+mint(t, jose.HS256, rsaPub, "k1", "at+jwt", claims())),
			401, invalid, "invalid_token", oauth.ErrAlgorithmNotAllowed},
		{"unknown kid", get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, o, "k2", "at+jwt", claims())), 401, invalid, "invalid_token", oauth.ErrUnknownKey},
		{"tampered payload", get(prefix+"/invoices", "Bearer "+parts[0]+"."+evil[1]+"."+parts[2]), 401, invalid, "invalid_token", oauth.ErrInvalidSignature},
		{"wrong typ", get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "JWT", claims())), 401, invalid, "invalid_token", oauth.ErrWrongType},
		{"missing scope", get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims("scope", "profile"))),
			403, realm + `, error="insufficient_scope", error_description="the token lacks the required scope", scope="billing.read"`, "insufficient_scope", oauth.ErrInsufficientScope},
		{"write with a read token", httptest.NewRequest(http.MethodDelete, prefix+"/invoices/1", nil), 403,
			realm + `, error="insufficient_scope", error_description="the token lacks the required scope", scope="billing.write"`, "insufficient_scope", oauth.ErrInsufficientScope},
		{"method no rule covers", httptest.NewRequest(http.MethodPatch, prefix+"/invoices/1", nil), 403,
			realm + `, error="insufficient_scope", error_description="the token lacks the required scope"`, "insufficient_scope", oauth.ErrInsufficientScope},
		{"malformed", get(prefix+"/invoices", "Bearer abc.def"), 401, malformed, "invalid_token", oauth.ErrMalformed},
		{"malformed characters", get(prefix+"/invoices", "Bearer a\"b"), 401, malformed, "invalid_token", oauth.ErrMalformed},
		{"oversized", get(prefix+"/invoices", "Bearer "+strings.Repeat("A", 9000)), 401, malformed, "invalid_token", oauth.ErrTokenTooLarge},
		{"token in the query string", get(prefix + "/invoices?access_token=" + good), 400,
			realm + `, error="invalid_request", error_description="send the token in the Authorization header, not the query string"`, "invalid_request", oauth.ErrTokenInQuery},
		{"token in the query string and header", get(prefix+"/invoices?access_token=x", "Bearer "+good), 400,
			realm + `, error="invalid_request", error_description="send the token in the Authorization header, not the query string"`, "invalid_request", oauth.ErrTokenInQuery},
		{"two Authorization headers", get(prefix+"/invoices", "Bearer "+good, "Bearer "+good), 400,
			realm + `, error="invalid_request", error_description="more than one Authorization header"`, "invalid_request", oauth.ErrMultipleAuthorization},
		{"dot segments", get(prefix+"/public/../admin", "Bearer "+good), 400,
			realm + `, error="invalid_request", error_description="the request path is not canonical"`, "invalid_request", ErrAmbiguousPath},
		{"encoded slash", get(prefix+"/a%2Fb", "Bearer "+good), 400,
			realm + `, error="invalid_request", error_description="the request path is not canonical"`, "invalid_request", ErrAmbiguousPath},
		{"matrix parameter", get(prefix+"/admin;x=1/users", "Bearer "+good), 400,
			realm + `, error="invalid_request", error_description="the request path is not canonical"`, "invalid_request", ErrAmbiguousPath},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.Method != http.MethodGet {
				tc.req.Header.Set("Authorization", "Bearer "+good)
			}
			before := f.up.hits.Load()
			w := f.do(tc.req)
			if f.up.hits.Load() != before {
				t.Fatal("the upstream saw a refused request")
			}
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, tc.challenge)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var body ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body.Error != tc.code || body.RequestID != "req-1" || body.Description == "" || w.Header().Get("X-Request-ID") != "req-1" {
				t.Fatalf("body %+v", body)
			}
			d := f.lastDecision()
			if !errors.Is(d.Err, tc.want) || d.Outcome != "rejected" {
				t.Fatalf("decision %+v, want sentinel %v", d, tc.want)
			}
		})
	}
}

func TestAcceptedRequestHeaders(t *testing.T) {
	k, _ := rsaKeys(t)
	for _, keep := range []bool{false, true} {
		f := newFixture(t, func(o *Options) {
			o.KeepAuthorization = keep
			// X-Auth-Client carries a claim the token lacks (RFC 9068 makes client_id required).
			o.ForwardClaims = map[string]string{"sub": "X-Auth-Subject", "scope": "X-Auth-Scopes", "azp": "X-Auth-Client"}
		})
		tok := mint(t, jose.RS256, k, "k1", "at+jwt", claims())
		r := get(prefix+"/invoices/7", "Bearer "+tok)
		r.Header.Set("X-Auth-Subject", "mallory")
		r.Header["X_Auth_Subject"] = []string{"mallory"}
		r.Header.Set("x-auth-scopes", "billing.admin")
		r.Header.Set("X-Auth-Client", "forged") // the token has no client_id: must vanish, not pass through
		r.Header.Set("Connection", "X-Auth-Subject")
		w := f.do(r)
		if w.Code != 200 || w.Body.String() != "upstream:"+prefix+"/invoices/7" {
			t.Fatalf("keep=%v: status %d body %q", keep, w.Code, w.Body)
		}
		h := f.up.headers()
		if got := h.Get("X-Auth-Subject"); got != "alice" {
			t.Errorf("keep=%v: X-Auth-Subject %q", keep, got)
		}
		if got := h.Values("X-Auth-Scopes"); len(got) != 1 || got[0] != "billing.read profile" {
			t.Errorf("keep=%v: X-Auth-Scopes %q", keep, got)
		}
		if got := h.Values("X-Auth-Client"); len(got) != 0 {
			t.Errorf("keep=%v: client-sent X-Auth-Client reached the upstream: %q", keep, got)
		}
		if got := h.Values("X_Auth_Subject"); len(got) != 0 {
			t.Errorf("keep=%v: underscore spelling reached the upstream", keep)
		}
		if got := h.Get("Authorization"); (got != "") != keep {
			t.Errorf("keep=%v: Authorization upstream = %q", keep, got)
		}
		if d := f.lastDecision(); d.Outcome != "accepted" || d.Err != nil {
			t.Errorf("decision %+v", d)
		}
	}
}

func TestKeysUnavailable(t *testing.T) {
	k, _ := rsaKeys(t)
	f := newFixture(t, nil)
	f.jwksDown.Store(true)
	w := f.do(get(prefix+"/x", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims())))
	if w.Code != http.StatusServiceUnavailable || f.up.hits.Load() != 0 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, hits %d", w.Code, f.up.hits.Load())
	}
	if d := f.lastDecision(); !errors.Is(d.Err, oauth.ErrKeysUnavailable) || d.Outcome != "unavailable" {
		t.Fatalf("decision %+v", d)
	}
}

// The edge's rate limit is per subject: the token's sub, else its client_id.
func TestRateLimit(t *testing.T) {
	k, _ := rsaKeys(t)
	for _, who := range []struct {
		name string
		tok  *oauth.Token // nil: the fixture's JWT validator
	}{
		{"sub", nil},
		// An introspected token may lack sub.
		{"client_id", &oauth.Token{ClientID: "billing-ui", Scopes: []string{"billing.read"}, Introspected: true}},
	} {
		t.Run(who.name, func(t *testing.T) {
			lim, err := ratelimit.NewMemory(ratelimit.Options{Rate: 0.5, Burst: 1, Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			f := newFixture(t, func(o *Options) {
				o.RateLimiter = lim
				if who.tok != nil {
					o.Validator = validatorFunc(func(context.Context, string) (*oauth.Token, error) { return who.tok, nil })
				}
			})
			tok := mint(t, jose.RS256, k, "k1", "at+jwt", claims())
			if w := f.do(get(prefix+"/x", "Bearer "+tok)); w.Code != 200 {
				t.Fatalf("first request: %d", w.Code)
			}
			w := f.do(get(prefix+"/x", "Bearer "+tok))
			if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" {
				t.Fatalf("second request: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
			}
			if f.up.hits.Load() != 1 {
				t.Fatalf("upstream hits %d, want 1", f.up.hits.Load())
			}
			var body ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != "rate_limited" || body.RequestID != "req-1" {
				t.Fatalf("body %s", w.Body)
			}
			if d := f.lastDecision(); !errors.Is(d.Err, ErrRateLimited) || d.Outcome != "rate_limited" {
				t.Fatalf("decision %+v", d)
			}
		})
	}
}

func TestTokenNeverLogged(t *testing.T) {
	k, _ := rsaKeys(t)
	f := newFixture(t, nil)
	good := mint(t, jose.RS256, k, "k1", "at+jwt", claims())
	bad := mint(t, jose.RS256, k, "k1", "at+jwt", claims("exp", t0.Add(-time.Hour).Unix()))
	f.do(get(prefix+"/x", "Bearer "+good))
	f.do(get(prefix+"/x", "Bearer "+bad))
	f.do(get(prefix + "/x?access_token=" + good))
	logs := f.logs.String()
	for _, tok := range []string{good, bad} {
		for _, part := range strings.Split(tok, ".") {
			if strings.Contains(logs, part) {
				t.Fatalf("a token segment was logged:\n%s", logs)
			}
		}
	}
	var records []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		records = append(records, m)
	}
	if len(records) != 3 {
		t.Fatalf("%d records, want one per request", len(records))
	}
	acc, rej := records[0], records[1]
	if acc["outcome"] != "accepted" || acc["sub"] != "alice" || acc["client_id"] != "billing-ui" ||
		acc["token_sha256"] != oauth.FingerprintOf(good).LogID() || acc["reason"] != "ok" {
		t.Fatalf("accepted record %v", acc)
	}
	if rej["outcome"] != "rejected" || rej["reason"] != "expired" || rej["token_sha256"] != oauth.FingerprintOf(bad).LogID() {
		t.Fatalf("rejected record %v", rej)
	}
	if _, ok := rej["sub"]; ok {
		t.Fatal("an unverified sub was logged")
	}
}

func TestNewOptions(t *testing.T) {
	up := http.NotFoundHandler()
	v := validatorFunc(func(context.Context, string) (*oauth.Token, error) { return nil, oauth.ErrNoToken })
	bad := []Options{
		{Upstream: up},
		{Validator: v},
		{Validator: v, Upstream: up, ForwardClaims: map[string]string{"sub": "Bad Header"}},
		{Validator: v, Upstream: up, ForwardClaims: map[string]string{"sub": "authorization"}},
		{Validator: v, Upstream: up, ForwardClaims: map[string]string{"sub": "X-Forwarded-For"}},
		{Validator: v, Upstream: up, ForwardClaims: map[string]string{"sub": "X-A", "azp": "x-a"}},
	}
	for i, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("case %d: New accepted %+v", i, o)
		}
	}
}

type validatorFunc func(context.Context, string) (*oauth.Token, error)

func (f validatorFunc) Validate(ctx context.Context, raw string) (*oauth.Token, error) {
	return f(ctx, raw)
}

func TestClaimValue(t *testing.T) {
	tok := &oauth.Token{Scopes: []string{"a", "b"}, Claims: map[string]any{
		"s": "x", "n": json.Number("12345678901234567890"), "b": true, "arr": []any{"r1", "r2"},
		"obj": map[string]any{"k": "v"}, "nul": nil,
	}}
	tests := []struct {
		claim, want string
		ok          bool
	}{
		{"scope", "a b", true}, {"scp", "a b", true}, {"s", "x", true}, {"n", "12345678901234567890", true},
		{"b", "true", true}, {"arr", "r1,r2", true}, {"obj", `{"k":"v"}`, true}, {"nul", "", false}, {"missing", "", false},
	}
	for _, tc := range tests {
		got, ok := claimValue(tok, tc.claim)
		if got != tc.want || ok != tc.ok {
			t.Errorf("claimValue(%q) = %q, %v; want %q, %v", tc.claim, got, ok, tc.want, tc.ok)
		}
	}
	if validHeaderValue("a\r\nX-Evil: 1") || !validHeaderValue("a\tb") {
		t.Error("validHeaderValue")
	}
}

// TestClientIP: a token with neither sub nor client_id is limited by the
// front door's client IP (the request scope), never a client-sent
// X-Forwarded-For; without a scope, by the peer address.
func TestClientIP(t *testing.T) {
	k, _ := rsaKeys(t)
	lim, err := ratelimit.NewMemory(ratelimit.Options{Rate: 1, Burst: 1, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) {
		o.RateLimiter = lim
		o.Validator = validatorFunc(func(context.Context, string) (*oauth.Token, error) {
			return &oauth.Token{Scopes: []string{"billing.read"}, Introspected: true}, nil // neither sub nor client_id
		})
	})
	tok := "Bearer " + mint(t, jose.RS256, k, "k1", "at+jwt", claims())
	send := func(scopeIP, peer string, i int) int {
		r := get(prefix+"/x", tok)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", "198.51.100."+strconv.Itoa(i)) // spoofed
		if scopeIP != "" {
			r = r.WithContext(reqscope.With(r.Context(), reqscope.New("id-"+strconv.Itoa(i), scopeIP)))
		}
		w := httptest.NewRecorder()
		f.handler.ServeHTTP(w, r)
		return w.Code
	}
	tests := []struct {
		scopeIP, peer string
		want          int
	}{
		{"203.0.113.5", "10.0.0.1:1", 200},
		{"203.0.113.5", "10.0.0.2:1", 429}, // same client behind another proxy hop
		{"203.0.113.6", "10.0.0.1:1", 200}, // another client through the same peer
		{"", "192.0.2.7:1234", 200},
		{"", "192.0.2.7:5678", 429},
	}
	for i, tc := range tests {
		if got := send(tc.scopeIP, tc.peer, i); got != tc.want {
			t.Errorf("request %d (scope IP %q, peer %s): %d, want %d", i, tc.scopeIP, tc.peer, got, tc.want)
		}
	}
	if f.up.hits.Load() != 3 {
		t.Fatalf("upstream hits %d, want 3", f.up.hits.Load())
	}
}
