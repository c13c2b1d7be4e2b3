package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"wsgate/internal/testclock"
)

// benchGateway serves a public and an HS256 oauth route in front of a
// loopback upstream, for the front door's per-request cost.
func benchGateway(b *testing.B) (http.Handler, string) {
	b.Helper()
	t := &testing.T{}
	dir := b.TempDir()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	b.Cleanup(up.Close)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	writeSecretJSON(t, dir, "wsgate/jwks/hmac", map[string]string{"secret": base64.StdEncoding.EncodeToString(key)})
	clk := testclock.New(t0)
	g := newTestGateway(t, dir, `
log: {level: error}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: pub, path_prefix: /pub, upstream: "`+up.URL+`", public: true}
  - name: api
    path_prefix: /api
    upstream: "`+up.URL+`"
    oauth: {issuer: "`+testIssuer+`", audience: [`+testAudience+`], jwks_secret: wsgate/jwks/hmac, algorithms: [HS256],
            forward_claims: {sub: X-Auth-Subject}}
`, clk, &syncBuffer{})
	if err := g.Refresh(b.Context()); err != nil {
		b.Fatal(err)
	}
	return g.Handler(), mintJWT(t, jose.HS256, key, "", clk, nil)
}

func BenchmarkFrontDoor(b *testing.B) {
	h, token := benchGateway(b)
	for _, bc := range []struct{ name, path, auth string }{
		{"public", "/pub/x", ""},
		{"rest-cached-jwt", "/api/x", "Bearer " + token},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, bc.path, nil)
				r.Header.Set("X-Forwarded-For", "198.51.100.7")
				if bc.auth != "" {
					r.Header.Set("Authorization", bc.auth)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
