package gateway

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"wsgate/config"
	"wsgate/secrets"
	"wsgate/soap"
	"wsgate/wssec"
)

// readyCheck is a route readiness condition beyond its secrets having
// loaded: a revocation list past its nextUpdate makes the route not ready.
type readyCheck struct {
	route, what string
	check       func(now time.Time) error
}

// secureVerifier completes a soap route's verifier with the route's
// decryption, SAML, revocation and forward_unsigned_headers settings. Its
// secrets load on the manager's next Refresh, like the rest of the route's.
func secureVerifier(env *routeEnv, r *config.Route, v *wssec.Verifier) error {
	s := r.SOAP
	for _, h := range s.ForwardUnsignedHeaders {
		q, err := config.ParseHeaderQName(h)
		if err != nil {
			return fmt.Errorf("soap.forward_unsigned_headers: %w", err)
		}
		v.Policy.ForwardUnsignedHeaders = append(v.Policy.ForwardUnsignedHeaders,
			wssec.HeaderName{Namespace: q.Namespace, Local: q.Local})
	}
	if d := s.Decrypt; d != nil {
		id, err := decryptionIdentity(env, d)
		if err != nil {
			return err
		}
		parts := make([]wssec.Part, 0, len(d.RequireEncrypted))
		for _, p := range d.RequireEncrypted {
			parts = append(parts, wssec.Part(p))
		}
		v.Policy.Decrypt = &wssec.DecryptPolicy{Identity: id, RequireEncrypted: parts,
			AllowRSA15: d.Algorithms.AllowRSA15, AllowCBC: d.Algorithms.AllowCBC}
	}
	trustSets := []*secrets.CertSet{env.secrets.Trust(s.Trust)}
	if sm := s.SAML; sm != nil {
		trust := env.secrets.Trust(sm.Trust)
		trustSets = append(trustSets, trust)
		v.SAML = &wssec.SAMLPolicy{
			Trust:        trust,
			Audience:     slices.Clone(sm.Audience),
			Confirmation: slices.Clone(sm.Confirmation),
			Required:     sm.Required,
			Skew:         s.Timestamp.FutureSkew.D(),
			AllowSHA1:    s.Algorithms.AllowSHA1,
		}
		if err := v.SAML.Check(); err != nil {
			return fmt.Errorf("soap.saml: %w", err)
		}
	}
	if rv := s.Revocation; rv != nil {
		src := newRevocationSource(env.secrets, rv, trustSets)
		v.Revocation = src.swap // message signers and, through the verifier, SAML issuers
		if env.ready != nil {
			*env.ready = append(*env.ready, readyCheck{route: r.Name, what: "revocation", check: src.swap.Ready})
		}
	}
	return nil
}

// revocationSource rebuilds a route's revocation lists after every secrets
// refresh (and so on SIGHUP) from the crl and deny secrets, the CRLs
// checked against the route's trust sets, and swaps them in: a change in
// Vault takes effect without a restart. A refresh whose lists do not
// parse or verify stores a source that fails closed (503, not ready).
type revocationSource struct {
	swap  *wssec.SwappableRevocation
	crls  []*secrets.FieldSet
	deny  *secrets.FieldSet // nil without deny
	trust []*secrets.CertSet
}

func newRevocationSource(mgr *secrets.Manager, rv *config.Revocation, trust []*secrets.CertSet) *revocationSource {
	src := &revocationSource{swap: &wssec.SwappableRevocation{}, trust: trust}
	for _, p := range rv.CRL {
		src.crls = append(src.crls, mgr.Fields(p))
	}
	if rv.Deny != "" {
		src.deny = mgr.Fields(rv.Deny)
	}
	mgr.AfterRefresh(src.rebuild)
	return src
}

// rebuild builds the lists from the secrets as they are now. Until every
// secret has loaded it stores nothing: the source answers unavailable.
func (s *revocationSource) rebuild() {
	var in wssec.RevocationSecrets
	for _, f := range s.crls {
		crl, err := f.Field("crl")
		if err != nil {
			s.swap.Store(brokenRevocation(err))
			return
		}
		in.CRLs = append(in.CRLs, []byte(crl))
	}
	if s.deny != nil {
		fields, err := s.deny.Fields()
		if err != nil {
			s.swap.Store(brokenRevocation(err))
			return
		}
		in.DenyCertificates, in.DenySHA256 = []byte(fields["certificates"]), fields["sha256"]
	}
	var issuers []*x509.Certificate
	for _, t := range s.trust {
		certs, err := t.Certificates()
		if err != nil && len(s.crls) > 0 {
			s.swap.Store(brokenRevocation(err))
			return
		}
		issuers = append(issuers, certs...)
	}
	r, _ := wssec.BuildRevocation(in, issuers) // on error r fails closed
	s.swap.Store(r)
}

// brokenRevocation is a source that fails closed with err.
func brokenRevocation(err error) *wssec.Revocation {
	r, _ := wssec.BuildRevocation(wssec.RevocationSecrets{CRLs: [][]byte{[]byte("unavailable: " + err.Error())}}, nil)
	return r
}

// decryptionIdentity is a route's decryption key pair: the identity
// secret's certificate and private key, or its certificate with a Vault
// Transit RSA key that never leaves Vault.
func decryptionIdentity(env *routeEnv, d *config.Decrypt) (wssec.DecryptionIdentity, error) {
	if d.TransitKey == "" {
		return &kvDecryption{set: env.secrets.Identity(d.Identity)}, nil
	}
	if env.vault == nil {
		return nil, errors.New("soap.decrypt.transit_key needs secrets.backend: vault")
	}
	now := env.now
	if now == nil {
		now = time.Now
	}
	return &transitDecryption{path: d.Identity, fields: env.secrets.Fields(d.Identity), vault: env.vault, key: d.TransitKey, now: now}, nil
}

