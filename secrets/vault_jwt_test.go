package secrets

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// NewVault's jwt and kubernetes options, checked before Vault is contacted.
func TestNewVaultJWTOptions(t *testing.T) {
	tokenFile := writeFile(t, "jwt", "a.b.c")
	tests := []struct {
		name      string
		opts      VaultOptions
		wantErr   bool
		wantFile  string
		wantMount string
	}{
		{"jwt", VaultOptions{Method: VaultAuthJWT, Role: "r", JWTFile: tokenFile}, false, tokenFile, "jwt"},
		{"jwt custom mount", VaultOptions{Method: VaultAuthJWT, Role: "r", JWTFile: tokenFile, JWTMount: "jwt/ci"}, false, tokenFile, "jwt/ci"},
		{"kubernetes default token file", VaultOptions{Method: VaultAuthKubernetes, Role: "r"}, false, DefaultKubernetesJWTFile, "kubernetes"},
		{"jwt without file", VaultOptions{Method: VaultAuthJWT, Role: "r"}, true, "", ""},
		{"jwt without role", VaultOptions{Method: VaultAuthJWT, JWTFile: tokenFile}, true, "", ""},
		{"kubernetes without role", VaultOptions{Method: VaultAuthKubernetes}, true, "", ""},
		{"mount escaping the auth path", VaultOptions{Method: VaultAuthKubernetes, Role: "r", JWTMount: "../sys"}, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Address = "http://127.0.0.1:1"
			v, err := NewVault(tt.opts)
			if tt.wantErr {
				if !errors.Is(err, ErrVaultConfig) {
					t.Fatalf("NewVault = %v, want ErrVaultConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.opts.JWTFile != tt.wantFile || v.opts.JWTMount != tt.wantMount {
				t.Errorf("jwt_file %q mount %q, want %q %q", v.opts.JWTFile, v.opts.JWTMount, tt.wantFile, tt.wantMount)
			}
		})
	}
}

// A JWT that cannot be read is ErrVaultConfig before Vault is asked.
func TestVaultJWTFileUnreadable(t *testing.T) {
	v, err := NewVault(VaultOptions{Address: "http://127.0.0.1:1", Method: VaultAuthJWT, Role: "r",
		JWTFile: t.TempDir() + "/missing", MaxRetries: -1, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Read(vaultCtx(t), "wsgate/x"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrVaultConfig) {
		t.Errorf("Read = %v, want ErrUnavailable wrapping ErrVaultConfig", err)
	}
}

// jwtIssuer is a service-account token issuer: an ES256 key whose public
// half is served as a JWKS, as a cluster's issuer serves it.
type jwtIssuer struct {
	key  *ecdsa.PrivateKey
	kid  string
	jwks *httptest.Server
}

func newJWTIssuer(t *testing.T) *jwtIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &jwtIssuer{key: key, kid: "sa-" + randSuffix(t)}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: is.kid, Algorithm: "ES256", Use: "sig"}}}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	// Over TLS, trusted through jwks_ca_pem, as a cluster's issuer is reached.
	is.jwks = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(is.jwks.Close)
	return is
}

const (
	saIssuer  = "https://kubernetes.default.svc.cluster.local"
	saSubject = "system:serviceaccount:wsgate:wsgate"
)

