package gateway

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"wsgate/config"
	"wsgate/secrets"
)

// newVaultBackend builds the Vault secrets backend of cfg.secrets.vault and
// keeps its token alive (renewal, re-login) in a goroutine until ctx ends or
// stop is called; stop waits for that goroutine. Relative token_file,
// secret_id_file and ca_cert are resolved against cfgDir, the config file's
// directory. With auth method token and no token_file, the token is
// $VAULT_TOKEN. Vault is not contacted here: a Vault that is down at
// start-up leaves secrets unloaded (routes answer 503) until it is back.
func newVaultBackend(ctx context.Context, cfg *config.Config, cfgDir string, logger *slog.Logger) (v *secrets.Vault, stop func(), err error) {
	opts := VaultOptions(cfg, cfgDir)
	opts.Logger = logger.With(slog.String("component", "vault"))
	v, err = secrets.NewVault(opts)
	if err != nil {
		return nil, nil, err
	}
	return v, runInBackground(ctx, v.Run), nil
}

// VaultOptions maps cfg.secrets.vault onto the Vault backend's options, the
// one mapping serving and `check-config -secrets` share. Relative
// token_file, secret_id_file, jwt_file and ca_cert are resolved against
// cfgDir, the config file's directory; with auth method token and no
// token_file, the token is $VAULT_TOKEN.
func VaultOptions(cfg *config.Config, cfgDir string) secrets.VaultOptions {
	vc := cfg.Secrets.Vault
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cfgDir, p)
	}
	return secrets.VaultOptions{
		Address:      vc.Address,
		KVMount:      vc.KVMount,
		CACertFile:   rel(vc.CACert),
		Method:       vc.Auth.Method,
		Token:        os.Getenv("VAULT_TOKEN"),
		TokenFile:    rel(vc.Auth.TokenFile),
		RoleID:       vc.Auth.RoleID,
		SecretIDFile: rel(vc.Auth.SecretIDFile),
		Role:         vc.Auth.Role,
		JWTFile:      rel(vc.Auth.JWTFile),
		JWTMount:     vc.Auth.Mount,
		AppRoleMount: vc.Auth.Mount, // the one mount key names whichever method is used
	}
}

// newVaultPKI builds the tls.pki listener certificate over v and keeps it
// issued and renewed in a goroutine until ctx ends or stop is called. Its
// GetCertificate fails (no handshake, never plain text) until the first
// issuance succeeds; Status belongs in /readyz.
func newVaultPKI(ctx context.Context, v *secrets.Vault, p *config.PKI, logger *slog.Logger) (c *secrets.PKICertificate, stop func(), err error) {
	c, err = secrets.NewPKICertificate(v, secrets.PKIOptions{
		Mount: p.Mount, Role: p.Role, CommonName: p.CommonName, TTL: p.TTL.D(),
		Logger: logger.With(slog.String("component", "vault-pki")),
	})
	if err != nil {
		return nil, nil, err
	}
	return c, runInBackground(ctx, c.Run), nil
}

// runInBackground runs run until ctx ends or the returned stop is called;
// stop waits for run to return.
func runInBackground(ctx context.Context, run func(context.Context)) (stop func()) {
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(runCtx)
	}()
	return func() { cancel(); <-done }
}
