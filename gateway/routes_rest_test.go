package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/internal/testclock"
)

// t0 is the fixed "now" of the gateway tests.
var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const (
	testIssuer   = "https://idp.test.invalid/"
	testAudience = "orders-api"
)

// recordingUpstream counts requests and keeps the last one's headers.
type recordingUpstream struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	last http.Header
	path string
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.path = r.URL.Path
		u.mu.Unlock()
		_, _ = w.Write([]byte("upstream:" + r.URL.Path))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) lastPath() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.path
}

func (u *recordingUpstream) header() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

func bearerGet(target, token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// mintJWT signs claims with key; exp defaults to 5 minutes after clk.
func mintJWT(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, clk *testclock.Clock, extra map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	c := map[string]any{"iss": testIssuer, "aud": testAudience, "sub": "alice", "scope": "orders.read",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fakeIdP serves a JWK Set over TLS; the set can be swapped or failed.
type fakeIdP struct {
	*httptest.Server
	mu   sync.Mutex
	set  []byte
	down bool
}

func newFakeIdP(t *testing.T) *fakeIdP {
	idp := &fakeIdP{}
	idp.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idp.mu.Lock()
		defer idp.mu.Unlock()
		if idp.down || r.URL.Path != "/jwks" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(idp.set)
	}))
	t.Cleanup(idp.Close)
	return idp
}

// publish makes the IdP serve exactly these keys (kid -> key).
func (idp *fakeIdP) publish(t *testing.T, keys map[string]*ecdsa.PrivateKey) {
	t.Helper()
	var set jose.JSONWebKeySet
	for kid, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	idp.mu.Lock()
	idp.set, idp.down = b, false
	idp.mu.Unlock()
}

func (idp *fakeIdP) fail() {
	idp.mu.Lock()
	idp.down = true
	idp.mu.Unlock()
}

func readyz(t *testing.T, g *Gateway) (int, readiness) {
	t.Helper()
	w := httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var r readiness
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatalf("/readyz body: %v: %s", err, w.Body)
	}
	return w.Code, r
}

