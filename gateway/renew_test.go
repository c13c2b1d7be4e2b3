package gateway

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"wsgate/config"
	"wsgate/internal/gatewaytest"
	"wsgate/internal/vaulttest"
	"wsgate/secrets"
)

func vaultConfig(addr string, auth config.VaultAuth) *config.Config {
	return &config.Config{Secrets: config.Secrets{Backend: "vault", Vault: config.Vault{
		Address: addr, KVMount: "secret", Auth: auth,
	}}}
}

func startVault(t *testing.T, engines ...string) (*vaulttest.Server, *vault.Client) {
	return gatewaytest.Vault(t, engines...)
}

func vaultPKIRole(t *testing.T, root *vault.Client) *vault.Secret {
	return gatewaytest.VaultPKIRole(t, root)
}

func TestNewVaultBackendResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	cfg := vaultConfig("http://127.0.0.1:1", config.VaultAuth{Method: "token", TokenFile: "vault-token"})
	if _, _, err := newVaultBackend(t.Context(), cfg, dir, logger); !errors.Is(err, secrets.ErrVaultConfig) {
		t.Fatalf("missing token file: err = %v, want ErrVaultConfig", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vault-token"), []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, stop, err := newVaultBackend(t.Context(), cfg, dir, logger)
	if err != nil {
		t.Fatalf("token_file relative to the config directory: %v", err)
	}
	stop()
	if got := v.Client().Token(); got != "tok" {
		t.Errorf("token = %q", got)
	}
}

// TestNewVaultBackendIntegration logs in with AppRole through the config
// (relative secret_id_file) and loads a secret through the Manager.
func TestNewVaultBackendIntegration(t *testing.T) {
	srv, root := startVault(t)
	ctx := t.Context()
	if _, err := root.KVv2("secret").Put(ctx, "wsgate/users/orders", map[string]any{"alice": "pw"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableAuth(ctx, "approle", "approle"); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicyWithContext(ctx, "wsgate", `path "secret/data/wsgate/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/wsgate", map[string]any{"token_policies": "wsgate"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/wsgate/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/wsgate/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret-id"), []byte(sid.Data["secret_id"].(string)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := vaultConfig(srv.Addr, config.VaultAuth{Method: "approle", RoleID: rid.Data["role_id"].(string), SecretIDFile: "secret-id"})
	v, stop, err := newVaultBackend(ctx, cfg, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	mgr := secrets.NewManager(v, nil, nil)
	users := mgr.Users("wsgate/users/orders")
	if err := mgr.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if pw, ok, err := users.Password("alice"); pw != "pw" || !ok || err != nil {
		t.Errorf("Password(alice) = %q %v %v", pw, ok, err)
	}
}

// TestNewVaultPKIIntegration issues the tls.pki listener certificate.
func TestNewVaultPKIIntegration(t *testing.T) {
	srv, root := startVault(t, "pki")
	ctx := t.Context()
	vaultPKIRole(t, root)
	t.Setenv("VAULT_TOKEN", srv.Token)
	cfg := vaultConfig(srv.Addr, config.VaultAuth{Method: "token"})
	cfg.TLS = &config.TLS{PKI: &config.PKI{Mount: "pki", Role: "wsgate", CommonName: "gw.example", TTL: config.Duration(24 * time.Hour)}}
	logger := slog.New(slog.DiscardHandler)
	v, stopVault, err := newVaultBackend(ctx, cfg, t.TempDir(), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer stopVault()
	p, stop, err := newVaultPKI(ctx, v, cfg.TLS.PKI, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := p.GetCertificate(nil)
		if err == nil {
			if c.Leaf.Subject.CommonName != "gw.example" || time.Until(c.Leaf.NotAfter) < 23*time.Hour {
				t.Errorf("certificate CN %q, not after %v", c.Leaf.Subject.CommonName, c.Leaf.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := p.Status(); !st.Loaded || st.Path != "pki/issue/wsgate" {
		t.Errorf("Status = %+v", st)
	}
}
