package config

import (
	"testing"
)

// Vault login by a service-account JWT: jwt needs a role and the file the
// JWT is read from; kubernetes needs a role (the file defaults to the pod's
// projected token); a mount must stay one plain path.
func TestValidateVaultJWTAuth(t *testing.T) {
	tests := []struct {
		name string
		auth VaultAuth
		want []string
	}{
		{"jwt ok", VaultAuth{Method: "jwt", Role: "wsgate", JWTFile: "/var/run/secrets/tokens/vault"}, nil},
		{"jwt with mount", VaultAuth{Method: "jwt", Role: "wsgate", JWTFile: "t", Mount: "jwt/ci"}, nil},
		{"jwt needs role and file", VaultAuth{Method: "jwt"}, []string{
			"secrets.vault.auth.role: required", "secrets.vault.auth.jwt_file: required"}},
		{"kubernetes ok, default jwt_file", VaultAuth{Method: "kubernetes", Role: "wsgate"}, nil},
		{"kubernetes needs role", VaultAuth{Method: "kubernetes", JWTFile: "t"}, []string{"secrets.vault.auth.role: required"}},
		{"mount leading slash", VaultAuth{Method: "kubernetes", Role: "r", Mount: "/kubernetes"}, []string{
			"secrets.vault.auth.mount: must be a plain mount path (no leading or trailing /, no ..)"}},
		{"mount escapes", VaultAuth{Method: "jwt", Role: "r", JWTFile: "t", Mount: "jwt/../token"}, []string{
			"secrets.vault.auth.mount: must be a plain mount path (no leading or trailing /, no ..)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			c.Secrets.Backend = "vault"
			c.Secrets.Vault.Address = "https://vault:8200"
			c.Secrets.Vault.Auth = tt.auth
			wantProblems(t, c, tt.want)
		})
	}
}

// The keys decode from YAML under their documented names.
func TestLoadVaultJWTAuthKeys(t *testing.T) {
	c, err := Load([]byte(`
secrets:
  backend: vault
  vault:
    address: https://vault:8200
    auth: {method: kubernetes, role: wsgate, jwt_file: /var/run/secrets/tokens/vault, mount: k8s-prod}
routes:
  - {name: p, path_prefix: /p, upstream: "http://127.0.0.1:1", public: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := VaultAuth{Method: "kubernetes", Role: "wsgate", JWTFile: "/var/run/secrets/tokens/vault", Mount: "k8s-prod"}
	if c.Secrets.Vault.Auth != want {
		t.Errorf("auth = %+v, want %+v", c.Secrets.Vault.Auth, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