// mint signs a service-account-style JWT with key (the issuer's unless
// another is given), valid from now for ttl.
func (is *jwtIssuer) mint(t *testing.T, aud, sub string, ttl time.Duration, key *ecdsa.PrivateKey) string {
	t.Helper()
	if key == nil {
		key = is.key
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", is.kid))
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(ttl)
	iat := time.Now().Add(min(0, ttl) - time.Minute) // an expired token was issued before it expired
	tok, err := jwt.Signed(s).Claims(jwt.Claims{
		Issuer: saIssuer, Subject: sub, Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(iat), NotBefore: jwt.NewNumericDate(iat),
		Expiry: jwt.NewNumericDate(exp),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Vault's JWT auth method, configured with the JWKS the test serves: the
// gateway logs in with the service-account token in jwt_file, reads what
// its role's policy allows, re-reads the file at each login, and is
// refused for a token of another audience, subject or key, or an expired one.
func TestVaultJWTAuthIntegration(t *testing.T) {
	srv := vaultHarness.Require(t)
	ctx := vaultCtx(t)
	root := rootClient(t, srv)
	is := newJWTIssuer(t)

	sfx := randSuffix(t)
	mount := "jwt-" + sfx
	if err := srv.EnableAuth(ctx, mount, "jwt"); err != nil {
		t.Fatal(err)
	}
	mustWrite2(t, root, "auth/"+mount+"/config", map[string]any{
		"jwks_url": is.jwks.URL, "jwks_ca_pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.jwks.Certificate().Raw})),
		"bound_issuer": saIssuer, "jwt_supported_algs": "ES256", // Vault's default is RS256 alone
	})
	base := "wsgate-test/" + sfx
	policy := `path "secret/data/` + base + `/*" { capabilities = ["read"] }`
	if err := root.Sys().PutPolicyWithContext(ctx, "wsgate-"+sfx, policy); err != nil {
		t.Fatal(err)
	}
	mustWrite2(t, root, "auth/"+mount+"/role/wsgate", map[string]any{
		"role_type": "jwt", "bound_audiences": "vault", "user_claim": "sub", "bound_subject": saSubject,
		"token_policies": "wsgate-" + sfx, "token_ttl": "1h", "token_max_ttl": "2h",
	})
	putKV(t, srv, base+"/db", map[string]any{"password": "pw1"})

	newVault := func(t *testing.T, file string) *Vault {
		t.Helper()
		v, err := NewVault(VaultOptions{Address: srv.Addr, Method: VaultAuthJWT, Role: "wsgate", JWTFile: file,
			JWTMount: mount, MaxRetries: -1, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	t.Run("service-account token logs in", func(t *testing.T) {
		file := writeFile(t, "token", is.mint(t, "vault", saSubject, time.Hour, nil)+"\n")
		v := newVault(t, file)
		got, err := v.Read(ctx, base+"/db")
		if err != nil || got["password"] != "pw1" {
			t.Fatalf("Read = %v, %v", got, err)
		}
		// The token's policy is the role's: nothing outside it.
		if _, err := v.Read(ctx, "wsgate-test/"+randSuffix(t)+"/x"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("read outside the policy = %v, want ErrUnavailable (403)", err)
		}
		first := v.client.Token()
		info, err := root.Auth().Token().LookupWithContext(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		if pols, _ := info.TokenPolicies(); !strings.Contains(strings.Join(pols, ","), "wsgate-"+sfx) {
			t.Errorf("token policies %v, want the role's", pols)
		}

		// The kubelet rotated the file: the next login reads the new token,
		// even when the old one is no longer acceptable.
		if err := os.WriteFile(file, []byte(is.mint(t, "vault", saSubject, time.Hour, nil)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := v.login(ctx, true); err != nil {
			t.Fatalf("login after rotation: %v", err)
		}
		if v.client.Token() == first {
			t.Error("a forced login kept the old Vault token")
		}
		if _, err := v.Read(ctx, base+"/db"); err != nil {
			t.Fatal(err)
		}
	})

	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
	}{
		{"other audience", is.mint(t, "not-vault", saSubject, time.Hour, nil)},
		{"other service account", is.mint(t, "vault", "system:serviceaccount:default:default", time.Hour, nil)},
		{"signed by another key", is.mint(t, "vault", saSubject, time.Hour, other)},
		{"expired", is.mint(t, "vault", saSubject, -5*time.Minute, nil)},
		{"not a JWT", "not-a-jwt"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			v := newVault(t, writeFile(t, "token", tc.token))
			_, err := v.Read(ctx, base+"/db")
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Read = %v, want ErrUnavailable", err)
			}
			if strings.Contains(err.Error(), tc.token) {
				t.Errorf("the error carries the JWT: %v", err)
			}
			if v.client.Token() != "" {
				t.Error("a refused login left a token on the client")
			}
		})
	}
}
