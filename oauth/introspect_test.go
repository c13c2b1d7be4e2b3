package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsgate/internal/testclock"
)

// introspectionServer answers RFC 7662 requests from a per-token table and
// checks the client's credentials.
type introspectionServer struct {
	*httptest.Server
	mu     sync.Mutex
	answer map[string]any // token -> response object
	status int
	hits   atomic.Int64
}

func newIntrospectionServer(t *testing.T) *introspectionServer {
	s := &introspectionServer{answer: map[string]any{}, status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		// RFC 6749 section 2.3.1: id and secret are form-urlencoded inside Basic.
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if !ok || id != "wsgate" || secret != "s3cret%" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.status != 200 {
			w.WriteHeader(s.status)
			return
		}
		a, ok := s.answer[r.PostForm.Get("token")]
		if !ok {
			a = map[string]any{"active": false}
		}
		_ = json.NewEncoder(w).Encode(a)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *introspectionServer) set(tok string, a map[string]any) {
	s.mu.Lock()
	s.answer[tok] = a
	s.mu.Unlock()
}

func activeAnswer(exp time.Time) map[string]any {
	return map[string]any{"active": true, "iss": testIssuer, "aud": testAudience, "sub": "bob",
		"client_id": "batch", "scope": "billing.write", "exp": exp.Unix()}
}

func newIntrospectingValidator(t *testing.T, c *testclock.Clock, srv *introspectionServer) *Validator {
	t.Helper()
	// Credentials go through the same secret adapter the secrets package feeds.
	creds := CredentialsFromSecret(&fakeSecret{fields: map[string]string{"client_id": "wsgate", "client_secret": "s3cret%"}})
	v, err := NewValidator(Options{
		Issuer: testIssuer, Audience: []string{testAudience}, Leeway: time.Minute, Now: c.Now,
		Introspection: &IntrospectionOptions{URL: srv.URL, Credentials: creds, CacheTTL: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIntrospection(t *testing.T) {
	c := newClock()
	srv := newIntrospectionServer(t)
	v := newIntrospectingValidator(t, c, srv)
	ctx := context.Background()

	cases := []struct {
		name   string
		token  string
		answer map[string]any
		want   error
	}{
		{"active", "opaque-ok", activeAnswer(t0.Add(time.Hour)), nil},
		{"vault-style token with one dot", "hvs.CAESIabc", activeAnswer(t0.Add(time.Hour)), nil},
		{"inactive", "opaque-revoked", map[string]any{"active": false}, ErrInactive},
		{"expired", "opaque-expired", activeAnswer(t0.Add(-2 * time.Minute)), ErrExpired},
		{"wrong issuer", "opaque-iss", with(activeAnswer(t0.Add(time.Hour)), "iss", "https://evil/"), ErrWrongIssuer},
		{"no issuer", "opaque-noiss", with(activeAnswer(t0.Add(time.Hour)), "iss", nil), ErrWrongIssuer},
		{"wrong audience", "opaque-aud", with(activeAnswer(t0.Add(time.Hour)), "aud", []string{"x"}), ErrWrongAudience},
		{"nbf ahead", "opaque-nbf", with(activeAnswer(t0.Add(time.Hour)), "nbf", t0.Add(time.Hour).Unix()), ErrNotYetValid},
		{"active is a string", "opaque-str", with(activeAnswer(t0.Add(time.Hour)), "active", "true"), ErrIntrospectionUnavailable},
		{"characters outside b64token", "opaque token", nil, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.answer != nil {
				srv.set(tc.token, tc.answer)
			}
			tok, err := v.Validate(ctx, tc.token)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil && (!tok.Introspected || tok.Subject != "bob" || !tok.HasScope("billing.write") || tok.ClientID != "batch") {
				t.Fatalf("token fields wrong: %+v", tok)
			}
		})
	}
}

func TestIntrospectionCache(t *testing.T) {
	c := newClock()
	srv := newIntrospectionServer(t)
	v := newIntrospectingValidator(t, c, srv)
	ctx := context.Background()

	// exp 20 s ahead, cache_ttl 60 s: cached for 20 s only.
	srv.set("short", activeAnswer(t0.Add(20*time.Second)))
	for range 3 {
		if _, err := v.Validate(ctx, "short"); err != nil {
			t.Fatal(err)
		}
	}
	if srv.hits.Load() != 1 {
		t.Fatalf("hits = %d, want 1 (cached)", srv.hits.Load())
	}
	if _, ok := v.intro.cache.get(FingerprintOf("short"), c.Now()); !ok {
		t.Fatal("cache is not keyed by the token's SHA-256")
	}
	srv.set("short", map[string]any{"active": false}) // revoked at the IdP
	c.Add(20 * time.Second)
	if _, err := v.Validate(ctx, "short"); !errors.Is(err, ErrInactive) {
		t.Fatalf("at exp: got %v, want a fresh answer (ErrInactive)", err)
	}

	// exp far ahead: cache_ttl bounds the entry.
	srv.set("long", activeAnswer(t0.Add(time.Hour)))
	if _, err := v.Validate(ctx, "long"); err != nil {
		t.Fatal(err)
	}
	before := srv.hits.Load()
	c.Add(59 * time.Second)
	if _, err := v.Validate(ctx, "long"); err != nil || srv.hits.Load() != before {
		t.Fatalf("inside cache_ttl: err %v, hits %d -> %d", err, before, srv.hits.Load())
	}
	c.Add(time.Second)
	if _, err := v.Validate(ctx, "long"); err != nil || srv.hits.Load() != before+1 {
		t.Fatalf("at cache_ttl: err %v, hits %d -> %d; want a new call", err, before, srv.hits.Load())
	}
}

func TestIntrospectionUnavailable(t *testing.T) {
	c := newClock()
	srv := newIntrospectionServer(t)
	v := newIntrospectingValidator(t, c, srv)
	srv.mu.Lock()
	srv.status = http.StatusInternalServerError
	srv.mu.Unlock()
	for range 2 {
		if _, err := v.Validate(context.Background(), "opaque"); !errors.Is(err, ErrIntrospectionUnavailable) {
			t.Fatalf("got %v, want ErrIntrospectionUnavailable", err)
		}
	}
	if srv.hits.Load() != 2 {
		t.Fatal("failures must not be cached")
	}
}

func TestIntrospectionBadCredentials(t *testing.T) {
	c := newClock()
	srv := newIntrospectionServer(t)
	v, err := NewValidator(Options{Issuer: testIssuer, Audience: []string{testAudience}, Now: c.Now,
		Introspection: &IntrospectionOptions{URL: srv.URL, Credentials: CredentialsFromSecret(&fakeSecret{fields: map[string]string{"client_id": "wsgate"}})}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), "opaque"); !errors.Is(err, ErrIntrospectionUnavailable) {
		t.Fatalf("got %v, want ErrIntrospectionUnavailable", err)
	}
	if srv.hits.Load() != 0 {
		t.Fatal("called the endpoint without credentials")
	}
}

func TestOpaqueWithoutIntrospection(t *testing.T) {
	v, _ := newTestValidator(t, newClock(), nil)
	if _, err := v.Validate(context.Background(), "opaque-token"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
	if _, err := v.Validate(context.Background(), strings.Repeat("a", MaxTokenBytes+1)); !errors.Is(err, ErrTokenTooLarge) {
		t.Fatalf("got %v, want ErrTokenTooLarge", err)
	}
}
