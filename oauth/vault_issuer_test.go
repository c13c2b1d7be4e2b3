package oauth

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"wsgate/internal/vaulttest"
)

// TestVaultIdentityTokens validates access tokens minted by an issuer we did
// not write: Vault's identity OIDC provider, its keys fetched from Vault's
// own JWKS endpoint.
func TestVaultIdentityTokens(t *testing.T) {
	srv, err := vaulttest.Start(vaulttest.Bin(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ctx := t.Context()
	root, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	write := func(path string, data map[string]any) map[string]any {
		t.Helper()
		s, err := root.Logical().WriteWithContext(ctx, path, data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if s == nil {
			return nil
		}
		return s.Data
	}
	write("identity/oidc/config", map[string]any{"issuer": srv.Addr})
	write("identity/oidc/key/wsgate", map[string]any{"algorithm": "RS256", "allowed_client_ids": "*"})
	write("identity/oidc/role/billing", map[string]any{
		"key": "wsgate", "ttl": "1h", "template": `{"scope": "billing.read"}`,
	})
	role, err := root.Logical().ReadWithContext(ctx, "identity/oidc/role/billing")
	if err != nil {
		t.Fatal(err)
	}
	clientID, _ := role.Data["client_id"].(string)
	if err := root.Sys().PutPolicyWithContext(ctx, "mint", `path "identity/oidc/token/billing" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableAuth(ctx, "userpass", "userpass"); err != nil {
		t.Fatal(err)
	}
	write("auth/userpass/users/alice", map[string]any{"password": "pw", "token_policies": "mint"})
	login, err := root.Logical().WriteWithContext(ctx, "auth/userpass/login/alice", map[string]any{"password": "pw"})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	alice.SetToken(login.Auth.ClientToken)
	minted, err := alice.Logical().ReadWithContext(ctx, "identity/oidc/token/billing")
	if err != nil {
		t.Fatal(err)
	}
	token, _ := minted.Data["token"].(string)

	keys, err := NewJWKSSource(JWKSOptions{URL: srv.Addr + "/v1/identity/oidc/.well-known/keys"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(Options{
		Issuer:     srv.Addr + "/v1/identity/oidc",
		Audience:   []string{clientID},
		Algorithms: []string{"RS256"},
		Keys:       keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Validate(ctx, token)
	if err != nil {
		t.Fatalf("Vault identity token refused: %v", err)
	}
	if got.Subject == "" || !slices.Contains(got.Scopes, "billing.read") {
		t.Fatalf("claims: sub %q scopes %v", got.Subject, got.Scopes)
	}

	parts := strings.Split(token, ".")
	tampered := parts[0] + "." + parts[1] + "." + flipLast(parts[2])
	if _, err := v.Validate(ctx, tampered); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("tampered Vault token: %v, want ErrInvalidSignature", err)
	}
	other, err := NewValidator(Options{
		Issuer: srv.Addr + "/v1/identity/oidc", Audience: []string{"someone-else"},
		Algorithms: []string{"RS256"}, Keys: keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Validate(ctx, token); !errors.Is(err, ErrWrongAudience) {
		t.Fatalf("wrong audience: %v, want ErrWrongAudience", err)
	}
}

func flipLast(s string) string {
	b := []byte(s)
	if b[len(b)-2] == 'A' {
		b[len(b)-2] = 'B'
	} else {
		b[len(b)-2] = 'A'
	}
	return string(b)
}
