package gateway

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/internal/testclock"
	"wsgate/oauth"
)

// A route with discovery (TLS IdP trusted through jwks_ca_cert), claim
// rules, DPoP, API keys and CORS, built from YAML the way serve builds it.
func TestRESTAuthzWiring(t *testing.T) {
	dir := t.TempDir()
	clk := testclock.New(t0)
	up := newRecordingUpstream(t)
	key := newP256(t)

	var idp *httptest.Server
	idp = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": idp.URL, "jwks_uri": idp.URL + "/keys"})
		case "/keys":
			_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(idp.Close)
	writeTestFile(t, filepath.Join(dir, "idp-ca.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate().Raw})))

	apiKey, sum, err := oauth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	entry, _ := oauth.APIKeyEntryJSON(sum, "svc-batch", []string{"orders.read"})
	writeSecretJSON(t, dir, "wsgate/apikeys/orders", map[string]string{"batch": entry})

	g := newTestGateway(t, dir, `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /api/orders
    upstream: "`+up.URL+`"
    oauth:
      issuer: "`+idp.URL+`"
      audience: [`+testAudience+`]
      discovery: true
      jwks_ca_cert: idp-ca.pem
      algorithms: [ES256]
      scopes: [{path: "/**", any_of: [orders.read]}]
      claims: [{methods: [DELETE], path: "/admin/**", require: {"realm_access.roles": [admin]}}]
      dpop: {max_age: 60s}
      forward_claims: {sub: X-Auth-Subject}
    api_key: {secret: wsgate/apikeys/orders}
    cors: {allow_origins: ["https://app.example"], allow_methods: [GET, DELETE], allow_headers: [Authorization, DPoP], max_age: 10m}
    rate_limit: {per: client_ip, rate: 0.001, burst: 8}
`, clk, &syncBuffer{})
	if err := g.current().secrets.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	mint := func(extra map[string]any) string {
		c := map[string]any{"iss": idp.URL}
		for k, v := range extra {
			c[k] = v
		}
		return mintJWT(t, jose.ES256, key, "k1", clk, c)
	}
	refused := func(name string, w *httptest.ResponseRecorder, status int, code string) {
		t.Helper()
		var body struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != status || body.Error != code {
			t.Fatalf("%s: %d %s, want %d %s", name, w.Code, w.Body, status, code)
		}
		if up.hits.Load() != 0 {
			t.Fatalf("%s: the upstream got a request", name)
		}
	}

	// 1. A preflight is answered before authentication and never forwarded.
	pre := httptest.NewRequest(http.MethodOptions, "/api/orders/1", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "DELETE")
	pre.Header.Set("Access-Control-Request-Headers", "authorization, dpop")
	w := serveReq(g, pre)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" || up.hits.Load() != 0 {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}

	// 2. Claim rules: DELETE /admin needs the admin role (403 access_denied), with CORS headers.
	del := httptest.NewRequest(http.MethodDelete, "/api/orders/admin/7", nil)
	del.Header.Set("Authorization", "Bearer "+mint(nil))
	del.Header.Set("Origin", "https://app.example")
	w = serveReq(g, del)
	refused("claim rule", w, http.StatusForbidden, "access_denied")
	if w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("403 without CORS headers: %v", w.Header())
	}
	del.Header.Set("Authorization", "Bearer "+mint(map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}}}))
	if w := serveReq(g, del); w.Code != 200 {
		t.Fatalf("admin via discovery keys: %d %s", w.Code, w.Body)
	}
	up.hits.Store(0)

	// 3. DPoP: a proof is good once; its replay is refused.
	jwk := jose.JSONWebKey{Key: key.Public()}
	tp, _ := jwk.Thumbprint(crypto.SHA256)
	bound := mint(map[string]any{"cnf": map[string]any{"jkt": base64.RawURLEncoding.EncodeToString(tp)}})
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	ath := sha256.Sum256([]byte(bound))
	proof, _ := jwt.Signed(s).Claims(map[string]any{"jti": "p1", "htm": "GET", "htu": "http://example.com/api/orders/1",
		"iat": clk.Now().Unix(), "ath": base64.RawURLEncoding.EncodeToString(ath[:])}).Serialize()
	dpopReq := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api/orders/1", nil)
		r.Header.Set("Authorization", "DPoP "+bound)
		r.Header.Set("DPoP", proof)
		return r
	}
	if w := serveReq(g, dpopReq()); w.Code != 200 || up.header().Get("DPoP") != "" {
		t.Fatalf("DPoP: %d %s", w.Code, w.Body)
	}
	up.hits.Store(0)
	w = serveReq(g, dpopReq())
	refused("replayed proof", w, http.StatusUnauthorized, "invalid_dpop_proof")
	if ch := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(ch, `DPoP error="invalid_dpop_proof"`) {
		t.Fatalf("challenge %q", ch)
	}
	// The same bound token as a bearer token: refused.
	refused("DPoP-bound as bearer", serveReq(g, bearerGet("/api/orders/1", bound)), http.StatusUnauthorized, "invalid_token")

	// 4. API key: accepted, its subject forwarded, the key itself never.
	kr := httptest.NewRequest(http.MethodGet, "/api/orders/1", nil)
	kr.Header.Set("X-API-Key", apiKey)
	if w := serveReq(g, kr); w.Code != 200 || up.header().Get("X-Auth-Subject") != "svc-batch" || up.header().Get("X-Api-Key") != "" {
		t.Fatalf("API key: %d %s %v", w.Code, w.Body, up.header())
	}
	up.hits.Store(0)
	kr.Header.Set("X-API-Key", apiKey+"x")
	refused("wrong API key", serveReq(g, kr), http.StatusUnauthorized, "invalid_token")

	// 5. The front door's 429 carries the CORS headers too (burst 8 is spent).
	lim := httptest.NewRequest(http.MethodGet, "/api/orders/1", nil)
	lim.Header.Set("Origin", "https://app.example")
	w = serveReq(g, lim)
	refused("rate limit", w, http.StatusTooManyRequests, "rate_limited")
	if w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("429 without CORS headers: %v", w.Header())
	}
}
