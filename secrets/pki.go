package secrets

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// KindPKI is the SecretStatus.Kind of a PKI-issued certificate.
const KindPKI = "pki"

// PKIOptions name the Vault PKI role the listener certificate is issued from.
type PKIOptions struct {
	// Mount is the PKI secrets engine mount, e.g. pki.
	Mount string
	// Role is the PKI role to issue with.
	Role string
	// CommonName is the certificate's common name.
	CommonName string
	// TTL is the requested lifetime; zero leaves it to the role.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives issuance events; nil discards.
	Logger *slog.Logger
}

// PKICertificate is a TLS certificate issued from Vault's PKI engine
// (<mount>/issue/<role>) and re-issued once two thirds of its lifetime have
// passed. GetCertificate serves the current one; a new certificate swaps in
// atomically, so handshakes see either the old or the new pair.
type PKICertificate struct {
	v      *Vault
	opts   PKIOptions
	now    func() time.Time
	logger *slog.Logger
	cur    atomic.Pointer[issuedCert]

	mu         sync.Mutex // guards the status fields
	staleSince time.Time
	lastErr    string
}

type issuedCert struct {
	cert     *tls.Certificate
	issuedAt time.Time
	renewAt  time.Time
}

// NewPKICertificate returns a PKICertificate that issues through v. Nothing
// is issued until Issue or Run.
func NewPKICertificate(v *Vault, opts PKIOptions) (*PKICertificate, error) {
	if err := checkMount("pki mount", opts.Mount); err != nil {
		return nil, err
	}
	if err := CheckPath(opts.Role); err != nil || opts.CommonName == "" {
		return nil, fmt.Errorf("%w: pki needs a role and a common_name", ErrVaultConfig)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &PKICertificate{v: v, opts: opts, now: now, logger: logger}, nil
}

func (p *PKICertificate) path() string { return p.opts.Mount + "/issue/" + p.opts.Role }

// RenewAt is when a certificate issued at issuedAt and expiring at notAfter
// is replaced: after two thirds of the lifetime actually left to it. (Vault
// back-dates NotBefore, so NotBefore would renew too early.)
func RenewAt(issuedAt, notAfter time.Time) time.Time {
	life := notAfter.Sub(issuedAt)
	if life <= 0 {
		return issuedAt
	}
	return issuedAt.Add(life * 2 / 3)
}

// Issue requests a new certificate now and, if it is good, swaps it in. On
// failure the current certificate (if any) keeps being served.
func (p *PKICertificate) Issue(ctx context.Context) error {
	err := p.issue(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.staleSince.IsZero() {
			p.staleSince = p.now()
		}
		p.lastErr = err.Error()
		p.logger.Warn("listener certificate issuance failed; keeping the current one",
			"pki", p.path(), "loaded", p.cur.Load() != nil, "error", err)
		return err
	}
	p.staleSince, p.lastErr = time.Time{}, ""
	return nil
}

func (p *PKICertificate) issue(ctx context.Context) error {
	if err := p.v.ensureAuth(ctx); err != nil {
		return fmt.Errorf("secrets: vault pki %s: %w: %w", p.path(), ErrUnavailable, err)
	}
	req := map[string]any{"common_name": p.opts.CommonName}
	if p.opts.TTL > 0 {
		req["ttl"] = p.opts.TTL.String()
	}
	issuedAt := p.now()
	s, err := p.v.client.Logical().WriteWithContext(ctx, p.path(), req)
	if err != nil {
		return fmt.Errorf("secrets: vault pki %s: %w: %w", p.path(), ErrUnavailable, compact(err))
	}
	if s == nil || s.Data == nil {
		return fmt.Errorf("%w: vault pki %s: empty response", ErrInvalidSecret, p.path())
	}
	str := func(name string) string { v, _ := s.Data[name].(string); return v }
	chain, err := ParseCertificates(p.path(), "certificate", str("certificate"))
	if err != nil {
		return err
	}
	leaf := chain[0]
	// The chain sent to clients: leaf, then every issuer except self-signed roots.
	var issuers []string
	if raw, ok := s.Data["ca_chain"].([]any); ok && len(raw) > 0 {
		for _, c := range raw {
			if c, ok := c.(string); ok {
				issuers = append(issuers, c)
			}
		}
	} else if ca := str("issuing_ca"); ca != "" {
		issuers = append(issuers, ca)
	}
	for _, pemText := range issuers {
		certs, err := ParseCertificates(p.path(), "ca_chain", pemText)
		if err != nil {
			return err
		}
		for _, c := range certs {
			if !bytes.Equal(c.RawSubject, c.RawIssuer) || c.CheckSignatureFrom(c) != nil {
				chain = append(chain, c)
			}
		}
	}
	key, err := ParsePrivateKey(p.path(), "private_key", str("private_key"))
	if err != nil {
		return err
	}
	if err := checkKeyMatches(p.path(), leaf, key); err != nil {
		return err
	}
	if leaf.Subject.CommonName != p.opts.CommonName {
		return fmt.Errorf("%w: vault pki %s: issued for %q, want %q", ErrInvalidSecret, p.path(), leaf.Subject.CommonName, p.opts.CommonName)
	}
	if !leaf.NotAfter.After(issuedAt) {
		return fmt.Errorf("%w: vault pki %s: issued certificate is already expired", ErrInvalidSecret, p.path())
	}
	der := make([][]byte, len(chain))
	for i, c := range chain {
		der[i] = c.Raw
	}
	ic := &issuedCert{
		cert:     &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf},
		issuedAt: issuedAt,
		renewAt:  RenewAt(issuedAt, leaf.NotAfter),
	}
	p.cur.Store(ic)
	p.logger.Info("listener certificate issued", "pki", p.path(), "serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter, "renew_at", ic.renewAt)
	return nil
}

// GetCertificate serves the current certificate; it fits
// tls.Config.GetCertificate. Before the first issuance it fails with an
// error wrapping ErrNotLoaded.
func (p *PKICertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := p.cur.Load()
	if c == nil {
		return nil, notLoaded(p.path())
	}
	return c.cert, nil
}

// Status reports the certificate for /readyz, as a SecretStatus of kind pki
// whose path is <mount>/issue/<role>.
func (p *PKICertificate) Status() SecretStatus {
	st := SecretStatus{Path: p.path(), Kind: KindPKI}
	if c := p.cur.Load(); c != nil {
		st.Loaded, st.LoadedAt = true, c.issuedAt
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st.StaleSince, st.Error = p.staleSince, p.lastErr
	return st
}

// Run issues a certificate at once if none is held, then re-issues each at
// its RenewAt until ctx ends. Failures are retried with backoff (1s to 1m)
// while the current certificate keeps being served.
func (p *PKICertificate) Run(ctx context.Context) {
	backoff := time.Second
	for {
		var wait time.Duration
		if c := p.cur.Load(); c != nil {
			wait = c.renewAt.Sub(p.now())
		}
		if wait > 0 && !sleepCtx(ctx, wait) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if err := p.Issue(ctx); err != nil {
			if errors.Is(err, context.Canceled) || !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
	}
}
