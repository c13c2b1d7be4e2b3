package secrets

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Secret kinds, as reported in SecretStatus.Kind.
const (
	KindTrust    = "trust"
	KindUsers    = "users"
	KindIdentity = "identity"
	KindFields   = "fields"
)

// Manager holds every secret the configuration references, re-reads them on
// Refresh, and keeps the last good value of any secret whose read fails.
// Handles returned by Trust, Users, Identity and Fields are safe for
// concurrent use; each read sees one whole version of the secret.
type Manager struct {
	backend Backend
	logger  *slog.Logger
	now     func() time.Time

	refreshMu sync.Mutex // serializes Refresh (ticker and SIGHUP may race)

	mu      sync.Mutex // guards entries, index, hooks and every entry's status
	entries []*entry
	index   map[entryKey]*entry
	hooks   []func()
}

// AfterRefresh registers fn to run at the end of every Refresh, once every
// secret has been re-read: for state derived from several secrets (a
// route's revocation lists, checked against its trust sets).
func (m *Manager) AfterRefresh(fn func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hooks = append(m.hooks, fn)
}

type entryKey struct{ kind, path string }

type entry struct {
	kind, path string
	handle     any
	// load parses fields and, only if they are valid, swaps the handle's value.
	load func(fields map[string]string) error

	// status, guarded by Manager.mu
	loaded     bool
	loadedAt   time.Time
	staleSince time.Time
	lastErr    string
	digest     [sha256.Size]byte // of the last good fields, to log changes only
}

// SecretStatus describes one registered secret for /readyz. It never holds values.
type SecretStatus struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	// Loaded reports whether a good value is held (possibly stale).
	Loaded bool `json:"loaded"`
	// LoadedAt is when the held value was last read successfully.
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	// StaleSince is when reads started failing; zero while fresh.
	StaleSince time.Time `json:"stale_since,omitzero"`
	// Error is the last read or parse failure; empty while fresh.
	Error string `json:"error,omitempty"`
}

// NewManager returns a Manager reading from b. A nil logger discards logs; a
// nil now means time.Now.
func NewManager(b Backend, logger *slog.Logger, now func() time.Time) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Manager{backend: b, logger: logger, now: now, index: map[entryKey]*entry{}}
}

// register returns the existing handle for (kind, path) or creates one.
func register[H any](m *Manager, kind, path string, mk func() (H, func(map[string]string) error)) H {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := entryKey{kind, path}
	if e, ok := m.index[k]; ok {
		return e.handle.(H)
	}
	h, load := mk()
	e := &entry{kind: kind, path: path, handle: h, load: load}
	m.index[k] = e
	m.entries = append(m.entries, e)
	return h
}

// Trust registers a trust-anchor secret (field certificates) and returns its handle.
func (m *Manager) Trust(path string) *CertSet {
	return register(m, KindTrust, path, func() (*CertSet, func(map[string]string) error) {
		c := &CertSet{path: path}
		return c, c.load
	})
}

// Users registers a UsernameToken secret (username -> password fields).
func (m *Manager) Users(path string) *Passwords {
	return register(m, KindUsers, path, func() (*Passwords, func(map[string]string) error) {
		p := &Passwords{path: path}
		return p, p.load
	})
}

// Identity registers a signing identity (fields certificate and private_key).
func (m *Manager) Identity(path string) *IdentitySet {
	return register(m, KindIdentity, path, func() (*IdentitySet, func(map[string]string) error) {
		s := &IdentitySet{path: path}
		return s, s.load
	})
}

// Fields registers a secret used as raw fields (JWKS material, introspection
// client credentials) by packages that parse it themselves.
func (m *Manager) Fields(path string) *FieldSet {
	return register(m, KindFields, path, func() (*FieldSet, func(map[string]string) error) {
		f := &FieldSet{path: path}
		return f, f.load
	})
}

// Refresh re-reads every registered secret. A secret whose read or parse
// fails keeps its last good value and is marked stale. The returned error
// joins every failure (nil when all succeeded).
func (m *Manager) Refresh(ctx context.Context) error {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()

	m.mu.Lock()
	entries := slices.Clone(m.entries)
	m.mu.Unlock()

	type read struct {
		fields map[string]string
		err    error
	}
	reads := map[string]read{} // one backend read per path per refresh
	var errs []error
	for _, e := range entries {
		r, ok := reads[e.path]
		if !ok {
			r.fields, r.err = m.backend.Read(ctx, e.path)
			reads[e.path] = r
		}
		err := r.err
		if err == nil {
			err = e.load(r.fields)
		}
		m.record(e, r.fields, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %s (%s): %w", e.path, e.kind, err))
		}
	}
	m.mu.Lock()
	hooks := slices.Clone(m.hooks)
	m.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
	return errors.Join(errs...)
}

func (m *Manager) record(e *entry, fields map[string]string, err error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if e.staleSince.IsZero() {
			e.staleSince = now
		}
		e.lastErr = err.Error()
		m.logger.Warn("secret refresh failed; keeping last good value",
			"secret", e.path, "kind", e.kind, "loaded", e.loaded, "error", err)
		return
	}
	d := digest(fields)
	switch {
	case !e.loaded:
		m.logger.Info("secret loaded", "secret", e.path, "kind", e.kind)
	case d != e.digest:
		m.logger.Info("secret changed", "secret", e.path, "kind", e.kind)
	case !e.staleSince.IsZero():
		m.logger.Info("secret fresh again", "secret", e.path, "kind", e.kind)
	}
	e.loaded, e.loadedAt, e.staleSince, e.lastErr, e.digest = true, now, time.Time{}, "", d
}

