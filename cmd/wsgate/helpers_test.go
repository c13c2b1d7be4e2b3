package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	vault "github.com/hashicorp/vault/api"

	"wsgate/internal/gatewaytest"
	"wsgate/internal/testclock"
	"wsgate/internal/vaulttest"
)

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
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.mu.Unlock()
		_, _ = w.Write([]byte("upstream:" + r.URL.Path))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) header() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
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

func startVault(t *testing.T, engines ...string) (*vaulttest.Server, *vault.Client) {
	return gatewaytest.Vault(t, engines...)
}

func vaultPKIRole(t *testing.T, root *vault.Client) *vault.Secret {
	return gatewaytest.VaultPKIRole(t, root)
}

func TestMain(m *testing.M) {
	// gin decides its mode at init, before the test flags exist; keep its
	// debug banner out of the test output.
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}
