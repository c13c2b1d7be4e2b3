package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/internal/testclock"
)

// t0 is the fixed "now" of every test.
var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const (
	testIssuer   = "https://idp.example.com/"
	testAudience = "billing-api"
)

func newClock() *testclock.Clock { return testclock.New(t0) }

// testKeys are generated once: RSA generation is slow.
type testKeys struct {
	rsa, rsa2  *rsa.PrivateKey
	rsaWeak    *rsa.PrivateKey
	p256, p384 *ecdsa.PrivateKey
	p521       *ecdsa.PrivateKey
	ed         ed25519.PrivateKey
	hmac       []byte
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func tk(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		var err error
		keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keys.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keys.rsaWeak, err = rsa.GenerateKey(rand.Reader, 1024)
		must(err)
		keys.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		keys.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		keys.p521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		must(err)
		_, keys.ed, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		keys.hmac = make([]byte, 64)
		_, err = rand.Read(keys.hmac)
		must(err)
	})
	return &keys
}

// jwkJSON renders public JWKs as a JWK Set document.
func jwkJSON(t testing.TB, ks ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pubJWK(kid, alg string, priv crypto.Signer) jose.JSONWebKey {
	return jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
}

// baseClaims are valid at t0 for testIssuer/testAudience.
func baseClaims() map[string]any {
	return map[string]any{
		"iss":       testIssuer,
		"aud":       []string{"other", testAudience},
		"sub":       "alice",
		"client_id": "billing-ui",
		"jti":       "jti-1", // RFC 9068 requires it where typ is at+jwt
		"scope":     "billing.read profile",
		"iat":       t0.Add(-time.Minute).Unix(),
		"nbf":       t0.Add(-time.Minute).Unix(),
		"exp":       t0.Add(10 * time.Minute).Unix(),
	}
}

// mint signs claims with key under alg; hdr adds protected header members.
func mint(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any, hdr map[jose.HeaderKey]any, opt ...func(*jose.SignerOptions)) string {
	t.Helper()
	o := &jose.SignerOptions{}
	o.WithType("at+jwt")
	if kid != "" {
		o.WithHeader("kid", kid)
	}
	for k, v := range hdr {
		o.WithHeader(k, v)
	}
	for _, f := range opt {
		f(o)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, o)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// jwksServer serves a replaceable JWK Set and counts fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	headers http.Header
	hits    atomic.Int64
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK, headers: http.Header{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		for k, v := range s.headers {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

// pkixDER is the public key's SubjectPublicKeyInfo, the classic HS/RS confusion secret.
func pkixDER(t testing.TB, pub any) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