// A jwks_url route over TLS (jwks_ca_cert relative to the config file):
// keys load, a rotation is picked up on an unknown kid (at most once per
// 30 s) and on SIGHUP's refresh, a removed key revokes its tokens, the last
// good set survives an IdP outage, and /readyz reports all of it.
func TestRESTRouteJWKSURLRotation(t *testing.T) {
	dir := t.TempDir()
	clk := testclock.New(t0)
	up := newRecordingUpstream(t)
	idp := newFakeIdP(t)
	k1, k2, k3 := newP256(t), newP256(t), newP256(t)
	idp.publish(t, map[string]*ecdsa.PrivateKey{"k1": k1})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate().Raw})
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "certs", "idp-ca.pem"), string(caPEM))
	logs := &syncBuffer{}
	g := newTestGateway(t, dir, `
log: {level: debug}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /api/orders
    upstream: "`+up.URL+`"
    oauth:
      issuer: "`+testIssuer+`"
      audience: [`+testAudience+`]
      jwks_url: "`+idp.URL+`/jwks"
      jwks_ca_cert: certs/idp-ca.pem
      algorithms: [ES256]
      scopes: [{methods: [GET], path: "/**", any_of: [orders.read]}]
      forward_claims: {sub: X-Auth-Subject}
`, clk, logs)
	if len(g.current().jwks) != 1 {
		t.Fatalf("gateway has %d JWKS sources, want 1", len(g.current().jwks))
	}
	if code, r := readyz(t, g); code != http.StatusServiceUnavailable || r.Ready || len(r.JWKS) != 1 || r.JWKS[0].Loaded {
		t.Errorf("/readyz before any fetch: %d %+v", code, r)
	}

	steps := []struct {
		name   string
		before func()
		token  string
		status int
	}{
		{"k1 published", nil, mintJWT(t, jose.ES256, k1, "k1", clk, nil), http.StatusOK},
		{"rotated to k2, refetch not yet allowed", func() { idp.publish(t, map[string]*ecdsa.PrivateKey{"k2": k2}) },
			mintJWT(t, jose.ES256, k2, "k2", clk, nil), http.StatusUnauthorized},
		{"unknown kid after 30s refetches", func() { clk.Add(31 * time.Second) },
			mintJWT(t, jose.ES256, k2, "k2", clk, nil), http.StatusOK},
		{"k1 removed: its token is revoked", nil, mintJWT(t, jose.ES256, k1, "k1", clk, nil), http.StatusUnauthorized},
		{"rotated to k3, SIGHUP refresh", func() {
			idp.publish(t, map[string]*ecdsa.PrivateKey{"k3": k3})
			_ = g.Refresh(context.Background())
		}, mintJWT(t, jose.ES256, k3, "k3", clk, nil), http.StatusOK},
		{"IdP down: last good set kept", func() {
			idp.fail()
			_ = g.Refresh(context.Background())
		}, mintJWT(t, jose.ES256, k3, "k3", clk, map[string]any{"sub": "bob"}), http.StatusOK},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		hits := up.hits.Load()
		w := serveReq(g, bearerGet("/api/orders/42", s.token))
		if w.Code != s.status {
			t.Fatalf("%s: status %d, want %d: %s", s.name, w.Code, s.status, w.Body)
		}
		reached := up.hits.Load() > hits
		if reached != (s.status == http.StatusOK) {
			t.Fatalf("%s: upstream reached = %v", s.name, reached)
		}
		if s.status == http.StatusUnauthorized &&
			!strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="wsgate", error="invalid_token"`) {
			t.Errorf("%s: WWW-Authenticate %q", s.name, w.Header().Get("WWW-Authenticate"))
		}
	}
	if got := up.header().Get("X-Auth-Subject"); got != "bob" {
		t.Errorf("X-Auth-Subject = %q, want bob", got)
	}
	code, r := readyz(t, g)
	if code != http.StatusOK || !r.Ready || !r.Stale || len(r.JWKS) != 1 || !r.JWKS[0].Loaded ||
		r.JWKS[0].Error == "" || r.JWKS[0].Route != "orders" || r.JWKS[0].FetchedAt.IsZero() {
		t.Errorf("/readyz with the IdP down: %d %+v", code, r)
	}
}

// The serve loop fetches JWK Sets in the background with the serve context.
func TestServeRunsJWKSRefresh(t *testing.T) {
	dir := t.TempDir()
	idp := newFakeIdP(t)
	idp.publish(t, map[string]*ecdsa.PrivateKey{"k1": newP256(t)})
	writeTestFile(t, filepath.Join(dir, "ca.pem"),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate().Raw})))
	g := newTestGateway(t, dir, `
listen: 127.0.0.1:0
log: {level: error}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /api/orders
    upstream: "http://127.0.0.1:1"
    oauth: {issuer: "`+testIssuer+`", audience: [a], jwks_url: "`+idp.URL+`/jwks", jwks_ca_cert: ca.pem, algorithms: [ES256]}
`, testclock.New(time.Now()), &syncBuffer{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, nil) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if loaded, _, _ := g.current().jwks[0].src.Status(); loaded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the JWK Set was not fetched by the serve loop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// How a REST route built from config answers: secrets from the Manager
// (503 while never loaded), rate limit, keep_authorization, request-shape
// refusals, the body limit and introspection with credentials from a secret.
func TestRESTRouteWiring(t *testing.T) {
	dir := t.TempDir()
	clk := testclock.New(t0)
	up := newRecordingUpstream(t)
	hmacKey := make([]byte, 32)
	if _, err := rand.Read(hmacKey); err != nil {
		t.Fatal(err)
	}
	writeSecret := func(path string, fields map[string]string) {
		writeSecretJSON(t, dir, path, fields)
	}
	writeSecret("wsgate/jwks/hmac", map[string]string{"secret": base64.StdEncoding.EncodeToString(hmacKey)})
	writeSecret("wsgate/oauth/introspection", map[string]string{"client_id": "wsgate", "client_secret": "s3cret"})

	var introCalls atomic.Int64
	intro := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		introCalls.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "wsgate" || secret != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		active := r.PostFormValue("token") == "opaque-good"
		_ = json.NewEncoder(w).Encode(map[string]any{"active": active, "sub": "svc-1", "client_id": "batch",
			"scope": "orders.read", "iss": testIssuer, "aud": testAudience, "exp": t0.Add(time.Hour).Unix()})
	}))
	t.Cleanup(intro.Close)

	oauthBlock := `{issuer: "` + testIssuer + `", audience: [` + testAudience + `], jwks_secret: wsgate/jwks/hmac, algorithms: [HS256], forward_claims: {sub: X-Auth-Subject}}`
	logs := &syncBuffer{}
	g := newTestGateway(t, dir, `
log: {level: info}
limits: {max_body_bytes: 1024}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: plain, path_prefix: /api/plain, upstream: "`+up.URL+`", oauth: `+oauthBlock+`}
  - {name: keep, path_prefix: /api/keep, upstream: "`+up.URL+`", keep_authorization: true, oauth: `+oauthBlock+`}
  - name: limited
    path_prefix: /api/limited
    upstream: "`+up.URL+`"
    oauth: `+oauthBlock+`
    rate_limit: {per: route, rate: 1, burst: 1}
  - name: missing
    path_prefix: /api/missing
    upstream: "`+up.URL+`"
    oauth: {issuer: "`+testIssuer+`", audience: [`+testAudience+`], jwks_secret: wsgate/jwks/none, algorithms: [ES256]}
  - name: intro
    path_prefix: /api/intro
    upstream: "`+up.URL+`"
    oauth:
      issuer: "`+testIssuer+`"
      audience: [`+testAudience+`]
      introspection: {url: "`+intro.URL+`", client: wsgate/oauth/introspection}
      scopes: [{path: "/**", any_of: [orders.read]}]
      forward_claims: {sub: X-Auth-Subject, client_id: X-Auth-Client}
  - {name: pub, path_prefix: /pub, upstream: "`+up.URL+`", public: true}
