package secrets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"wsgate/internal/vaulttest"
)

// Tests named TestVault...Integration run against a real Vault; see
// internal/vaulttest for how to point them at one.
var vaultHarness vaulttest.Harness

func TestMain(m *testing.M) { os.Exit(vaulttest.Main(m, &vaultHarness)) }

func TestNewVaultConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	mustWrite(t, empty, "\n")
	twoWords := filepath.Join(dir, "two")
	mustWrite(t, twoWords, "a b\n")
	notPEM := filepath.Join(dir, "ca.pem")
	mustWrite(t, notPEM, "TOPSECRET-not-a-cert")
	base := VaultOptions{Address: "http://127.0.0.1:1", Token: "t"}
	tests := []struct {
		name string
		mod  func(*VaultOptions)
	}{
		{"no address", func(o *VaultOptions) { o.Address = "" }},
		{"unknown method", func(o *VaultOptions) { o.Method = "userpass" }},
		{"token missing", func(o *VaultOptions) { o.Token = "" }},
		{"token file missing", func(o *VaultOptions) { o.TokenFile = filepath.Join(dir, "nope") }},
		{"token file empty", func(o *VaultOptions) { o.TokenFile = empty }},
		{"token file two values", func(o *VaultOptions) { o.TokenFile = twoWords }},
		{"approle without role_id", func(o *VaultOptions) { o.Method = VaultAuthAppRole; o.SecretIDFile = empty }},
		{"approle without secret_id_file", func(o *VaultOptions) { o.Method = VaultAuthAppRole; o.RoleID = "r" }},
		{"kv mount escapes", func(o *VaultOptions) { o.KVMount = "../sys" }},
		{"approle mount escapes", func(o *VaultOptions) { o.AppRoleMount = "/x" }},
		{"ca file missing", func(o *VaultOptions) { o.CACertFile = filepath.Join(dir, "nope.pem") }},
		{"ca file not pem", func(o *VaultOptions) { o.CACertFile = notPEM }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			_, err := NewVault(o)
			if !errors.Is(err, ErrVaultConfig) {
				t.Fatalf("err = %v, want ErrVaultConfig", err)
			}
			if strings.Contains(err.Error(), "TOPSECRET") {
				t.Errorf("error leaks file content: %v", err)
			}
		})
	}
}

func TestNewVaultIgnoresEnvironmentTLS(t *testing.T) {
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	t.Setenv("VAULT_TOKEN", "from-env")
	t.Setenv("VAULT_AGENT_ADDR", "http://127.0.0.1:2")
	v, err := NewVault(VaultOptions{Address: "https://127.0.0.1:1", TokenFile: writeFile(t, "tok", "from-file\n")})
	if err != nil {
		t.Fatal(err)
	}
	if tr := v.client.CloneConfig().HttpClient.Transport.(*http.Transport); tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("VAULT_SKIP_VERIFY turned off TLS verification")
	}
	if got := v.client.Token(); got != "from-file" {
		t.Errorf("token = %q, want the token_file's", got)
	}
	if got := v.client.Address(); got != "https://127.0.0.1:1" {
		t.Errorf("address = %q, want the configured one", got)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	mustWrite(t, p, content)
	return p
}

// TestVaultUnreachable needs no Vault: nothing listens on the address.
func TestVaultUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close()
	for _, method := range []string{VaultAuthToken, VaultAuthAppRole} {
		v, err := NewVault(VaultOptions{Address: addr, Method: method, Token: "t", RoleID: "r",
			SecretIDFile: writeFile(t, "sid", "s\n"), MaxRetries: -1, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Read(t.Context(), "wsgate/x"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: Read err = %v, want ErrUnavailable", method, err)
		}
	}
}

// TestVaultReadResponseShapes feeds Read responses a real KV v2 mount would
// not send, from a fake server: errors must classify and never quote data.
func TestVaultReadResponseShapes(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		want      error
		wantField bool // the error must name field f
	}{
		{"data not an object", 200, `{"data":{"data":"TOPSECRET"}}`, ErrInvalidSecret, false},
		{"number field", 200, `{"data":{"data":{"f":31337}}}`, ErrInvalidSecret, true},
		{"object field", 200, `{"data":{"data":{"f":{"x":"TOPSECRET"}}}}`, ErrInvalidSecret, true},
		{"null field", 200, `{"data":{"data":{"f":null}}}`, ErrInvalidSecret, true},
		{"deleted version", 404, `{"data":{"data":null,"metadata":{"deletion_time":"2026-01-01T00:00:00Z"}}}`, ErrNotFound, false},
		{"plain 404", 404, `{"errors":[]}`, ErrNotFound, false},
		{"sealed", 503, `{"errors":["Vault is sealed"]}`, ErrUnavailable, false},
		{"forbidden", 403, `{"errors":["permission denied"]}`, ErrUnavailable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/kv/data/wsgate/x" || r.Header.Get("X-Vault-Token") != "tok" {
					http.Error(w, "unexpected request", http.StatusTeapot)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			v, err := NewVault(VaultOptions{Address: srv.URL, KVMount: "kv", Token: "tok", MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Read(t.Context(), "wsgate/x")
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if msg := err.Error(); strings.Contains(msg, "TOPSECRET") || strings.Contains(msg, "31337") {
				t.Errorf("error leaks the value: %v", err)
			}
			if tt.wantField && !strings.Contains(err.Error(), "wsgate/x field f") {
				t.Errorf("error %v does not name the field", err)
			}
		})
	}
}

func TestIsSecretIDPath(t *testing.T) {
	v := &Vault{opts: VaultOptions{AppRoleMount: "approle"}}
	for p, want := range map[string]bool{
		"auth/approle/role/wsgate/secret-id":   true,
		"auth/approle/role/wsgate/secret-id/x": false,
		"auth/approle/role//secret-id":         false,
		"auth/approle/role/a/b/secret-id":      false,
		"auth/other/role/wsgate/secret-id":     false,
		"sys/wrapping/wrap":                    false,
		"":                                     false,
	} {
		if got := v.isSecretIDPath(p); got != want {
			t.Errorf("isSecretIDPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// vaultCtx bounds one integration test.
func vaultCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestCompactVaultError(t *testing.T) {
	re := &vault.ResponseError{HTTPMethod: "GET", URL: "http://v/v1/secret/data/x", StatusCode: 403, Errors: []string{"permission denied"}}
	err := fmt.Errorf("wrap: %w", compact(re))
	if got, want := err.Error(), "wrap: vault: GET http://v/v1/secret/data/x: 403: permission denied"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !isStatus(err, 403) {
		t.Error("compacted error lost the ResponseError")
	}
	raw := &vault.ResponseError{HTTPMethod: "GET", URL: "u", StatusCode: 502, RawError: true, Errors: []string{"<html>TOPSECRET</html>"}}
	if msg := compact(raw).Error(); strings.Contains(msg, "TOPSECRET") || !strings.Contains(msg, "502") {
		t.Errorf("raw body error = %q", msg)
	}
	plain := errors.New("dial tcp: refused")
	if compact(plain) != plain {
		t.Error("non-API error changed")
	}
}
