package secrets

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// ErrUnavailable means the backend could not be asked (network failure,
// Vault sealed or down, login failed, permission denied). The Manager keeps
// the last good values when it sees it.
var ErrUnavailable = errors.New("secrets: backend unavailable")

// ErrVaultConfig means the Vault backend cannot be built from its options
// (unreadable CA file or token file, unknown auth method, ...).
var ErrVaultConfig = errors.New("secrets: vault backend misconfigured")

// Vault auth methods for VaultOptions.Method.
const (
	VaultAuthToken      = "token"
	VaultAuthAppRole    = "approle"
	VaultAuthJWT        = "jwt"        // auth/jwt/login with a JWT from JWTFile
	VaultAuthKubernetes = "kubernetes" // auth/kubernetes/login with the pod's service-account token
)

// Defaults of VaultOptions.
const (
	DefaultVaultKVMount      = "secret"
	DefaultVaultAppRoleMount = "approle"
	// DefaultKubernetesJWTFile is where a pod's service-account token is mounted.
	DefaultKubernetesJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultVaultTimeout      = 30 * time.Second
)

// maxCredentialFileBytes bounds token, secret ID and CA files.
const maxCredentialFileBytes = 64 << 10

// VaultOptions configure NewVault. Relative file names are used as given:
// the caller resolves them (cmd resolves them against the config's directory).
type VaultOptions struct {
	// Address is Vault's URL, e.g. https://vault.example:8200.
	Address string
	// KVMount is the KV v2 mount holding the secrets. Default secret.
	KVMount string
	// CACertFile, when set, is a PEM bundle that alone is trusted for Vault's
	// TLS certificate; empty means the system roots.
	CACertFile string

	// Method is VaultAuthToken (default), VaultAuthAppRole, VaultAuthJWT or
	// VaultAuthKubernetes.
	Method string
	// Token is the token for the token method when TokenFile is empty (cmd
	// passes $VAULT_TOKEN).
	Token string
	// TokenFile holds the token for the token method; it is re-read when the
	// token can no longer be renewed (a Vault Agent sink may have replaced it).
	TokenFile string
	// RoleID is the AppRole role ID.
	RoleID string
	// SecretIDFile holds the AppRole secret ID, plain or as a
	// response-wrapping token (see NewVault).
	SecretIDFile string
	// AppRoleMount is the AppRole auth mount. Default approle.
	AppRoleMount string
	// Role is the role of a jwt or kubernetes login.
	Role string
	// JWTFile holds the JWT of a jwt or kubernetes login; it is re-read at
	// each login (the kubelet rotates projected tokens). Default for
	// kubernetes: DefaultKubernetesJWTFile.
	JWTFile string
	// JWTMount is the jwt or kubernetes auth mount. Default: the method's name.
	JWTMount string

	// Timeout bounds one Vault request, retries included. Default 30s.
	Timeout time.Duration
	// MaxRetries is how often a request is retried on 5xx and connection
	// errors; zero means the API client's default (2), negative means none.
	MaxRetries int
	// Logger receives auth and renewal events (never tokens); nil discards.
	Logger *slog.Logger
}

// Vault is the HashiCorp Vault backend: it reads KV v2 secrets and keeps a
// token alive (Run). It also serves PKICertificate and TransitSigner.
//
// Login is lazy: NewVault does not contact Vault, so the gateway starts
// while Vault is down and its routes answer 503 until the first good read.
// A long-lived process must also call Run, which renews the token and logs
// in again; one-shot commands need not.
//
// Response-wrapped AppRole secret IDs are detected with sys/wrapping/lookup
// (unauthenticated): if the secret_id_file holds a live wrapping token whose
// creation path is an AppRole secret-id endpoint, it is unwrapped once and
// the secret ID is kept in memory for later logins; a wrapping token created
// by any other path is refused (it is not what the operator meant to
// deliver, and may have been substituted). Anything Vault does not know as a
// wrapping token is used as a plain secret ID.
type Vault struct {
	client  *vault.Client // token set once logged in; shared with PKI and Transit
	opts    VaultOptions
	logger  *slog.Logger
	reauth  chan struct{} // a read saw 403: renew auth now
	authMu  sync.Mutex    // serializes logins
	auth    *vault.Secret // last login (approle) or token lookup; guarded by authMu
	wrapped string        // the consumed wrapping token ... guarded by authMu
	unwrap  string        // ... and the secret ID it held
}