`, clk, logs)

	good := mintJWT(t, jose.HS256, hmacKey, "", clk, nil)
	// Before the first Refresh nothing is loaded: the route answers 503.
	if w := serveReq(g, bearerGet("/api/plain/x", good)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("before secrets loaded: %d %s", w.Code, w.Body)
	}
	if err := g.current().secrets.Refresh(context.Background()); err == nil {
		t.Fatal("refresh: want an error for the missing secret")
	}

	twoAuth := bearerGet("/api/plain/x", good)
	twoAuth.Header.Add("Authorization", "Bearer "+good)
	big := httptest.NewRequest(http.MethodPost, "/api/plain/x", strings.NewReader(strings.Repeat("a", 2048)))
	big.Header.Set("Authorization", "Bearer "+good)
	bigPublic := httptest.NewRequest(http.MethodPost, "/pub/x", strings.NewReader(strings.Repeat("a", 2048)))

	tests := []struct {
		name      string
		req       *http.Request
		status    int
		errCode   string
		header    string // response header that must be set
		upstream  bool
		upAuth    bool   // Authorization seen upstream
		upSubject string // X-Auth-Subject seen upstream
	}{
		{"valid", bearerGet("/api/plain/x", good), http.StatusOK, "", "", true, false, "alice"},
		{"keep_authorization", bearerGet("/api/keep/x", good), http.StatusOK, "", "", true, true, "alice"},
		{"no token", bearerGet("/api/plain/x", ""), http.StatusUnauthorized, "unauthorized", "WWW-Authenticate", false, false, ""},
		{"expired", bearerGet("/api/plain/x", mintJWT(t, jose.HS256, hmacKey, "", clk,
			map[string]any{"exp": t0.Add(-time.Hour).Unix()})), http.StatusUnauthorized, "invalid_token", "WWW-Authenticate", false, false, ""},
		{"two Authorization headers", twoAuth, http.StatusBadRequest, "invalid_request", "WWW-Authenticate", false, false, ""},
		{"token in the query", httptest.NewRequest(http.MethodGet, "/api/plain/x?access_token="+good, nil),
			http.StatusBadRequest, "invalid_request", "WWW-Authenticate", false, false, ""},
		{"body over max_body_bytes", big, http.StatusRequestEntityTooLarge, "request_too_large", "", false, false, ""},
		{"public body over max_body_bytes", bigPublic, http.StatusRequestEntityTooLarge, "request_too_large", "", false, false, ""},
		{"secret never loaded", bearerGet("/api/missing/x", mintJWT(t, jose.ES256, newP256(t), "", clk, nil)), http.StatusServiceUnavailable,
			"temporarily_unavailable", "Retry-After", false, false, ""},
		{"rate limit: first", bearerGet("/api/limited/x", good), http.StatusOK, "", "", true, false, "alice"},
		{"rate limit: second", bearerGet("/api/limited/x", good), http.StatusTooManyRequests, "rate_limited", "Retry-After", false, false, ""},
		{"introspected opaque token", bearerGet("/api/intro/x", "opaque-good"), http.StatusOK, "", "", true, false, "svc-1"},
		{"inactive opaque token", bearerGet("/api/intro/x", "opaque-bad"), http.StatusUnauthorized, "invalid_token", "WWW-Authenticate", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits := up.hits.Load()
			tt.req.Header.Set("X-Auth-Subject", "mallory")
			w := serveReq(g, tt.req)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if reached := up.hits.Load() > hits; reached != tt.upstream {
				t.Fatalf("upstream reached = %v, want %v", reached, tt.upstream)
			}
			if w.Header().Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID")
			}
			if tt.header != "" && w.Header().Get(tt.header) == "" {
				t.Errorf("no %s header: %v", tt.header, w.Header())
			}
			if tt.upstream {
				h := up.header()
				if got := h.Get("Authorization") != ""; got != tt.upAuth {
					t.Errorf("Authorization upstream = %v, want %v", got, tt.upAuth)
				}
				if got := h.Values("X-Auth-Subject"); len(got) != 1 || got[0] != tt.upSubject {
					t.Errorf("X-Auth-Subject upstream = %q, want %q", got, tt.upSubject)
				}
				return
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body: %v: %s", err, w.Body)
			}
			if body["error"] != tt.errCode || body["request_id"] != w.Header().Get("X-Request-ID") {
				t.Errorf("body %v, want error %q with the request ID", body, tt.errCode)
			}
		})
	}
	if n := introCalls.Load(); n != 2 {
		t.Errorf("introspection calls = %d, want 2", n)
	}
	if out := logs.String(); strings.Contains(out, good) || strings.Contains(out, "opaque-good") ||
		strings.Contains(out, "s3cret") {
		t.Errorf("a token or secret is in the log:\n%s", out)
	}
	code, r := readyz(t, g)
	if code != http.StatusServiceUnavailable || r.Ready {
		t.Errorf("/readyz with a secret never loaded: %d %+v", code, r)
	}
}

func TestRESTRouteBuildErrors(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "not-pem.pem"), "not a certificate")
	route := func(extra string) string {
		return `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /api/orders
    upstream: "http://127.0.0.1:1"
    oauth: {issuer: i, audience: [a], algorithms: [ES256], ` + extra + `}
