package wssec

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Revocation failures.
var (
	// ErrCertificateRevoked: a CRL lists the certificate, or the deny list
	// names it. Wrapped with ErrInvalidToken (wsse:InvalidSecurityToken).
	ErrCertificateRevoked = errors.New("wssec: certificate is revoked or denied")
	// ErrRevocationUnavailable: the source cannot tell (a CRL past its
	// NextUpdate, or one that does not verify). Not the client's fault:
	// wrapped with ErrTrustUnavailable, and the gateway reports the route
	// not ready.
	ErrRevocationUnavailable = errors.New("wssec: certificate revocation status is not available")
)

// RevocationSource says whether a certificate has been withdrawn. The pure
// core consumes it; the gateway builds it from secrets (NewRevocation) and
// swaps it on refresh. Implementations must be safe for concurrent use.
type RevocationSource interface {
	// CheckRevocation returns nil when cert may be used at now, an error
	// wrapping ErrCertificateRevoked when it is revoked or denied, and one
	// wrapping ErrRevocationUnavailable when the source cannot say.
	CheckRevocation(cert *x509.Certificate, now time.Time) error
}

// CheckRevocation asks src about cert and maps the answer onto the
// sentinels FaultCode and ClientError know: revoked is
// wsse:InvalidSecurityToken, unknown is the gateway's problem (a 503),
// never an acceptance.
func CheckRevocation(src RevocationSource, cert *x509.Certificate, now time.Time) error {
	err := src.CheckRevocation(cert, now)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrCertificateRevoked):
		return classify(ErrInvalidToken, err)
	case errors.Is(err, ErrRevocationUnavailable):
		return fmt.Errorf("%w: %w", ErrTrustUnavailable, err)
	}
	return fmt.Errorf("%w: %w: %v", ErrTrustUnavailable, ErrRevocationUnavailable, err)
}

// RevocationConfig is what a Revocation is built from.
type RevocationConfig struct {
	// CRLs are parsed certificate revocation lists (see ParseCRLs).
	CRLs []*x509.RevocationList
	// Issuers are the certificates allowed to sign CRLs: the route's trust
	// sets. A CRL is used only if one of them, with the CRL's issuer name,
	// verifies its signature.
	Issuers []*x509.Certificate
	// Deny lists certificates refused whatever their chain.
	Deny []*x509.Certificate
	// DenySHA256 lists SHA-256 thumbprints (of the DER) refused likewise.
	DenySHA256 [][32]byte
}

// Revocation is an immutable RevocationSource: verified CRLs and a deny
// list. Build a new one on every refresh.
type Revocation struct {
	crls       []verifiedCRL
	deny       map[[32]byte]bool
	nextUpdate time.Time // the earliest NextUpdate; zero when there is no CRL
	nextIssuer string
	broken     error // why the source cannot answer, fixed at build time
}

type verifiedCRL struct {
	rawIssuer []byte
	serials   map[string]bool // big.Int.String() of revoked serial numbers
}

// NewRevocation verifies the CRLs against cfg.Issuers and indexes them.
//
// A CRL that does not verify (unknown issuer, bad signature) or has no
// NextUpdate makes the whole source report ErrRevocationUnavailable, and
// NewRevocation returns that error too. This fails closed on purpose: the
// operator configured the CRL to withdraw certificates; ignoring it would
// silently keep every certificate it lists working, while refusing makes
// the route not ready, which is loud and is fixed by correcting the secret.
func NewRevocation(cfg RevocationConfig) (*Revocation, error) {
	r := &Revocation{deny: make(map[[32]byte]bool, len(cfg.Deny)+len(cfg.DenySHA256))}
	for _, c := range cfg.Deny {
		r.deny[sha256.Sum256(c.Raw)] = true
	}
	for _, fp := range cfg.DenySHA256 {
		r.deny[fp] = true
	}
	var errs []error
	for i, crl := range cfg.CRLs {
		if crl == nil {
			continue
		}
		if err := verifyCRL(crl, cfg.Issuers); err != nil {
			errs = append(errs, fmt.Errorf("CRL %d (%s): %w", i, crl.Issuer, err))
			continue
		}
		if crl.NextUpdate.IsZero() {
			errs = append(errs, fmt.Errorf("CRL %d (%s): no nextUpdate", i, crl.Issuer))
			continue
		}
		v := verifiedCRL{rawIssuer: crl.RawIssuer, serials: make(map[string]bool, len(crl.RevokedCertificateEntries))}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber != nil {
				v.serials[e.SerialNumber.String()] = true
			}
		}
		r.crls = append(r.crls, v)
		if r.nextUpdate.IsZero() || crl.NextUpdate.Before(r.nextUpdate) {
			r.nextUpdate, r.nextIssuer = crl.NextUpdate, crl.Issuer.String()
		}
	}
	if len(errs) > 0 {
		r.broken = fmt.Errorf("%w: %w", ErrRevocationUnavailable, errors.Join(errs...))
		return r, r.broken
	}
	return r, nil
}

func verifyCRL(crl *x509.RevocationList, issuers []*x509.Certificate) error {
	var last error = errors.New("no trusted issuer with its issuer name")
	for _, c := range issuers {
		if !bytes.Equal(c.RawSubject, crl.RawIssuer) {
			continue
		}
		if last = crl.CheckSignatureFrom(c); last == nil {
			return nil
		}
	}
	return fmt.Errorf("signature does not verify: %v", last)
}