// NewVault builds the client from opts. It reads the CA and token files but
// does not contact Vault.
func NewVault(opts VaultOptions) (*Vault, error) {
	if opts.KVMount == "" {
		opts.KVMount = DefaultVaultKVMount
	}
	if opts.Method == "" {
		opts.Method = VaultAuthToken
	}
	if opts.AppRoleMount == "" {
		opts.AppRoleMount = DefaultVaultAppRoleMount
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultVaultTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := checkMount("kv_mount", opts.KVMount); err != nil {
		return nil, err
	}
	if err := checkMount("approle mount", opts.AppRoleMount); err != nil {
		return nil, err
	}
	if opts.Method == VaultAuthJWT || opts.Method == VaultAuthKubernetes {
		if opts.JWTMount == "" {
			opts.JWTMount = opts.Method
		}
		if opts.JWTFile == "" && opts.Method == VaultAuthKubernetes {
			opts.JWTFile = DefaultKubernetesJWTFile
		}
		if err := checkMount(opts.Method+" mount", opts.JWTMount); err != nil {
			return nil, err
		}
	}
	if opts.Address == "" {
		return nil, fmt.Errorf("%w: address is required", ErrVaultConfig)
	}

	cfg := vault.DefaultConfig() // also reads VAULT_* variables; the TLS and address ones are undone below
	if cfg.Error != nil {
		return nil, fmt.Errorf("%w: %w", ErrVaultConfig, cfg.Error)
	}
	cfg.Address = opts.Address
	cfg.AgentAddress = ""
	cfg.Timeout = opts.Timeout
	switch {
	case opts.MaxRetries < 0:
		cfg.MaxRetries = 0
	case opts.MaxRetries > 0:
		cfg.MaxRetries = opts.MaxRetries
	}
	tr, ok := cfg.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected transport %T", ErrVaultConfig, cfg.HttpClient.Transport)
	}
	// Only the config decides whom we trust: VAULT_SKIP_VERIFY, VAULT_CACERT
	// and friends in the environment are ignored.
	tlsCfg := tr.TLSClientConfig.Clone()
	tlsCfg.InsecureSkipVerify = false
	tlsCfg.RootCAs = nil
	tlsCfg.ServerName = ""
	tlsCfg.Certificates = nil
	tlsCfg.MinVersion = tls.VersionTLS12
	if opts.CACertFile != "" {
		pool, err := loadCAFile(opts.CACertFile)
		if err != nil {
			return nil, err
		}
		tlsCfg.RootCAs = pool
	}
	tr.TLSClientConfig = tlsCfg

	client, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrVaultConfig, err)
	}
	client.ClearToken() // NewClient took $VAULT_TOKEN; only opts decide

	v := &Vault{client: client, opts: opts, logger: logger, reauth: make(chan struct{}, 1)}
	switch opts.Method {
	case VaultAuthToken:
		tok, err := v.readToken()
		if err != nil {
			return nil, err
		}
		client.SetToken(tok)
	case VaultAuthAppRole:
		if opts.RoleID == "" || opts.SecretIDFile == "" {
			return nil, fmt.Errorf("%w: approle needs role_id and secret_id_file", ErrVaultConfig)
		}
	case VaultAuthJWT, VaultAuthKubernetes:
		if opts.Role == "" || opts.JWTFile == "" {
			return nil, fmt.Errorf("%w: %s needs role and jwt_file", ErrVaultConfig, opts.Method)
		}
	default:
		return nil, fmt.Errorf("%w: unknown auth method %q", ErrVaultConfig, opts.Method)
	}
	return v, nil
}