`
	}
	tests := []struct{ name, yaml, want string }{
		{"missing CA file", route(`jwks_url: "https://idp.example/jwks", jwks_ca_cert: missing.pem`), "jwks_ca_cert"},
		{"CA file without certificates", route(`jwks_url: "https://idp.example/jwks", jwks_ca_cert: not-pem.pem`), "jwks_ca_cert"},
		{"plain-http jwks_url off loopback", route(`jwks_url: "http://idp.example/jwks"`), "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "wsgate.yaml")
			writeTestFile(t, path, tt.yaml)
			cfg := loadTestConfig(t, path)
			_, err := New(cfg, Deps{BaseDir: dir})
			if err == nil || !strings.Contains(err.Error(), "route orders") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming the route and %q", err, tt.want)
			}
		})
	}
}

// specRESTExample is the billing route of the product contract
// (../shared/spec/README.md), verbatim.
const specRESTExample = `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: billing
    path_prefix: /api/billing
    upstream: http://127.0.0.1:9002
    oauth:                        # inbound bearer-token validation
      issuer: https://idp.example.com/
      audience: [billing-api]     # token must name at least one
      jwks_url: https://idp.example.com/.well-known/jwks.json   # or:
      jwks_ca_cert: ""            # PEM file to trust the IdP's TLS (default: system roots, SSL_CERT_FILE)
      jwks_secret: ""             # KV secret, field ` + "`jwks`" + ` (JSON JWK Set) or ` + "`public_key`" + ` (PEM) or ` + "`secret`" + ` (HMAC)
      algorithms: [RS256, ES256]  # allow-list; never ` + "`none`" + `
      leeway: 60s
      require_typ: ""             # e.g. at+jwt (RFC 9068)
      introspection:              # optional, for opaque tokens (RFC 7662)
        url: https://idp.example.com/introspect
        client: wsgate/oauth/introspection   # KV secret, fields client_id, client_secret
        cache_ttl: 60s
      scopes:                     # required scopes by method and path (path under the prefix, glob)
        - {methods: [GET], path: "/**", any_of: [billing.read]}
        - {methods: [POST, PUT, DELETE], path: "/**", any_of: [billing.write]}
      forward_claims: {sub: X-Auth-Subject, scope: X-Auth-Scopes, client_id: X-Auth-Client}
    keep_authorization: false     # forward the Authorization header upstream
    rate_limit: {per: subject, rate: 100, burst: 200}   # per: subject | client_ip | client_cert | route
`

// The spec's REST example loads, and the gateway builds it without
// touching the network.
func TestSpecRESTExampleBuilds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wsgate.yaml")
	writeTestFile(t, path, specRESTExample)
	cfg := loadTestConfig(t, path)
	g, err := New(cfg, Deps{BaseDir: dir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if len(g.current().jwks) != 1 || g.current().jwks[0].url != "https://idp.example.com/.well-known/jwks.json" {
		t.Errorf("jwks sources: %+v", g.current().jwks)
	}
}