// Ready reports whether the source can answer at now: every CRL verified
// and none past its NextUpdate. The gateway turns an error into a
// readiness failure for the routes that use the source.
func (r *Revocation) Ready(now time.Time) error {
	if r.broken != nil {
		return r.broken
	}
	if !r.nextUpdate.IsZero() && now.After(r.nextUpdate) {
		return fmt.Errorf("%w: the CRL of %s is stale since %s", ErrRevocationUnavailable,
			r.nextIssuer, r.nextUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}

// CheckRevocation implements RevocationSource.
func (r *Revocation) CheckRevocation(cert *x509.Certificate, now time.Time) error {
	if err := r.Ready(now); err != nil {
		return err
	}
	if r.deny[sha256.Sum256(cert.Raw)] {
		return fmt.Errorf("%w: certificate %s is on the deny list", ErrCertificateRevoked, cert.Subject)
	}
	serial := cert.SerialNumber.String()
	for _, crl := range r.crls {
		if bytes.Equal(crl.rawIssuer, cert.RawIssuer) && crl.serials[serial] {
			return fmt.Errorf("%w: certificate %s serial %s is revoked by its issuer's CRL", ErrCertificateRevoked,
				cert.Subject, serial)
		}
	}
	return nil
}

// ParseCRLs reads CRLs from PEM ("X509 CRL" blocks) or a single DER CRL.
func ParseCRLs(data []byte) ([]*x509.RevocationList, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		crl, err := x509.ParseRevocationList(data)
		if err != nil {
			return nil, err
		}
		return []*x509.RevocationList{crl}, nil
	}
	var out []*x509.RevocationList
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("unexpected PEM block %q in a CRL", block.Type)
		}
		crl, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, crl)
	}
	if len(out) == 0 {
		return nil, errors.New("no X509 CRL PEM block")
	}
	return out, nil
}

// ParseThumbprints reads SHA-256 thumbprints, hex, one a line; colons and
// blank lines are ignored, every bad line is reported.
func ParseThumbprints(text string) ([][32]byte, error) {
	var out [][32]byte
	var errs []error
	for i, line := range strings.Split(text, "\n") {
		line = strings.ReplaceAll(strings.TrimSpace(line), ":", "")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("line %d: not a hex SHA-256 thumbprint", i+1))
			continue
		}
		out = append(out, [32]byte(b))
	}
	return out, errors.Join(errs...)
}

// RevocationSecrets is what the route's revocation secrets hold, as read:
// CRLs (PEM or DER, one entry per secret), denied certificates (PEM) and
// denied SHA-256 thumbprints (hex, one a line).
type RevocationSecrets struct {
	CRLs             [][]byte
	DenyCertificates []byte
	DenySHA256       string
}

// BuildRevocation parses secrets and builds a Revocation whose CRLs must
// verify against issuers. Every problem is reported, joined; the
// Revocation is returned even then, answering ErrRevocationUnavailable, so
// that a bad refresh fails closed instead of keeping a stale list.
func BuildRevocation(secrets RevocationSecrets, issuers []*x509.Certificate) (*Revocation, error) {
	var errs []error
	cfg := RevocationConfig{Issuers: issuers}
	for i, data := range secrets.CRLs {
		crls, err := ParseCRLs(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("crl %d: %w", i, err))
			continue
		}
		cfg.CRLs = append(cfg.CRLs, crls...)
	}
	for rest := secrets.DenyCertificates; len(bytes.TrimSpace(rest)) > 0; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			errs = append(errs, errors.New("deny certificates: not PEM"))
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			errs = append(errs, fmt.Errorf("deny certificates: %w", err))
			continue
		}
		cfg.Deny = append(cfg.Deny, c)
	}
	fps, err := ParseThumbprints(secrets.DenySHA256)
	if err != nil {
		errs = append(errs, fmt.Errorf("deny sha256: %w", err))
	}
	cfg.DenySHA256 = fps
	r, err := NewRevocation(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		err := fmt.Errorf("%w: %w", ErrRevocationUnavailable, errors.Join(errs...))
		r.broken = err
		return r, err
	}
	return r, nil
}

// SwappableRevocation is the RevocationSource a route holds while the
// gateway refreshes it: Store a new Revocation on every secrets refresh
// (and SIGHUP), and verifications see it at once, without a restart.
// Until the first Store it answers ErrRevocationUnavailable.
type SwappableRevocation struct {
	cur atomic.Pointer[Revocation]
}

// Store replaces the current lists.
func (s *SwappableRevocation) Store(r *Revocation) { s.cur.Store(r) }

// CheckRevocation implements RevocationSource.
func (s *SwappableRevocation) CheckRevocation(cert *x509.Certificate, now time.Time) error {
	r := s.cur.Load()
	if r == nil {
		return fmt.Errorf("%w: not loaded yet", ErrRevocationUnavailable)
	}
	return r.CheckRevocation(cert, now)
}

// Ready reports whether the current lists can answer at now (see
// Revocation.Ready); the gateway's readiness probe calls it.
func (s *SwappableRevocation) Ready(now time.Time) error {
	r := s.cur.Load()
	if r == nil {
		return fmt.Errorf("%w: not loaded yet", ErrRevocationUnavailable)
	}
	return r.Ready(now)
}