// checkMount refuses mount names that would escape into another API path.
func checkMount(what, m string) error {
	if err := CheckPath(m); err != nil {
		return fmt.Errorf("%w: %s %q is not a plain path", ErrVaultConfig, what, m)
	}
	return nil
}

func loadCAFile(name string) (*x509.CertPool, error) {
	data, err := readSmallFile(name)
	if err != nil {
		return nil, fmt.Errorf("%w: ca_cert: %w", ErrVaultConfig, err)
	}
	certs, err := ParseCertificates(name, "ca_cert", string(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrVaultConfig, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// readSmallFile reads a credential file, bounded; errors name the file only.
func readSmallFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxCredentialFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxCredentialFileBytes)
	}
	return data, nil
}

// readCredential reads a one-line credential file (token, secret ID).
func readCredential(what, name string) (string, error) {
	data, err := readSmallFile(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrVaultConfig, what, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return "", fmt.Errorf("%w: %s: %s must hold exactly one value", ErrVaultConfig, what, name)
	}
	return s, nil
}

func (v *Vault) readToken() (string, error) {
	if v.opts.TokenFile != "" {
		return readCredential("token_file", v.opts.TokenFile)
	}
	if v.opts.Token == "" {
		return "", fmt.Errorf("%w: token auth needs token_file or VAULT_TOKEN", ErrVaultConfig)
	}
	return v.opts.Token, nil
}

// Client returns the authenticated API client, for PKI and Transit.
func (v *Vault) Client() *vault.Client { return v.client }

// Read returns the string fields of the latest version of the KV v2 secret
// at path. A missing (or deleted) secret wraps ErrNotFound; a field that is
// not a string wraps ErrInvalidSecret and names the field, never the value;
// any other failure wraps ErrUnavailable.
//
// It reads <mount>/data/<path> through the logical API rather than
// KVv2.Get, whose parse errors can quote the secret's data.
func (v *Vault) Read(ctx context.Context, path string) (map[string]string, error) {
	if err := CheckPath(path); err != nil {
		return nil, err
	}
	if err := v.ensureAuth(ctx); err != nil {
		return nil, fmt.Errorf("secrets: vault: %s: %w: %w", path, ErrUnavailable, err)
	}
	s, err := v.client.Logical().ReadWithContext(ctx, v.opts.KVMount+"/data/"+path)
	if err != nil {
		if isStatus(err, http.StatusForbidden) {
			v.requestReauth()
		}
		return nil, fmt.Errorf("secrets: vault: %s: %w: %w", path, ErrUnavailable, compact(err))
	}
	if s == nil || s.Data == nil || s.Data["data"] == nil {
		return nil, fmt.Errorf("secrets: vault: %s: %w", path, ErrNotFound)
	}
	raw, ok := s.Data["data"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: vault: %s: not a KV v2 secret (is %s a KV v2 mount?)", ErrInvalidSecret, path, v.opts.KVMount)
	}
	fields := make(map[string]string, len(raw))
	size := 0
	for name, val := range raw {
		str, ok := val.(string)
		if !ok {
			return nil, fmt.Errorf("%w: vault: %s field %s: value is %s, want a string", ErrInvalidSecret, path, name, jsonKind(val))
		}
		size += len(name) + len(str)
		fields[name] = str
	}
	if size > maxFileBytes {
		return nil, fmt.Errorf("%w: vault: %s: larger than %d bytes", ErrInvalidSecret, path, maxFileBytes)
	}
	return fields, nil
}

// jsonKind names a decoded JSON value's type without showing it.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}

// vaultError turns the API's multi-line ResponseError into one line
// ("vault: GET /v1/...: 403: permission denied"), keeping it in the chain.
type vaultError struct{ re *vault.ResponseError }

