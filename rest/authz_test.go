package rest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/oauth"
	"wsgate/redisstore"
	"wsgate/redisstore/redistest"
)

// memReplay is an in-process oauth.ReplayStore.
type memReplay struct {
	mu   sync.Mutex
	seen map[[32]byte]bool
}

func (m *memReplay) Remember(_ context.Context, k [32]byte, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[[32]byte]bool{}
	}
	seen := m.seen[k]
	m.seen[k] = true
	return seen, nil
}

// refusal is what every refused request must look like: the status, the
// JSON error code, the sentinel in the decision, and nothing upstream.
func assertRefused(t *testing.T, f *fixture, w *httptest.ResponseRecorder, status int, code string, want error) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	var body ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != code {
		t.Fatalf("body %s, want error %q", w.Body, code)
	}
	if d := f.lastDecision(); !errors.Is(d.Err, want) {
		t.Fatalf("decision %+v, want %v", d, want)
	}
	if n := f.up.hits.Load(); n != 0 {
		t.Fatalf("the upstream got %d requests", n)
	}
}

func TestClaimRules(t *testing.T) {
	k, _ := rsaKeys(t)
	f := newFixture(t, func(o *Options) {
		p, err := oauth.NewClaimPolicy([]oauth.ClaimRule{{Methods: []string{"GET"}, Path: "/admin/**",
			Require: map[string][]string{"realm_access.roles": {"admin"}}}})
		if err != nil {
			t.Fatal(err)
		}
		o.Claims = p
	})
	for _, c := range []map[string]any{
		claims(),
		claims("realm_access", map[string]any{"roles": []string{"user", "administrator"}}),
		claims("realm_access", map[string]any{"roles": "user"}),
		claims("realm_access.roles", "user"),
	} {
		w := f.do(get(prefix+"/admin/users", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", c)))
		assertRefused(t, f, w, http.StatusForbidden, "access_denied", oauth.ErrClaimRequired)
		if w.Header().Get("WWW-Authenticate") != "" {
			t.Fatalf("challenge on access_denied: %q", w.Header().Get("WWW-Authenticate"))
		}
	}
	w := f.do(get(prefix+"/admin/users", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt",
		claims("realm_access", map[string]any{"roles": []string{"user", "admin"}}))))
	if w.Code != 200 {
		t.Fatalf("admin: %d %s", w.Code, w.Body)
	}
	if w := f.do(get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims()))); w.Code != 200 {
		t.Fatalf("path without a claim rule: %d", w.Code)
	}
}

func certDER(t *testing.T) ([]byte, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: bigOne(), NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return der, base64.RawURLEncoding.EncodeToString(sum[:])
}

func withCert(r *http.Request, der []byte) *http.Request {
	c, _ := x509.ParseCertificate(der)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	return r
}