// kvDecryption is a decryption identity held in a KV secret. Until it
// loads, Certificate is nil and verification fails as the gateway's (503).
type kvDecryption struct{ set *secrets.IdentitySet }

func (k *kvDecryption) Certificate() *x509.Certificate {
	chain, _, err := k.set.Identity()
	if err != nil {
		return nil
	}
	return chain[0]
}

func (k *kvDecryption) Decrypter() crypto.Decrypter {
	_, key, err := k.set.Identity()
	if err != nil {
		return nil
	}
	d, _ := key.(crypto.Decrypter)
	return d
}

// transitDecryption pairs the identity secret's certificate with a Vault
// Transit decrypter, made on first use and retried on failure so that
// Vault being down at start-up makes the route answer 503 rather than
// stopping the gateway.
type transitDecryption struct {
	path   string
	fields *secrets.FieldSet
	vault  *secrets.Vault
	key    string

	now func() time.Time

	mu    sync.Mutex
	dec   *secrets.TransitDecrypter
	pem   string
	cert  *x509.Certificate
	tried time.Time // last key load that found no match: retried at most every transitRetry
}

// transitRetry spaces key loads while the certificate matches no Transit
// key, so a misconfiguration does not become one Vault read per request.
const transitRetry = 30 * time.Second

func (t *transitDecryption) current() (*x509.Certificate, *secrets.TransitDecrypter) {
	pem, err := t.fields.Field("certificate")
	if err != nil {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if pem != t.pem || t.cert == nil {
		chain, err := secrets.ParseCertificates(t.path, "certificate", pem)
		if err != nil {
			return nil, nil
		}
		t.pem, t.cert = pem, chain[0]
	}
	// A new certificate for a rotated key: load the key again, so the
	// decrypter follows the certificate without a restart.
	if t.dec == nil || !publicKeyEqual(t.cert.PublicKey, t.dec.Public()) {
		now := t.now()
		if now.Sub(t.tried) < transitRetry {
			return t.cert, t.dec // nil or mismatched: the gateway's failure (503)
		}
		t.tried = now
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dec, err := secrets.NewTransitDecrypter(ctx, t.vault, "", t.key)
		if err != nil {
			return nil, nil
		}
		t.dec = dec
	}
	return t.cert, t.dec
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func (t *transitDecryption) Certificate() *x509.Certificate {
	c, _ := t.current()
	return c
}

func (t *transitDecryption) Decrypter() crypto.Decrypter {
	_, d := t.current()
	if d == nil {
		return nil
	}
	return transitDecrypter{d}
}

// transitDecrypter maps the Transit decrypter's failures onto wssec's
// sentinels: Vault unreachable is the gateway's, parameters Transit cannot
// do are an unsupported algorithm, anything else a failed decryption.
type transitDecrypter struct{ d *secrets.TransitDecrypter }

func (t transitDecrypter) Public() crypto.PublicKey { return t.d.Public() }

func (t transitDecrypter) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	out, err := t.d.Decrypt(rand, msg, opts)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, secrets.ErrTransitUnsupported):
		return nil, fmt.Errorf("%w: %w", wssec.ErrUnsupportedAlgorithm, err)
	case errors.Is(err, secrets.ErrUnavailable):
		return nil, fmt.Errorf("%w: %w", wssec.ErrDecryptionUnavailable, err)
	}
	return nil, err
}

// certificateSource is a certificate-only secret (field certificate), for
// encrypt_response and bridge.encrypt: the leaf, parsed once per change.
type certificateSource struct {
	path   string
	fields *secrets.FieldSet

	mu   sync.Mutex
	pem  string
	cert *x509.Certificate
}

func newCertificateSource(mgr *secrets.Manager, path string) *certificateSource {
	return &certificateSource{path: path, fields: mgr.Fields(path)}
}

// Certificate returns the secret's leaf certificate, which must hold an RSA key.
func (c *certificateSource) Certificate() (*x509.Certificate, error) {
	pem, err := c.fields.Field("certificate")
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if pem != c.pem || c.cert == nil {
		chain, err := secrets.ParseCertificates(c.path, "certificate", pem)
		if err != nil {
			return nil, err
		}
		if _, ok := chain[0].PublicKey.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("%w: %s: certificate: encryption needs an RSA key", secrets.ErrInvalidSecret, c.path)
		}
		c.pem, c.cert = pem, chain[0]
	}
	return c.cert, nil
}

// secureSOAPOptions sets the soap edge's encrypt_response and
// forward_attributes from the route's config.
func secureSOAPOptions(env *routeEnv, r *config.Route, so *soap.Options) {
	s := r.SOAP
	if e := s.EncryptResponse; e != nil {
		so.EncryptResponse = newCertificateSource(env.secrets, e.Certificate)
		so.Now = env.now
		if so.ResponseTTL == 0 {
			so.ResponseTTL = s.Timestamp.TTL.D()
		}
	}
	if s.SAML != nil && len(s.SAML.ForwardAttributes) > 0 {
		so.ForwardAttributes = s.SAML.ForwardAttributes
	}
}

// soapSecuritySecrets are the secret paths of a soap route's decrypt,
// encrypt_response, saml and revocation settings (for /readyz).
func soapSecuritySecrets(s *config.SOAP) []string {
	var out []string
	if s.Decrypt != nil {
		out = append(out, s.Decrypt.Identity)
	}
	if s.EncryptResponse != nil {
		out = append(out, s.EncryptResponse.Certificate)
	}
	if s.SAML != nil {
		out = append(out, s.SAML.Trust)
	}
	if s.Revocation != nil {
		out = append(out, s.Revocation.CRL...)
		out = append(out, s.Revocation.Deny)
	}
	return out
}
