package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testIdP is a TLS identity provider: metadata at the paths it is told,
// and two key sets.
type testIdP struct {
	*httptest.Server
	mu       sync.Mutex
	docs     map[string]string // path -> body (404 when absent)
	docCode  int
	jwks     map[string][]byte
	docHits  atomic.Int64
	jwksHits atomic.Int64
}

func newTestIdP(t *testing.T) *testIdP {
	idp := &testIdP{docs: map[string]string{}, jwks: map[string][]byte{}, docCode: 200}
	idp.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idp.mu.Lock()
		defer idp.mu.Unlock()
		if b, ok := idp.jwks[r.URL.Path]; ok {
			idp.jwksHits.Add(1)
			_, _ = w.Write(b)
			return
		}
		if strings.Contains(r.URL.Path, "/.well-known/") {
			idp.docHits.Add(1)
			doc, ok := idp.docs[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(idp.docCode)
			_, _ = w.Write([]byte(doc))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(idp.Close)
	return idp
}

func (idp *testIdP) setDoc(path, issuer, jwksPath string) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.docs[path] = `{"issuer":"` + issuer + `","jwks_uri":"` + idp.URL + jwksPath + `","token_endpoint":"` + idp.URL + `/token"}`
}

func TestDiscovery(t *testing.T) {
	k := tk(t)
	for _, tc := range []struct {
		name, issuerPath, docPath string
	}{
		{"openid-configuration", "", "/.well-known/openid-configuration"},
		{"openid-configuration under a path", "/realms/billing", "/realms/billing/.well-known/openid-configuration"},
		{"RFC 8414 path insertion", "/realms/billing", "/.well-known/oauth-authorization-server/realms/billing"},
		{"RFC 8414 no path", "", "/.well-known/oauth-authorization-server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idp := newTestIdP(t)
			issuer := idp.URL + tc.issuerPath
			idp.jwks["/keys"] = jwkJSON(t, pubJWK("k1", "RS256", k.rsa))
			idp.setDoc(tc.docPath, issuer, "/keys")
			clock := newClock()
			src, err := NewDiscoverySource(DiscoveryOptions{Issuer: issuer, Client: idp.Client(), Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			v, err := NewValidator(Options{Issuer: issuer, Audience: []string{testAudience}, Algorithms: []string{"RS256"},
				Keys: src, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			c := baseClaims()
			c["iss"] = issuer
			if _, err := v.Validate(context.Background(), mint(t, jose.RS256, k.rsa, "k1", c, nil)); err != nil {
				t.Fatal(err)
			}
			if src.JWKSURI() != idp.URL+"/keys" {
				t.Fatalf("jwks_uri %q", src.JWKSURI())
			}
		})
	}
}

func TestDiscoveryRefusals(t *testing.T) {
	k := tk(t)
	idp := newTestIdP(t)
	idp.jwks["/keys"] = jwkJSON(t, pubJWK("k1", "RS256", k.rsa))
	issuer := idp.URL + "/realms/billing"
	for name, setup := range map[string]func(){
		"issuer with a trailing slash": func() { idp.setDoc("/realms/billing/.well-known/openid-configuration", issuer+"/", "/keys") },
		"issuer of another tenant": func() {
			idp.setDoc("/realms/billing/.well-known/openid-configuration", idp.URL+"/realms/other", "/keys")
		},
		// A document naming another issuer is an error, not a reason to try the fallback.
		"mismatch before a good fallback": func() {
			idp.setDoc("/realms/billing/.well-known/openid-configuration", idp.URL, "/keys")
			idp.setDoc("/.well-known/oauth-authorization-server/realms/billing", issuer, "/keys")
		},
		"no jwks_uri": func() {
			idp.docs["/realms/billing/.well-known/openid-configuration"] = `{"issuer":"` + issuer + `"}`
		},
		"not JSON":    func() { idp.docs["/realms/billing/.well-known/openid-configuration"] = `<html>` },
		"no document": func() {},
		"jwks_uri not https": func() {
			idp.docs["/realms/billing/.well-known/openid-configuration"] = `{"issuer":"` + issuer + `","jwks_uri":"http://idp.example.com/keys"}`
		},
	} {
		t.Run(name, func(t *testing.T) {
			idp.mu.Lock()
			clear(idp.docs)
			idp.mu.Unlock()
			setup()
			src, err := NewDiscoverySource(DiscoveryOptions{Issuer: issuer, Client: idp.Client(), Now: newClock().Now})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.Keys(context.Background()); !errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("got %v, want ErrKeysUnavailable", err)
			}
			if ok, _, err := src.Status(); ok || err == nil {
				t.Fatalf("status %v %v", ok, err)
			}
		})
	}

	// The IdP's TLS certificate must chain to the configured CA: the system roots do not hold it.
	idp.setDoc("/realms/billing/.well-known/openid-configuration", issuer, "/keys")
	src, err := NewDiscoverySource(DiscoveryOptions{Issuer: issuer, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Keys(context.Background()); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("untrusted TLS: %v", err)
	}

	for _, bad := range []string{"", "idp.example.com", "http://idp.example.com", "https://idp.example.com/?a=b", "https://u:p@idp.example.com"} {
		if _, err := NewDiscoverySource(DiscoveryOptions{Issuer: bad}); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestDiscoveryRefreshKeepsLastGood(t *testing.T) {
	k := tk(t)
	idp := newTestIdP(t)
	issuer := idp.URL
	idp.jwks["/keys1"] = jwkJSON(t, pubJWK("k1", "RS256", k.rsa))
	idp.jwks["/keys2"] = jwkJSON(t, pubJWK("k2", "RS256", k.rsa2))
	idp.setDoc("/.well-known/openid-configuration", issuer, "/keys1")
	clock := newClock()
	src, err := NewDiscoverySource(DiscoveryOptions{Issuer: issuer, Client: idp.Client(), Now: clock.Now,
		MinRefresh: time.Minute, MaxRefresh: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	set, err := src.Keys(context.Background())
	if err != nil || set.Len() != 1 {
		t.Fatal(err)
	}
	// The document breaks: the last good one (and its keys) stay.
	idp.mu.Lock()
	idp.docCode = 500
	idp.mu.Unlock()
	clock.Add(11 * time.Minute)
	if err := src.Refresh(context.Background()); err == nil {
		t.Fatal("refresh of a broken document succeeded")
	}
	if src.JWKSURI() != idp.URL+"/keys1" {
		t.Fatalf("lost the last good document: %q", src.JWKSURI())
	}
	if _, err := src.Keys(context.Background()); err != nil {
		t.Fatalf("keys after a failed refresh: %v", err)
	}
	// The IdP moves its keys: a refresh picks the new jwks_uri up.
	idp.mu.Lock()
	idp.docCode = 200
	idp.mu.Unlock()
	idp.setDoc("/.well-known/openid-configuration", issuer, "/keys2")
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(Options{Issuer: issuer, Audience: []string{testAudience}, Algorithms: []string{"RS256"}, Keys: src, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := baseClaims()
	c["iss"], c["iat"], c["nbf"], c["exp"] = issuer, clock.Now().Unix(), clock.Now().Unix(), clock.Now().Add(time.Hour).Unix()
	if _, err := v.Validate(context.Background(), mint(t, jose.RS256, k.rsa2, "k2", c, nil)); err != nil {
		t.Fatalf("token under the new keys: %v", err)
	}
	if _, err := v.Validate(context.Background(), mint(t, jose.RS256, k.rsa, "k1", c, nil)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token under the dropped keys: %v", err)
	}
}

// TestDiscoveryRun: the refresh loop loads the document and the key set at
// once and stops with its context.
func TestDiscoveryRun(t *testing.T) {
	k := tk(t)
	idp := newTestIdP(t)
	idp.jwks["/keys"] = jwkJSON(t, pubJWK("k1", "RS256", k.rsa))
	idp.setDoc("/.well-known/openid-configuration", idp.URL, "/keys")
	src, err := NewDiscoverySource(DiscoveryOptions{Issuer: idp.URL, Client: idp.Client(), Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ok, _, err := src.Status(); ok && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not load the key set")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
	if idp.docHits.Load() != 1 || idp.jwksHits.Load() != 1 {
		t.Fatalf("fetches: %d documents, %d key sets", idp.docHits.Load(), idp.jwksHits.Load())
	}
}
