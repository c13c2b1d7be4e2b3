package secrets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"wsgate/internal/pki"
	"wsgate/internal/vaulttest"
)

// Integration tests against a real Vault dev server (see internal/vaulttest).

// randSuffix makes mounts, roles and paths unique, so tests can share one
// server (or a long-lived external one) without seeing each other's data.
func randSuffix(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func rootClient(t *testing.T, srv *vaulttest.Server) *vault.Client {
	t.Helper()
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func putKV(t *testing.T, srv *vaulttest.Server, path string, data map[string]any) {
	t.Helper()
	if _, err := rootClient(t, srv).KVv2("secret").Put(vaultCtx(t), path, data); err != nil {
		t.Fatalf("seed %s: %v", path, err)
	}
}

func mustWrite2(t *testing.T, c *vault.Client, path string, data map[string]any) *vault.Secret {
	t.Helper()
	s, err := c.Logical().WriteWithContext(vaultCtx(t), path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

// tokenVault is a Vault backend logged in with srv's root token.
func tokenVault(t *testing.T, srv *vaulttest.Server) *Vault {
	t.Helper()
	v, err := NewVault(VaultOptions{Address: srv.Addr, Token: srv.Token, MaxRetries: -1, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVaultKVIntegration(t *testing.T) {
	srv := vaultHarness.Require(t)
	ctx := vaultCtx(t)
	base := "wsgate-test/" + randSuffix(t)
	putKV(t, srv, base+"/users", map[string]any{"alice": "s3cret", "bob": "pw"})
	putKV(t, srv, base+"/mixed", map[string]any{"ok": "v", "port": 31337})
	putKV(t, srv, base+"/deleted", map[string]any{"k": "v"})
	if err := rootClient(t, srv).KVv2("secret").Delete(ctx, base+"/deleted"); err != nil {
		t.Fatal(err)
	}
	v := tokenVault(t, srv)

	got, err := v.Read(ctx, base+"/users")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["alice"] != "s3cret" || got["bob"] != "pw" {
		t.Errorf("Read = %v", got)
	}

	tests := []struct {
		path string
		want error
	}{
		{base + "/missing", ErrNotFound},
		{base + "/deleted", ErrNotFound},
		{base + "/mixed", ErrInvalidSecret},
		{base + "/../x", ErrInvalidPath},
		{"/" + base + "/users", ErrInvalidPath},
	}
	for _, tt := range tests {
		_, err := v.Read(ctx, tt.path)
		if !errors.Is(err, tt.want) {
			t.Errorf("Read(%s) = %v, want %v", tt.path, err, tt.want)
		}
	}
	_, err = v.Read(ctx, base+"/mixed")
	if msg := err.Error(); !strings.Contains(msg, base+"/mixed field port") || strings.Contains(msg, "31337") {
		t.Errorf("non-string error %q must name path and field and not the value", msg)
	}

	// A token without access: unavailable (the Manager keeps last good values), not "not found".
	bad, err := NewVault(VaultOptions{Address: srv.Addr, Token: "hvs.not-a-token", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Read(ctx, base+"/users"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("bad token Read = %v, want ErrUnavailable", err)
	}
	if _, err := bad.Read(ctx, base+"/users"); err != nil && strings.Contains(err.Error(), "hvs.not-a-token") {
		t.Errorf("error leaks the token: %v", err)
	}
}

// approleFixture is an AppRole role allowed to read secret/data/<base>/*.
type approleFixture struct {
	role, roleID string
	base         string // KV prefix the role may read
}

func newAppRole(t *testing.T, srv *vaulttest.Server, tokenTTL, tokenMaxTTL string) approleFixture {
	t.Helper()
	ctx := vaultCtx(t)
	root := rootClient(t, srv)
	if err := srv.EnableAuth(ctx, "approle", "approle"); err != nil {
		t.Fatal(err)
	}
	sfx := randSuffix(t)
	f := approleFixture{role: "wsgate-" + sfx, base: "wsgate-test/" + sfx}
	policy := `path "secret/data/` + f.base + `/*" { capabilities = ["read"] }`
	if err := root.Sys().PutPolicyWithContext(ctx, f.role, policy); err != nil {
		t.Fatal(err)
	}
	mustWrite2(t, root, "auth/approle/role/"+f.role, map[string]any{
		"token_policies": f.role, "token_ttl": tokenTTL, "token_max_ttl": tokenMaxTTL,
	})
	s, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/"+f.role+"/role-id")
	if err != nil || s == nil {
		t.Fatalf("role-id: %v", err)
	}
	f.roleID = s.Data["role_id"].(string)
	return f
}

// secretID issues a secret ID for the role; wrapped, it returns the wrapping token instead.
func (f approleFixture) secretID(t *testing.T, srv *vaulttest.Server, wrapped bool) string {
	t.Helper()
	c := rootClient(t, srv)
	if wrapped {
		c.SetWrappingLookupFunc(func(string, string) string { return "120s" })
		s := mustWrite2(t, c, "auth/approle/role/"+f.role+"/secret-id", nil)
		if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
			t.Fatal("no wrapping token")
		}
		return s.WrapInfo.Token
	}
	return mustWrite2(t, c, "auth/approle/role/"+f.role+"/secret-id", nil).Data["secret_id"].(string)
}

func (f approleFixture) vault(t *testing.T, srv *vaulttest.Server, secretIDFile string) *Vault {
	t.Helper()
	v, err := NewVault(VaultOptions{Address: srv.Addr, Method: VaultAuthAppRole, RoleID: f.roleID,
		SecretIDFile: secretIDFile, MaxRetries: -1, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVaultAppRoleIntegration(t *testing.T) {
	srv := vaultHarness.Require(t)
	f := newAppRole(t, srv, "1h", "2h")
	putKV(t, srv, f.base+"/db", map[string]any{"password": "pw1"})
	putKV(t, srv, "wsgate-test/"+randSuffix(t)+"/other", map[string]any{"x": "y"})

	t.Run("plain secret ID", func(t *testing.T) {
		v := f.vault(t, srv, writeFile(t, "sid", f.secretID(t, srv, false)+"\n"))
		got, err := v.Read(vaultCtx(t), f.base+"/db")
		if err != nil || got["password"] != "pw1" {
			t.Fatalf("Read = %v, %v", got, err)
		}
		if _, err := v.Read(vaultCtx(t), "wsgate-test/outside/x"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("read outside the policy = %v, want ErrUnavailable (403)", err)
		}
	})

	t.Run("wrapped secret ID", func(t *testing.T) {
		wrapTok := f.secretID(t, srv, true)
		sidFile := writeFile(t, "sid", wrapTok+"\n")
		v := f.vault(t, srv, sidFile)
		got, err := v.Read(vaultCtx(t), f.base+"/db")
		if err != nil || got["password"] != "pw1" {
			t.Fatalf("Read = %v, %v", got, err)
		}
		// A second login reuses the unwrapped ID: the wrapping token is spent.
		if _, err := v.login(vaultCtx(t), true); err != nil {
			t.Fatalf("re-login with a spent wrapping token: %v", err)
		}
		if _, err := v.Read(vaultCtx(t), f.base+"/db"); err != nil {
			t.Fatal(err)
		}
		// Another process given the same (now spent) wrapping token cannot log in.
		other := f.vault(t, srv, sidFile)
		if _, err := other.Read(vaultCtx(t), f.base+"/db"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("spent wrapping token: Read = %v, want ErrUnavailable", err)
		}
	})

	t.Run("wrapping token of another path refused", func(t *testing.T) {
		c := rootClient(t, srv)
		c.SetWrappingLookupFunc(func(string, string) string { return "120s" })
		s := mustWrite2(t, c, "sys/wrapping/wrap", map[string]any{"secret_id": f.secretID(t, srv, false)})
		v := f.vault(t, srv, writeFile(t, "sid", s.WrapInfo.Token))
		_, err := v.Read(vaultCtx(t), f.base+"/db")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "sys/wrapping/wrap") {
			t.Errorf("Read = %v, want ErrUnavailable naming the creation path", err)
		}
	})

	t.Run("wrong secret ID", func(t *testing.T) {
		v := f.vault(t, srv, writeFile(t, "sid", "00000000-0000-0000-0000-000000000000"))
		if _, err := v.Read(vaultCtx(t), f.base+"/db"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Read = %v, want ErrUnavailable", err)
		}
	})

	t.Run("revoked token: Run logs in again", func(t *testing.T) {
		v := f.vault(t, srv, writeFile(t, "sid", f.secretID(t, srv, false)))
		ctx, cancel := context.WithCancel(vaultCtx(t))
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); v.Run(ctx) }()
		t.Cleanup(func() { cancel(); wg.Wait() })
		if _, err := v.Read(ctx, f.base+"/db"); err != nil {
			t.Fatal(err)
		}
		first := v.client.Token()
		if err := rootClient(t, srv).Auth().Token().RevokeTreeWithContext(ctx, first); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Read(ctx, f.base+"/db"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Read with a revoked token = %v, want ErrUnavailable", err)
		}
		waitFor(t, 20*time.Second, "a fresh login after 403", func() bool {
			_, err := v.Read(ctx, f.base+"/db")
			return err == nil && v.client.Token() != first
		})
	})
}

// waitFor polls cond every 100ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestVaultTokenLifecycleIntegration runs Run against short-lived tokens:
// an AppRole token that hits its max TTL is replaced by a new login, and a
// renewable token from token_file is renewed in place; reads never fail.
func TestVaultTokenLifecycleIntegration(t *testing.T) {
	srv := vaultHarness.Require(t)
	f := newAppRole(t, srv, "3s", "6s")
	putKV(t, srv, f.base+"/db", map[string]any{"password": "pw"})

	t.Run("approle re-login at max TTL", func(t *testing.T) {
		v := f.vault(t, srv, writeFile(t, "sid", f.secretID(t, srv, false)))
		tokens := runAndRead(t, v, f.base+"/db", 14*time.Second)
		if len(tokens) < 3 {
			t.Errorf("saw %d tokens over 14s with max TTL 6s, want at least 3 (re-login)", len(tokens))
		}
	})

	t.Run("token_file renewed", func(t *testing.T) {
		root := rootClient(t, srv)
		s, err := root.Auth().Token().CreateWithContext(vaultCtx(t), &vault.TokenCreateRequest{
			Policies: []string{f.role}, TTL: "3s", Renewable: new(true), NoParent: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewVault(VaultOptions{Address: srv.Addr, TokenFile: writeFile(t, "tok", s.Auth.ClientToken), MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		tokens := runAndRead(t, v, f.base+"/db", 8*time.Second)
		if len(tokens) != 1 {
			t.Errorf("saw %d tokens, want the one renewed token", len(tokens))
		}
	})
}

// runAndRead runs v.Run for d, reading path every 250ms; every read must
// succeed. It returns the distinct tokens seen.
func runAndRead(t *testing.T, v *Vault, path string, d time.Duration) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithCancel(vaultCtx(t))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); v.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	tokens := map[string]bool{}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if _, err := v.Read(ctx, path); err != nil {
			t.Fatalf("read during token lifecycle: %v", err)
		}
		tokens[v.client.Token()] = true
	}
	return tokens
}

// TestVaultManagerIntegration drives a Manager over a Vault it owns:
// rotation is picked up by Refresh, a stopped Vault leaves the last good
// values in place and the status stale since the failure, and a restarted
// (re-seeded: dev mode keeps nothing) Vault makes it fresh again.
func TestVaultManagerIntegration(t *testing.T) {
	bin := vaulttest.Bin(t)
	srv, err := vaulttest.Start(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	fx := getFixture(t)
	leaf2PEM := string(pki.CertPEM(fx.leaf2.Cert))
	const trustPath = "wsgate/trust/partners"
	seed := func(certs string) { putKV(t, srv, trustPath, map[string]any{"certificates": certs}) }
	seed(fx.caPEM)

	now := fixedNow
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	setNow := func(d time.Duration) { mu.Lock(); now = fixedNow.Add(d); mu.Unlock() }
	m := NewManager(tokenVault(t, srv), nil, clock)
	trust := m.Trust(trustPath)
	ctx := vaultCtx(t)

	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if certs, err := trust.Certificates(); err != nil || len(certs) != 1 {
		t.Fatalf("Certificates = %d, %v", len(certs), err)
	}

	// Rotation: a second anchor added in Vault is used after Refresh, no restart.
	setNow(time.Minute)
	seed(fx.caPEM + leaf2PEM)
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if certs, _ := trust.Certificates(); len(certs) != 2 || !certs[1].Equal(fx.leaf2.Cert) {
		t.Fatalf("rotated bundle not picked up: %d certs", len(certs))
	}

	// Outage.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	setNow(2 * time.Minute)
	if err := m.Refresh(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Refresh with Vault down = %v, want ErrUnavailable", err)
	}
	setNow(3 * time.Minute)
	_ = m.Refresh(ctx)
	if certs, err := trust.Certificates(); err != nil || len(certs) != 2 {
		t.Errorf("during outage Certificates = %d, %v; want the last good 2", len(certs), err)
	}
	st := m.Status()[0]
	t.Logf("status during outage: %+v", st)
	if !st.Loaded || !st.LoadedAt.Equal(fixedNow.Add(time.Minute)) ||
		!st.StaleSince.Equal(fixedNow.Add(2*time.Minute)) || st.Error == "" {
		t.Errorf("status during outage = %+v, want loaded, stale since the first failure", st)
	}

	// Recovery on the same address, re-seeded with a third version.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	seed(leaf2PEM)
	setNow(4 * time.Minute)
	if err := m.Refresh(ctx); err != nil {
		t.Fatalf("Refresh after restart: %v", err)
	}
	if certs, _ := trust.Certificates(); len(certs) != 1 || !certs[0].Equal(fx.leaf2.Cert) {
		t.Errorf("after recovery: %d certs", len(certs))
	}
	if st := m.Status()[0]; !st.StaleSince.IsZero() || st.Error != "" || !st.LoadedAt.Equal(fixedNow.Add(4*time.Minute)) {
		t.Errorf("status after recovery = %+v, want fresh", st)
	}
}

// TestVaultTLSIntegration talks HTTPS to a -dev-tls server: trusted
// through ca_cert it reads; with the system roots only it must refuse.
func TestVaultTLSIntegration(t *testing.T) {
	srv, err := vaulttest.StartTLS(vaulttest.Bin(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	if !strings.HasPrefix(srv.Addr, "https://") {
		t.Fatalf("address %s is not https", srv.Addr)
	}
	putKV(t, srv, "wsgate/tls/x", map[string]any{"k": "v"})

	v, err := NewVault(VaultOptions{Address: srv.Addr, Token: srv.Token, CACertFile: srv.CACertFile, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Read(vaultCtx(t), "wsgate/tls/x"); err != nil || got["k"] != "v" {
		t.Fatalf("Read over TLS with ca_cert = %v, %v", got, err)
	}

	t.Setenv("VAULT_CACERT", srv.CACertFile) // must not be honoured: only ca_cert decides
	untrusting, err := NewVault(VaultOptions{Address: srv.Addr, Token: srv.Token, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusting.Read(vaultCtx(t), "wsgate/tls/x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Read without ca_cert = %v, want ErrUnavailable (unknown authority)", err)
	}
	fx := getFixture(t)
	wrongCA := writeFile(t, "ca.pem", fx.caPEM)
	wrong, err := NewVault(VaultOptions{Address: srv.Addr, Token: srv.Token, CACertFile: wrongCA, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Read(vaultCtx(t), "wsgate/tls/x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Read with another CA = %v, want ErrUnavailable", err)
	}
}