func (e vaultError) Error() string {
	msg := strings.Join(e.re.Errors, "; ")
	if e.re.RawError { // the body of something that is not Vault: do not echo it
		msg = "unparsable response"
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	if msg == "" {
		msg = http.StatusText(e.re.StatusCode)
	}
	return fmt.Sprintf("vault: %s %s: %d: %s", e.re.HTTPMethod, e.re.URL, e.re.StatusCode, msg)
}

func (e vaultError) Unwrap() error { return e.re }

// compact rewrites a ResponseError as a vaultError; other errors pass as they are.
func compact(err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return vaultError{re}
	}
	return err
}

func isStatus(err error, code int) bool {
	var re *vault.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

func (v *Vault) requestReauth() {
	select {
	case v.reauth <- struct{}{}:
	default:
	}
}

// ensureAuth logs in (AppRole, JWT, Kubernetes) if no login happened yet.
// The token method has its token from NewVault.
func (v *Vault) ensureAuth(ctx context.Context) error {
	if v.opts.Method == VaultAuthToken {
		return nil
	}
	_, err := v.login(ctx, false)
	return err
}

// login returns the current auth, logging in (AppRole) or looking the token
// up (token method, re-reading token_file) when force is set or nothing is
// known yet. The result describes the token for the lifetime watcher.
func (v *Vault) login(ctx context.Context, force bool) (*vault.Secret, error) {
	v.authMu.Lock()
	defer v.authMu.Unlock()
	if v.auth != nil && !force {
		return v.auth, nil
	}
	var s *vault.Secret
	var err error
	switch v.opts.Method {
	case VaultAuthAppRole:
		s, err = v.appRoleLogin(ctx)
	case VaultAuthJWT, VaultAuthKubernetes:
		s, err = v.jwtLogin(ctx)
	default:
		s, err = v.tokenLookup(ctx)
	}
	if err != nil {
		return nil, err
	}
	v.auth = s
	return s, nil
}

// tokenLookup re-reads the token (token_file may have been rewritten) and
// asks Vault for its TTL and renewability.
func (v *Vault) tokenLookup(ctx context.Context) (*vault.Secret, error) {
	tok, err := v.readToken()
	if err != nil {
		return nil, err
	}
	v.client.SetToken(tok)
	info, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("vault token lookup: %w", compact(err))
	}
	if info == nil {
		return nil, errors.New("vault token lookup: empty response")
	}
	ttl, err := info.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("vault token lookup: ttl: %w", err)
	}
	renewable, err := info.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("vault token lookup: renewable: %w", err)
	}
	return &vault.Secret{Auth: &vault.SecretAuth{
		ClientToken: tok, Renewable: renewable, LeaseDuration: int(ttl / time.Second),
	}}, nil
}

// appRoleLogin logs in at auth/<mount>/login and installs the new token.
func (v *Vault) appRoleLogin(ctx context.Context) (*vault.Secret, error) {
	lc, err := v.bareClient()
	if err != nil {
		return nil, err
	}
	secretID, err := v.secretID(ctx, lc)
	if err != nil {
		return nil, err
	}
	s, err := lc.Logical().WriteWithContext(ctx, "auth/"+v.opts.AppRoleMount+"/login", map[string]any{
		"role_id": v.opts.RoleID, "secret_id": secretID,
	})
	if err != nil {
		return nil, fmt.Errorf("vault approle login: %w", compact(err))
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, errors.New("vault approle login: no token in the response")
	}
	v.client.SetToken(s.Auth.ClientToken)
	v.logger.Info("vault approle login", "ttl", time.Duration(s.Auth.LeaseDuration)*time.Second,
		"renewable", s.Auth.Renewable, "policies", s.Auth.Policies)
	return s, nil
}

// bareClient is a token-less copy of the client for login and unwrapping,
// so those calls never change the shared client's token.
func (v *Vault) bareClient() (*vault.Client, error) {
	c, err := v.client.Clone()
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	return c, nil
}