// digest fingerprints fields so changes can be logged without keeping or
// logging the values.
func digest(fields map[string]string) [sha256.Size]byte {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	var n [8]byte
	for _, k := range keys {
		for _, s := range []string{k, fields[k]} {
			binary.BigEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Status reports every registered secret, in registration order.
func (m *Manager) Status() []SecretStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]SecretStatus, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, SecretStatus{
			Path: e.path, Kind: e.kind, Loaded: e.loaded,
			LoadedAt: e.loadedAt, StaleSince: e.staleSince, Error: e.lastErr,
		})
	}
	return out
}

// Run calls Refresh every interval until ctx ends. It does not refresh at
// once: call Refresh first to learn about startup failures. Failures are
// logged by Refresh.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = m.Refresh(ctx)
		}
	}
}

func notLoaded(path string) error { return fmt.Errorf("secrets: %s: %w", path, ErrNotLoaded) }

func field(path string, fields map[string]string, name string) (string, error) {
	v, ok := fields[name]
	if !ok || v == "" {
		return "", fmt.Errorf("secrets: %s field %s: %w", path, name, ErrNotFound)
	}
	return v, nil
}

// CertSet is a trust-anchor secret: field certificates, PEM. It satisfies
// wssec.CertificateSource.
type CertSet struct {
	path string
	v    atomic.Pointer[[]*x509.Certificate]
}

func (c *CertSet) load(fields map[string]string) error {
	pem, err := field(c.path, fields, "certificates")
	if err != nil {
		return err
	}
	certs, err := ParseCertificates(c.path, "certificates", pem)
	if err != nil {
		return err
	}
	c.v.Store(&certs)
	return nil
}

// Certificates returns the current set; an error wrapping ErrNotLoaded if it never loaded.
func (c *CertSet) Certificates() ([]*x509.Certificate, error) {
	p := c.v.Load()
	if p == nil {
		return nil, notLoaded(c.path)
	}
	return slices.Clone(*p), nil // callers may not append into our copy
}

// Passwords is a UsernameToken secret: one field per user. It satisfies
// wssec.PasswordSource.
type Passwords struct {
	path string
	v    atomic.Pointer[map[string]string]
}

func (p *Passwords) load(fields map[string]string) error {
	users := make(map[string]string, len(fields))
	for user, pw := range fields {
		if pw == "" { // an empty password would accept an empty digest input
			return fmt.Errorf("%w: %s: user %q has an empty password", ErrInvalidSecret, p.path, user)
		}
		users[user] = pw
	}
	p.v.Store(&users)
	return nil
}

// Password returns the user's password and whether the user exists; an
// error wrapping ErrNotLoaded if the secret never loaded.
func (p *Passwords) Password(user string) (string, bool, error) {
	m := p.v.Load()
	if m == nil {
		return "", false, notLoaded(p.path)
	}
	pw, ok := (*m)[user]
	return pw, ok, nil
}

// IdentitySet is a signing identity: certificate (PEM chain, leaf first) and
// private_key (PEM) that must belong to the leaf.
type IdentitySet struct {
	path string
	v    atomic.Pointer[identity]
}

type identity struct {
	chain []*x509.Certificate
	key   crypto.Signer
}

func (s *IdentitySet) load(fields map[string]string) error {
	certPEM, err := field(s.path, fields, "certificate")
	if err != nil {
		return err
	}
	keyPEM, err := field(s.path, fields, "private_key")
	if err != nil {
		return err
	}
	chain, err := ParseCertificates(s.path, "certificate", certPEM)
	if err != nil {
		return err
	}
	key, err := ParsePrivateKey(s.path, "private_key", keyPEM)
	if err != nil {
		return err
	}
	if err := checkKeyMatches(s.path, chain[0], key); err != nil {
		return err
	}
	s.v.Store(&identity{chain: chain, key: key})
	return nil
}

// Identity returns the chain (leaf first) and its key as one consistent
// pair; an error wrapping ErrNotLoaded if the secret never loaded.
func (s *IdentitySet) Identity() (chain []*x509.Certificate, key crypto.Signer, err error) {
	id := s.v.Load()
	if id == nil {
		return nil, nil, notLoaded(s.path)
	}
	return slices.Clone(id.chain), id.key, nil
}

// FieldSet is a secret read as raw fields by a package that parses them itself.
type FieldSet struct {
	path string
	v    atomic.Pointer[map[string]string]
}

func (f *FieldSet) load(fields map[string]string) error {
	cp := make(map[string]string, len(fields))
	for k, v := range fields {
		cp[k] = v
	}
	f.v.Store(&cp)
	return nil
}

// Fields returns a copy of all fields; an error wrapping ErrNotLoaded if never loaded.
func (f *FieldSet) Fields() (map[string]string, error) {
	p := f.v.Load()
	if p == nil {
		return nil, notLoaded(f.path)
	}
	cp := make(map[string]string, len(*p))
	for k, v := range *p {
		cp[k] = v
	}
	return cp, nil
}

// Field returns one field; an error wrapping ErrNotFound if absent or empty,
// ErrNotLoaded if the secret never loaded.
func (f *FieldSet) Field(name string) (string, error) {
	p := f.v.Load()
	if p == nil {
		return "", notLoaded(f.path)
	}
	return field(f.path, *p, name)
}
