package secrets

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// tokenReviewAPI is the part of a Kubernetes API server that Vault's
// kubernetes auth calls: POST /apis/authentication.k8s.io/v1/tokenreviews.
// It verifies the token with the issuer's key (as the API server does) and
// answers with the service account it names; a token it did not issue is
// not authenticated.
func (is *jwtIssuer) tokenReviewAPI(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
			http.NotFound(w, r)
			return
		}
		var review struct {
			Spec struct {
				Token     string   `json:"token"`
				Audiences []string `json:"audiences"`
			} `json:"spec"`
		}
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		status := map[string]any{"authenticated": false}
		var claims struct {
			jwt.Claims
			K8s struct {
				Namespace      string `json:"namespace"`
				ServiceAccount struct {
					Name string `json:"name"`
					UID  string `json:"uid"`
				} `json:"serviceaccount"`
			} `json:"kubernetes.io"`
		}
		if tok, err := jwt.ParseSigned(review.Spec.Token, []jose.SignatureAlgorithm{jose.ES256}); err == nil &&
			tok.Claims(is.key.Public(), &claims) == nil &&
			claims.ValidateWithLeeway(jwt.Expected{Issuer: saIssuer, Time: time.Now()}, 0) == nil {
			var auds []string
			for _, a := range review.Spec.Audiences {
				if claims.Audience.Contains(a) {
					auds = append(auds, a)
				}
			}
			status = map[string]any{"authenticated": true, "audiences": auds, "user": map[string]any{
				"username": "system:serviceaccount:" + claims.K8s.Namespace + ":" + claims.K8s.ServiceAccount.Name,
				"uid":      claims.K8s.ServiceAccount.UID,
			}}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// mintProjected signs a projected service-account token (the claims a
// kubelet-mounted token has, aud always a list) for namespace/name with
// audience aud.
func (is *jwtIssuer) mintProjected(t *testing.T, aud, namespace, name string, ttl time.Duration) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: is.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", is.kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(s).Claims(jwt.Claims{
		Issuer: saIssuer, Subject: "system:serviceaccount:" + namespace + ":" + name,
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(ttl)),
	}).Claims(map[string]any{"aud": []string{aud}, "kubernetes.io": map[string]any{
		"namespace":      namespace,
		"serviceaccount": map[string]any{"name": name, "uid": "uid-" + namespace + "-" + name},
		"pod":            map[string]any{"name": name + "-0", "uid": "pod-uid"},
	}}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Vault's kubernetes auth method against a TokenReview API the test
// serves: wsgate's service account logs in with its projected token; other
// service accounts, audiences, issuers' keys and expired tokens are refused.
func TestVaultKubernetesAuthIntegration(t *testing.T) {
	srv := vaultHarness.Require(t)
	ctx := vaultCtx(t)
	root := rootClient(t, srv)
	is := newJWTIssuer(t)
	api := is.tokenReviewAPI(t)

	sfx := randSuffix(t)
	mount := "kubernetes-" + sfx
	if err := srv.EnableAuth(ctx, mount, "kubernetes"); err != nil {
		t.Fatal(err)
	}
	mustWrite2(t, root, "auth/"+mount+"/config", map[string]any{
		"kubernetes_host":        api.URL,
		"kubernetes_ca_cert":     string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})),
		"disable_local_ca_jwt":   true,
		"issuer":                 saIssuer,
		"disable_iss_validation": false,
	})
	base := "wsgate-test/" + sfx
	policy := `path "secret/data/` + base + `/*" { capabilities = ["read"] }`
	if err := root.Sys().PutPolicyWithContext(ctx, "wsgate-"+sfx, policy); err != nil {
		t.Fatal(err)
	}
	mustWrite2(t, root, "auth/"+mount+"/role/wsgate", map[string]any{
		"bound_service_account_names": "wsgate", "bound_service_account_namespaces": "wsgate",
		"audience": "vault", "token_policies": "wsgate-" + sfx, "token_ttl": "1h",
	})
	putKV(t, srv, base+"/db", map[string]any{"password": "pw1"})

	newVault := func(t *testing.T, token string) *Vault {
		t.Helper()
		v, err := NewVault(VaultOptions{Address: srv.Addr, Method: VaultAuthKubernetes, Role: "wsgate",
			JWTFile: writeFile(t, "token", token), JWTMount: mount, MaxRetries: -1, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	v := newVault(t, is.mintProjected(t, "vault", "wsgate", "wsgate", time.Hour))
	got, err := v.Read(ctx, base+"/db")
	if err != nil || got["password"] != "pw1" {
		t.Fatalf("Read = %v, %v", got, err)
	}

	other := newJWTIssuer(t) // a key the API server does not know
	for name, token := range map[string]string{
		"other service account": is.mintProjected(t, "vault", "wsgate", "default", time.Hour),
		"other namespace":       is.mintProjected(t, "vault", "default", "wsgate", time.Hour),
		"other audience":        is.mintProjected(t, "kubernetes", "wsgate", "wsgate", time.Hour),
		"unknown issuer key":    other.mintProjected(t, "vault", "wsgate", "wsgate", time.Hour),
		"expired":               is.mintProjected(t, "vault", "wsgate", "wsgate", -time.Hour),
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			v := newVault(t, token)
			_, err := v.Read(ctx, base+"/db")
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Read = %v, want ErrUnavailable", err)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error carries the JWT: %v", err)
			}
		})
	}
}