// secretID reads secret_id_file and unwraps it if it holds a wrapping token
// (see Vault). Called with authMu held.
func (v *Vault) secretID(ctx context.Context, lc *vault.Client) (string, error) {
	raw, err := readCredential("secret_id_file", v.opts.SecretIDFile)
	if err != nil {
		return "", err
	}
	if v.wrapped != "" && raw == v.wrapped {
		return v.unwrap, nil // already unwrapped: a wrapping token works once
	}
	info, err := lc.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": raw})
	switch {
	case isStatus(err, http.StatusBadRequest):
		return raw, nil // Vault knows no such wrapping token: a plain secret ID
	case err != nil:
		return "", fmt.Errorf("vault wrapping lookup: %w", compact(err))
	case info == nil || info.Data == nil:
		return "", errors.New("vault wrapping lookup: empty response")
	}
	path, _ := info.Data["creation_path"].(string)
	if !v.isSecretIDPath(path) {
		return "", fmt.Errorf("secret_id_file holds a wrapping token created by %q, not by an approle secret-id endpoint: refused", path)
	}
	uc, err := v.bareClient()
	if err != nil {
		return "", err
	}
	uc.SetToken(raw) // unwrap authenticates with the wrapping token itself
	s, err := uc.Logical().UnwrapWithContext(ctx, raw)
	if err != nil {
		// Looked up a moment ago but cannot be unwrapped: someone else used it.
		err = compact(err)
		v.logger.Error("vault: wrapped secret ID could not be unwrapped; it may have been intercepted", "error", err)
		return "", fmt.Errorf("vault unwrap secret ID: %w", err)
	}
	var id string
	if s != nil {
		id, _ = s.Data["secret_id"].(string)
	}
	if id == "" {
		return "", errors.New("vault unwrap secret ID: no secret_id in the wrapped response")
	}
	v.wrapped, v.unwrap = raw, id
	v.logger.Info("vault: unwrapped the AppRole secret ID", "creation_path", path)
	return id, nil
}

// isSecretIDPath reports whether p is auth/<mount>/role/<name>/secret-id.
func (v *Vault) isSecretIDPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "auth/"+v.opts.AppRoleMount+"/role/")
	if !ok {
		return false
	}
	name, ok := strings.CutSuffix(rest, "/secret-id")
	return ok && name != "" && !strings.Contains(name, "/")
}

// Run keeps Vault auth alive until ctx ends: it logs in (AppRole) or looks
// the token up, renews it with the API's LifetimeWatcher, and logs in again
// (re-reading token_file for the token method) when renewal ends, the
// token's max TTL is reached, or a read is refused with 403. Failures are
// retried with backoff, from 1s up to 1m.
func (v *Vault) Run(ctx context.Context) {
	force := false
	backoff := time.Second
	for ctx.Err() == nil {
		s, err := v.login(ctx, force)
		if err != nil {
			v.logger.Warn("vault auth failed; retrying", "method", v.opts.Method, "retry_in", backoff, "error", err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, time.Minute)
			force = true
			continue
		}
		backoff = time.Second
		v.watch(ctx, s)
		force = true
	}
}

// watch returns when the token in s should be replaced, or ctx ends.
func (v *Vault) watch(ctx context.Context, s *vault.Secret) {
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	if !s.Auth.Renewable {
		var expiry <-chan time.Time
		if ttl > 0 { // replace at two thirds of its life
			t := time.NewTimer(ttl * 2 / 3)
			defer t.Stop()
			expiry = t.C
			v.logger.Info("vault token is not renewable; will log in again before it expires", "ttl", ttl)
		}
		select {
		case <-ctx.Done():
		case <-expiry:
		case <-v.reauth:
			v.logger.Warn("vault refused a read; logging in again")
		}
		return
	}
	w, err := v.client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: s})
	if err != nil {
		v.logger.Warn("vault lifetime watcher", "error", err)
		sleepCtx(ctx, time.Second)
		return
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.DoneCh():
			if err != nil {
				v.logger.Warn("vault token renewal ended; logging in again", "error", err)
			} else {
				v.logger.Info("vault token reached its max TTL; logging in again")
			}
			return
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				v.logger.Debug("vault token renewed", "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
			}
		case <-v.reauth:
			v.logger.Warn("vault refused a read; logging in again")
			return
		}
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