func TestCertificateBoundTokens(t *testing.T) {
	k, _ := rsaKeys(t)
	der, x5t := certDER(t)
	other, _ := certDER(t)
	bound := mint(t, jose.RS256, k, "k1", "at+jwt", claims("cnf", map[string]any{"x5t#S256": x5t}))
	plain := mint(t, jose.RS256, k, "k1", "at+jwt", claims())
	for _, require := range []bool{false, true} {
		for name, r := range map[string]*http.Request{
			"bound, no certificate":    get(prefix+"/x", "Bearer "+bound),
			"bound, other certificate": withCert(get(prefix+"/x", "Bearer "+bound), other),
		} {
			f := newFixture(t, func(o *Options) { o.RequireCertificateBinding = require })
			w := f.do(r)
			assertRefused(t, f, w, http.StatusUnauthorized, "invalid_token", oauth.ErrCertificateBinding)
			if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="wsgate", error="invalid_token"`) {
				t.Fatalf("%s: challenge %q", name, w.Header().Get("WWW-Authenticate"))
			}
		}
		f := newFixture(t, func(o *Options) { o.RequireCertificateBinding = require })
		if w := f.do(withCert(get(prefix+"/x", "Bearer "+bound), der)); w.Code != 200 {
			t.Fatalf("require=%v bound on its certificate: %d %s", require, w.Code, w.Body)
		}
		f = newFixture(t, func(o *Options) { o.RequireCertificateBinding = require })
		w := f.do(withCert(get(prefix+"/x", "Bearer "+plain), der))
		if require {
			assertRefused(t, f, w, http.StatusUnauthorized, "invalid_token", oauth.ErrCertificateBinding)
		} else if w.Code != 200 {
			t.Fatalf("unbound token on a route without the requirement: %d", w.Code)
		}
	}
}

// dpopKit mints DPoP-bound tokens and their proofs.
type dpopKit struct {
	t   *testing.T
	key *ecdsa.PrivateKey
	jkt string
}

func newDPoPKit(t *testing.T) *dpopKit {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopKit{t: t, key: key, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

func (d *dpopKit) token(k any) string {
	return mint(d.t, jose.RS256, k, "k1", "at+jwt", claims("cnf", map[string]any{"jkt": d.jkt}))
}

func (d *dpopKit) proof(method, htu, tok, jti string, iat time.Time) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: d.key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		d.t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	p, err := jwt.Signed(s).Claims(map[string]any{"jti": jti, "htm": method, "htu": htu, "iat": iat.Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:])}).Serialize()
	if err != nil {
		d.t.Fatal(err)
	}
	return p
}

const dpopHTU = "http://example.com" + prefix + "/invoices"

func dpopReq(tok, proof string) *http.Request {
	r := get(prefix+"/invoices", "DPoP "+tok)
	if proof != "" {
		r.Header.Set("DPoP", proof)
	}
	return r
}

func dpopOptions(t *testing.T, store oauth.ReplayStore, required bool) func(*Options) {
	return func(o *Options) {
		d, err := oauth.NewDPoPVerifier(oauth.DPoPOptions{MaxAge: time.Minute, Replay: store, Now: func() time.Time { return t0 },
			Algorithms: []string{"ES256", "EdDSA"}})
		if err != nil {
			t.Fatal(err)
		}
		o.DPoP, o.DPoPRequired = d, required
	}
}

func TestDPoP(t *testing.T) {
	k, _ := rsaKeys(t)
	d := newDPoPKit(t)
	tok := d.token(k)
	plain := mint(t, jose.RS256, k, "k1", "at+jwt", claims())
	other := newDPoPKit(t)

	f := newFixture(t, dpopOptions(t, &memReplay{}, false))
	r := dpopReq(tok, d.proof("GET", dpopHTU, tok, "j1", t0))
	w := f.do(r)
	if w.Code != 200 {
		t.Fatalf("good DPoP request: %d %s", w.Code, w.Body)
	}
	if h := f.up.headers(); h.Get("DPoP") != "" || h.Get("Authorization") != "" {
		t.Fatalf("proof or token reached the upstream: %v", h)
	}
	// A plain bearer token still passes where DPoP is optional.
	if w := f.do(get(prefix+"/invoices", "Bearer "+plain)); w.Code != 200 {
		t.Fatalf("bearer on an optional route: %d", w.Code)
	}

	const proofErr = `DPoP error="invalid_dpop_proof"`
	const tokenErr = `DPoP error="invalid_token"`
	for _, tc := range []struct {
		name      string
		required  bool
		req       func() *http.Request
		code      string
		challenge string
		want      error
	}{
		{"no proof", false, func() *http.Request { return dpopReq(tok, "") }, "invalid_dpop_proof", proofErr, oauth.ErrDPoPProof},
		{"two proofs", false, func() *http.Request {
			r := dpopReq(tok, d.proof("GET", dpopHTU, tok, "j2", t0))
			r.Header.Add("DPoP", d.proof("GET", dpopHTU, tok, "j3", t0))
			return r
		}, "invalid_dpop_proof", proofErr, oauth.ErrDPoPProof},
		{"wrong method", false, func() *http.Request { return dpopReq(tok, d.proof("POST", dpopHTU, tok, "j4", t0)) }, "invalid_dpop_proof", proofErr, oauth.ErrDPoPProof},
		{"wrong htu", false, func() *http.Request {
			return dpopReq(tok, d.proof("GET", "http://example.com"+prefix+"/other", tok, "j5", t0))
		}, "invalid_dpop_proof", proofErr, oauth.ErrDPoPProof},
		{"https htu over http, untrusted X-Forwarded-Proto", false, func() *http.Request {
			r := dpopReq(tok, d.proof("GET", "https://example.com"+prefix+"/invoices", tok, "j6", t0))
			r.Header.Set("X-Forwarded-Proto", "https")
			return r
		}, "invalid_dpop_proof", proofErr, oauth.ErrDPoPProof},
		{"stale proof", false, func() *http.Request { return dpopReq(tok, d.proof("GET", dpopHTU, tok, "j7", t0.Add(-2*time.Minute))) }, "invalid_dpop_proof", proofErr, oauth.ErrDPoPProof},
		{"proof for another token", false, func() *http.Request { return dpopReq(tok, d.proof("GET", dpopHTU, plain, "j8", t0)) }, "invalid_dpop_proof", proofErr, oauth.ErrDPoPProof},
		{"replayed proof", false, func() *http.Request { return dpopReq(tok, d.proof("GET", dpopHTU, tok, "j1", t0)) }, "invalid_dpop_proof", proofErr, oauth.ErrDPoPReplay},
		{"proof by another key", false, func() *http.Request { return dpopReq(tok, other.proof("GET", dpopHTU, tok, "j9", t0)) }, "invalid_token", tokenErr, oauth.ErrDPoPBinding},
		{"unbound token with a proof", false, func() *http.Request { return dpopReq(plain, d.proof("GET", dpopHTU, plain, "j10", t0)) }, "invalid_token", tokenErr, oauth.ErrDPoPBinding},
		{"DPoP-bound token as bearer", false, func() *http.Request { return get(prefix+"/invoices", "Bearer "+tok) }, "invalid_token", tokenErr, oauth.ErrDPoPRequired},
		{"bearer where DPoP is required", true, func() *http.Request { return get(prefix+"/invoices", "Bearer "+plain) }, "invalid_token", tokenErr, oauth.ErrDPoPRequired},
		{"bound token as bearer where DPoP is required", true, func() *http.Request { return get(prefix+"/invoices", "Bearer "+tok) }, "invalid_token", tokenErr, oauth.ErrDPoPRequired},
		{"expired token with a proof", false, func() *http.Request {
			exp := mint(t, jose.RS256, k, "k1", "at+jwt", claims("cnf", map[string]any{"jkt": d.jkt}, "exp", t0.Add(-time.Hour).Unix()))
			return dpopReq(exp, d.proof("GET", dpopHTU, exp, "j11", t0))
		}, "invalid_token", tokenErr, oauth.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &memReplay{}
			f := newFixture(t, dpopOptions(t, store, tc.required))
			// The replayed case needs j1 taken first (on this fixture, through a good request).
			if tc.want == oauth.ErrDPoPReplay {
				if w := f.do(dpopReq(tok, d.proof("GET", dpopHTU, tok, "j1", t0))); w.Code != 200 {
					t.Fatalf("first use: %d", w.Code)
				}
				f.up.hits.Store(0)
			}
			w := f.do(tc.req())
			assertRefused(t, f, w, http.StatusUnauthorized, tc.code, tc.want)
			ch := w.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, tc.challenge) || !strings.Contains(ch, `algs="ES256 EdDSA"`) {
				t.Fatalf("challenge %q", ch)
			}
		})
	}

	// No credentials on a DPoP-required route: a DPoP challenge without an error.
	f = newFixture(t, dpopOptions(t, &memReplay{}, true))
	w = f.do(get(prefix + "/invoices"))
	assertRefused(t, f, w, http.StatusUnauthorized, "unauthorized", oauth.ErrNoToken)
	if ch := w.Header().Get("WWW-Authenticate"); ch != `DPoP algs="ES256 EdDSA"` {
		t.Fatalf("challenge %q", ch)
	}
	// The DPoP scheme on a route without DPoP is no credential at all.
	f = newFixture(t, nil)
	w = f.do(dpopReq(tok, d.proof("GET", dpopHTU, tok, "j12", t0)))
	assertRefused(t, f, w, http.StatusUnauthorized, "unauthorized", oauth.ErrNoToken)
	// ... and a DPoP-bound token sent as bearer there is refused too.
	w = f.do(get(prefix+"/invoices", "Bearer "+tok))
	assertRefused(t, f, w, http.StatusUnauthorized, "invalid_token", oauth.ErrDPoPRequired)
}

// TestDPoPTrustedProxy: behind a trusted TLS-terminating proxy the htu is https.
func TestDPoPTrustedProxy(t *testing.T) {
	k, _ := rsaKeys(t)
	d := newDPoPKit(t)
	tok := d.token(k)
	f := newFixture(t, func(o *Options) {
		dpopOptions(t, &memReplay{}, true)(o)
		o.TrustForwardedProto = func(r *http.Request) bool { return strings.HasPrefix(r.RemoteAddr, "192.0.2.") }
	})
	r := dpopReq(tok, d.proof("GET", "https://example.com"+prefix+"/invoices", tok, "t1", t0))
	r.Header.Set("X-Forwarded-Proto", "https")
	if w := f.do(r); w.Code != 200 {
		t.Fatalf("trusted proxy: %d %s", w.Code, w.Body)
	}
}

// TestDPoPReplayAcrossReplicas: two handlers (two replicas) sharing the
// real Redis; a proof used on one is refused on the other.
func TestDPoPReplayAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	k, _ := rsaKeys(t)
	d := newDPoPKit(t)
	tok := d.token(k)
	replica := func() *fixture {
		c := redisstore.NewClient(srv.Addr)
		t.Cleanup(func() { _ = c.Close() })
		store := redisstore.NewReplayCache(c, "wsgate-test:")
		store.Now = func() time.Time { return t0 }
		store.Timeout = 10 * time.Second
		return newFixture(t, dpopOptions(t, store, true))
	}
	a, b := replica(), replica()
	proof := d.proof("GET", dpopHTU, tok, "shared-jti", t0)
	if w := a.do(dpopReq(tok, proof)); w.Code != 200 {
		t.Fatalf("replica A: %d %s", w.Code, w.Body)
	}
	w := b.do(dpopReq(tok, proof))
	assertRefused(t, b, w, http.StatusUnauthorized, "invalid_dpop_proof", oauth.ErrDPoPReplay)
	// A fresh proof on B passes.
	if w := b.do(dpopReq(tok, d.proof("GET", dpopHTU, tok, "fresh-jti", t0))); w.Code != 200 {
		t.Fatalf("replica B fresh proof: %d", w.Code)
	}
	// Redis down: 503, never "not seen".
	srv.Stop()
	c := replica()
	w = c.do(dpopReq(tok, d.proof("GET", dpopHTU, tok, "down-jti", t0)))
	assertRefused(t, c, w, http.StatusServiceUnavailable, "temporarily_unavailable", oauth.ErrReplayUnavailable)
}

type staticFields map[string]string

func (s staticFields) Fields() (map[string]string, error) { return maps.Clone(s), nil }

func apiKeyEntry(key, sub string, scopes ...string) string {
	sum := sha256.Sum256([]byte(key))
	j, _ := oauth.APIKeyEntryJSON(hex.EncodeToString(sum[:]), sub, scopes)
	return j
}

func TestAPIKeys(t *testing.T) {
	k, _ := rsaKeys(t)
	keys := oauth.NewAPIKeys(staticFields{
		"batch":  apiKeyEntry("wsgate_batch-key", "svc-batch", "billing.read", "billing.write"),
		"viewer": apiKeyEntry("wsgate_viewer-key", "svc-view", "profile"),
	})
	withKeys := func(alone bool) func(*Options) {
		return func(o *Options) {
			o.APIKeys, o.APIKeyHeader = keys, "X-API-Key"
			if alone {
				o.Validator = nil
			}
		}
	}
	for _, alone := range []bool{false, true} {
		f := newFixture(t, withKeys(alone))
		r := httptest.NewRequest(http.MethodPost, prefix+"/invoices", nil)
		r.Header.Set("x-api-key", "wsgate_batch-key")
		r.Header.Set("X_API_Key", "wsgate_viewer-key") // a folded spelling must not ride along either
		r.Header.Set("X-Auth-Subject", "root")
		w := f.do(r)
		if w.Code != 200 {
			t.Fatalf("alone=%v: %d %s", alone, w.Code, w.Body)
		}
		h := f.up.headers()
		if h.Get("X-Auth-Subject") != "svc-batch" || h.Get("X-Auth-Scopes") != "billing.read billing.write" {
			t.Fatalf("identity headers %v", h)
		}
		for name := range h {
			if strings.Contains(strings.ToLower(name), "api") {
				t.Fatalf("key header %s reached the upstream", name)
			}
		}
		if !alone {
			if w := f.do(get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims()))); w.Code != 200 {
				t.Fatalf("token on a route with both: %d", w.Code)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		alone  bool
		req    func() *http.Request
		status int
		code   string
		want   error
	}{
		{"unknown key", false, func() *http.Request {
			r := get(prefix + "/invoices")
			r.Header.Set("X-API-Key", "wsgate_nope")
			return r
		}, 401, "invalid_token", oauth.ErrInvalidAPIKey},
		{"scope rules apply", false, func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, prefix+"/invoices", nil)
			r.Header.Set("X-API-Key", "wsgate_viewer-key")
			return r
		}, 403, "insufficient_scope", oauth.ErrInsufficientScope},
		{"key and token", false, func() *http.Request {
			r := get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims()))
			r.Header.Set("X-API-Key", "wsgate_batch-key")
			return r
		}, 400, "invalid_request", ErrMultipleCredentials},
		{"two keys", false, func() *http.Request {
			r := get(prefix + "/invoices")
			r.Header.Add("X-API-Key", "wsgate_batch-key")
			r.Header.Add("X-API-Key", "wsgate_viewer-key")
			return r
		}, 400, "invalid_request", ErrMultipleCredentials},
		{"no credential, keys only", true, func() *http.Request { return get(prefix + "/invoices") }, 401, "unauthorized", ErrNoAPIKey},
		{"token on a keys-only route", true, func() *http.Request {
			return get(prefix+"/invoices", "Bearer "+mint(t, jose.RS256, k, "k1", "at+jwt", claims()))
		}, 401, "unauthorized", ErrNoAPIKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, withKeys(tc.alone))
			assertRefused(t, f, f.do(tc.req()), tc.status, tc.code, tc.want)
		})
	}
}

func TestCORS(t *testing.T) {
	k, _ := rsaKeys(t)
	c, err := NewCORS(CORSOptions{AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET", "post"},
		AllowHeaders: []string{"Authorization", "Content-Type"}, AllowCredentials: true, MaxAge: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.CORS = c })
	pre := func(origin, method, headers string) *http.Request {
		r := httptest.NewRequest(http.MethodOptions, prefix+"/invoices", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", method)
		if headers != "" {
			r.Header.Set("Access-Control-Request-Headers", headers)
		}
		return r
	}
	w := f.do(pre("https://app.example", "POST", "authorization, CONTENT-TYPE"))
	h := w.Header()
	if w.Code != 204 || h.Get("Access-Control-Allow-Origin") != "https://app.example" || h.Get("Access-Control-Allow-Methods") != "GET, POST" ||
		h.Get("Access-Control-Allow-Headers") != "authorization, content-type" || h.Get("Access-Control-Allow-Credentials") != "true" ||
		h.Get("Access-Control-Max-Age") != "600" || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Fatalf("preflight: %d %v", w.Code, h)
	}
	if f.up.hits.Load() != 0 {
		t.Fatal("a preflight was forwarded")
	}
	for name, r := range map[string]*http.Request{
		"other origin":     pre("https://evil.example", "GET", ""),
		"look-alike":       pre("https://app.example.evil", "GET", ""),
		"null origin":      pre("null", "GET", ""),
		"method":           pre("https://app.example", "DELETE", ""),
		"lower-case":       pre("https://app.example", "post", ""),
		"header":           pre("https://app.example", "GET", "authorization, x-debug"),
		"http, not https:": pre("http://app.example", "GET", ""),
	} {
		w := f.do(r)
		assertRefused(t, f, w, http.StatusForbidden, "forbidden", ErrCORSRefused)
		if w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s: allow-origin on a refused preflight", name)
		}
	}

	// Actual requests: the allow headers for the allowed origin on every
	// answer, wsgate's own 401 and 403 included; none for another origin.
	withOrigin := func(r *http.Request, o string) *http.Request { r.Header.Set("Origin", o); return r }
	good := mint(t, jose.RS256, k, "k1", "at+jwt", claims())
	noScope := mint(t, jose.RS256, k, "k1", "at+jwt", claims("scope", "profile"))
	for _, tc := range []struct {
		r      *http.Request
		status int
		allow  string
	}{
		{withOrigin(get(prefix+"/invoices", "Bearer "+good), "https://app.example"), 200, "https://app.example"},
		{withOrigin(get(prefix+"/invoices"), "https://app.example"), 401, "https://app.example"},
		{withOrigin(get(prefix+"/invoices", "Bearer "+noScope), "https://app.example"), 403, "https://app.example"},
		{withOrigin(get(prefix+"/invoices", "Bearer "+good), "https://evil.example"), 200, ""},
		{withOrigin(get(prefix+"/invoices"), "https://evil.example"), 401, ""},
		{get(prefix+"/invoices", "Bearer "+good), 200, ""},
	} {
		w := f.do(tc.r)
		h := w.Header()
		if w.Code != tc.status || h.Get("Access-Control-Allow-Origin") != tc.allow || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
			t.Fatalf("%s origin %q: %d %v", tc.r.URL, tc.r.Header.Get("Origin"), w.Code, h)
		}
		if tc.allow != "" && (h.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "WWW-Authenticate")) {
			t.Fatalf("allow headers %v", h)
		}
	}

	// A rate-limited answer from the edge carries them too.
	f = newFixture(t, func(o *Options) {
		o.CORS = c
		o.RateLimiter = denyAll{}
	})
	w = f.do(withOrigin(get(prefix+"/invoices", "Bearer "+good), "https://app.example"))
	if w.Code != 429 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("429: %d %v", w.Code, w.Header())
	}
	if f.up.hits.Load() != 0 {
		t.Fatal("a rate-limited request was forwarded")
	}

	for _, o := range []CORSOptions{
		{AllowOrigins: []string{"*"}, AllowCredentials: true},
		{},
		{AllowOrigins: []string{"https://app.example/path"}},
		{AllowOrigins: []string{"app.example"}},
		{AllowOrigins: []string{"https://a"}, AllowHeaders: []string{"bad header"}},
	} {
		if _, err := NewCORS(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	// "*" without credentials answers "*".
	c2, _ := NewCORS(CORSOptions{AllowOrigins: []string{"*"}})
	f = newFixture(t, func(o *Options) { o.CORS = c2 })
	if w := f.do(pre("https://any.example", "GET", "")); w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("wildcard: %d %v", w.Code, w.Header())
	}
}

type denyAll struct{}

func (denyAll) Allow(string) (bool, time.Duration) { return false, time.Second }

func bigOne() *big.Int { return big.NewInt(1) }
