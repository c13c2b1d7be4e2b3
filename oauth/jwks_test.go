package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestKeyRotationPickedUpOnRefetch(t *testing.T) {
	k := tk(t)
	c := newClock()
	v, srv := newTestValidator(t, c, nil)
	ctx := context.Background()
	if _, err := v.Validate(ctx, mint(t, jose.RS256, k.rsa, "rsa1", baseClaims(), nil)); err != nil {
		t.Fatal(err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
	rotated := mint(t, jose.RS256, k.rsa2, "rsa2", baseClaims(), nil)

	// Right after a fetch, an unknown kid does not refetch.
	if _, err := v.Validate(ctx, rotated); !errors.Is(err, ErrUnknownKey) || srv.hits.Load() != 1 {
		t.Fatalf("got %v after %d fetches, want ErrUnknownKey after 1", err, srv.hits.Load())
	}

	// 30 s later an unknown kid refetches once; still unknown.
	c.Add(30 * time.Second)
	if _, err := v.Validate(ctx, rotated); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("before rotation: got %v, want ErrUnknownKey", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2 (one refetch on the unknown kid)", got)
	}

	// The IdP rotates; within 30 s of the last fetch no refetch happens.
	srv.set(200, jwkJSON(t, pubJWK("rsa1", "RS256", k.rsa), pubJWK("rsa2", "RS256", k.rsa2)))
	c.Add(29 * time.Second)
	for range 5 {
		if _, err := v.Validate(ctx, rotated); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("inside the 30 s window: got %v, want ErrUnknownKey", err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2: unknown kids must not refetch more than once per 30 s", got)
	}

	// After 30 s the unknown kid triggers a refetch and the new key verifies.
	c.Add(time.Second)
	tok, err := v.Validate(ctx, rotated)
	if err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if tok.KeyID != "rsa2" || srv.hits.Load() != 3 {
		t.Fatalf("kid %q, fetches %d; want rsa2, 3", tok.KeyID, srv.hits.Load())
	}
}

func TestJWKSKeepsLastGoodSet(t *testing.T) {
	k := tk(t)
	c := newClock()
	srv := newJWKSServer(t, jwkJSON(t, pubJWK("ec1", "ES256", k.p256)))
	src, err := NewJWKSSource(JWKSOptions{URL: srv.URL, Now: c.Now, MaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	good, err := src.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failures := []struct {
		name   string
		status int
		body   []byte
	}{
		{"server error", http.StatusInternalServerError, []byte("oops")},
		{"not JSON", http.StatusOK, []byte("<html>")},
		{"no usable key", http.StatusOK, jwkJSON(t, jose.JSONWebKey{Key: k.p256.Public(), KeyID: "x", Use: "enc"})},
		{"over the size cap", http.StatusOK, []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 5000) + `"}`)},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			srv.set(f.status, f.body)
			if err := src.Refresh(ctx); err == nil {
				t.Fatal("Refresh succeeded on a bad response")
			}
			got, err := src.Keys(ctx)
			if err != nil || got != good {
				t.Fatalf("Keys after a failed refresh: %v; the last good set must stay", err)
			}
			loaded, _, lastErr := src.Status()
			if !loaded || lastErr == nil {
				t.Fatalf("Status = %v, %v; want loaded with an error", loaded, lastErr)
			}
		})
	}
}

func TestJWKSNeverLoaded(t *testing.T) {
	c := newClock()
	srv := newJWKSServer(t, []byte("down"))
	srv.set(http.StatusBadGateway, []byte("down"))
	src, err := NewJWKSSource(JWKSOptions{URL: srv.URL, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := src.Keys(ctx); !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("got %v, want ErrKeysUnavailable", err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1: a failed first fetch is retried after MinRefresh, not per request", got)
	}
	c.Add(30 * time.Second)
	srv.set(200, jwkJSON(t, pubJWK("ec1", "ES256", tk(t).p256)))
	if _, err := src.Keys(ctx); err != nil {
		t.Fatalf("after the retry delay: %v", err)
	}
}

func TestJWKSStaleRefreshInBackground(t *testing.T) {
	k := tk(t)
	c := newClock()
	srv := newJWKSServer(t, jwkJSON(t, pubJWK("ec1", "ES256", k.p256)))
	src, err := NewJWKSSource(JWKSOptions{URL: srv.URL, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := src.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.set(200, jwkJSON(t, pubJWK("ed1", "EdDSA", k.ed)))
	c.Add(10 * time.Minute)
	if got, _ := src.Keys(ctx); got != first {
		t.Fatal("a stale read must return the current set while refreshing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := src.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != first {
			if _, err := got.lookup("ed1", "EdDSA"); err != nil {
				t.Fatalf("refreshed set lacks ed1: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background refresh never landed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWKSLifetime(t *testing.T) {
	src, err := NewJWKSSource(JWKSOptions{URL: "https://idp.example.com/jwks"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"no headers: 10 min", http.Header{}, 10 * time.Minute},
		{"max-age inside bounds", http.Header{"Cache-Control": {"public, max-age=120"}}, 2 * time.Minute},
		{"max-age above 10 min is capped", http.Header{"Cache-Control": {"max-age=86400"}}, 10 * time.Minute},
		{"max-age below 30 s is raised", http.Header{"Cache-Control": {"max-age=1"}}, 30 * time.Second},
		{"no-store", http.Header{"Cache-Control": {"no-store"}}, 30 * time.Second},
		{"Expires relative to Date", http.Header{"Date": {"Thu, 26 Nov 2026 12:00:00 GMT"}, "Expires": {"Thu, 26 Nov 2026 12:05:00 GMT"}}, 5 * time.Minute},
		{"garbage max-age ignored", http.Header{"Cache-Control": {"max-age=soon"}}, 10 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := src.lifetime(tc.h, t0); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestJWKSOptions(t *testing.T) {
	for _, u := range []string{"http://idp.example.com/jwks", "ftp://idp.example.com/jwks", "/jwks", "::"} {
		if _, err := NewJWKSSource(JWKSOptions{URL: u}); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", u, err)
		}
	}
	for _, u := range []string{"https://idp.example.com/jwks", "http://127.0.0.1:8200/v1/identity/oidc/.well-known/keys", "http://localhost/jwks"} {
		if _, err := NewJWKSSource(JWKSOptions{URL: u}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestJWKSRedirectNotFollowed(t *testing.T) {
	k := tk(t)
	target := newJWKSServer(t, jwkJSON(t, pubJWK("ec1", "ES256", k.p256)))
	redir := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(redir.Close)
	src, err := NewJWKSSource(JWKSOptions{URL: redir.URL, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Keys(context.Background()); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("got %v, want ErrKeysUnavailable", err)
	}
	if target.hits.Load() != 0 {
		t.Fatal("redirect was followed")
	}
}

func TestJWKSSingleFetchUnderConcurrency(t *testing.T) {
	k := tk(t)
	c := newClock()
	srv := newJWKSServer(t, jwkJSON(t, pubJWK("ec1", "ES256", k.p256)))
	src, err := NewJWKSSource(JWKSOptions{URL: srv.URL, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for range 16 {
		go func() {
			_, err := src.RefreshUnknownKey(context.Background())
			done <- err
		}()
	}
	for range 16 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

func TestJWKSRunStopsWithContext(t *testing.T) {
	k := tk(t)
	srv := newJWKSServer(t, jwkJSON(t, pubJWK("ec1", "ES256", k.p256)))
	src, err := NewJWKSSource(JWKSOptions{URL: srv.URL, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		src.Run(ctx)
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if loaded, _, _ := src.Status(); loaded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not fetch at start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop on cancel")
	}
	if srv.hits.Load() != 1 {
		t.Fatalf("fetches = %d, want 1 (next one is 10 min away)", srv.hits.Load())
	}
}
