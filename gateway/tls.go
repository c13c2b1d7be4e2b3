package gateway

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"wsgate/config"
	"wsgate/proxy"
	"wsgate/secrets"
)

// tlsCipherSuites are the TLS 1.2 suites offered: ECDHE key exchange (forward
// secrecy) with AEAD ciphers only; no RSA key exchange, no CBC, no 3DES.
// TLS 1.3 suites are not configurable in Go and are all AEAD.
var tlsCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// getCertFunc serves the listener certificate for one handshake.
type getCertFunc func(*tls.ClientHelloInfo) (*tls.Certificate, error)

// listenerTLS is one configuration's listener TLS state: where the
// certificate comes from and, with mTLS, the client CA bundle. The
// listener's tls.Config asks the current gateway for it on every handshake,
// so a refreshed secret or a reloaded config applies to new connections
// without restarting the listener.
type listenerTLS struct {
	getCert  getCertFunc
	clientCA *secrets.CertSet // nil: no client certificates asked for
	pki      *pkiHandle       // set with tls.pki
	now      func() time.Time

	cached atomic.Pointer[clientCAConfig]
}

// clientCAConfig is the handshake config built for one version of the CA bundle.
type clientCAConfig struct {
	cas []*x509.Certificate
	cfg *tls.Config
}

// pkiHandle is a running tls.pki certificate (issued, then renewed, by
// Vault's PKI engine). Reloads keep it while tls.pki and the Vault backend
// are unchanged.
type pkiHandle struct {
	key   config.PKI
	vault *secrets.Vault
	cert  *secrets.PKICertificate
	stop  func()
}

// newListenerTLS builds the listener TLS state of cfg, or nil when tls is
// absent. prev is the state in service, whose tls.pki certificate is kept
// when unchanged.
func newListenerTLS(cfg *config.Config, mgr *secrets.Manager, be *backend, prev *listenerTLS,
	logger *slog.Logger, now func() time.Time) (*listenerTLS, error) {
	t := cfg.TLS
	if t == nil {
		return nil, nil
	}
	l := &listenerTLS{now: now}
	switch {
	case t.Secret != "":
		l.getCert = identityCertificate(mgr.Identity(t.Secret))
	case t.PKI != nil:
		if be == nil || be.vault == nil {
			return nil, errors.New("tls.pki needs secrets.backend: vault")
		}
		if prev != nil && prev.pki != nil && prev.pki.key == *t.PKI && prev.pki.vault == be.vault {
			l.pki = prev.pki
		} else {
			c, stop, err := newVaultPKI(context.Background(), be.vault, t.PKI, logger)
			if err != nil {
				return nil, err
			}
			l.pki = &pkiHandle{key: *t.PKI, vault: be.vault, cert: c, stop: stop}
		}
		l.getCert = l.pki.cert.GetCertificate
	default:
		return nil, errors.New("tls: neither secret nor pki is set")
	}
	if t.ClientCA != "" {
		l.clientCA = mgr.Trust(t.ClientCA)
	}
	return l, nil
}

// identityCertificate serves the certificate and key of an identity secret,
// rebuilding the tls.Certificate only when the secret's value changes.
func identityCertificate(id *secrets.IdentitySet) getCertFunc {
	type cached struct {
		leaf *x509.Certificate
		key  crypto.Signer
		cert *tls.Certificate
	}
	var cache atomic.Pointer[cached]
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		chain, key, err := id.Identity()
		if err != nil {
			return nil, err // never loaded: the handshake fails, nothing is served in clear
		}
		if c := cache.Load(); c != nil && c.leaf == chain[0] && c.key == key {
			return c.cert, nil
		}
		cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
		for _, c := range chain {
			cert.Certificate = append(cert.Certificate, c.Raw)
		}
		cache.Store(&cached{leaf: chain[0], key: key, cert: cert})
		return cert, nil
	}
}

// baseTLSConfig is the config every handshake starts from.
func baseTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tlsCipherSuites,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// listenerConfig is the proxy listener's tls.Config. cur returns the
// gateway now in service; its listenerTLS decides each handshake.
func listenerConfig(cur func() *generation) *tls.Config {
	c := baseTLSConfig()
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		l := cur().tls
		if l == nil {
			return nil, errors.New("tls: the current configuration has no tls section")
		}
		return l.configForClient()
	}
	return c
}

// configForClient returns the handshake config: the listener certificate
// and, with mTLS, client certificates required and verified against the
// current CA bundle. A bundle that never loaded fails the handshake.
func (l *listenerTLS) configForClient() (*tls.Config, error) {
	if l.clientCA == nil {
		c := baseTLSConfig()
		c.GetCertificate = l.getCert
		c.Time = l.now
		return c, nil
	}
	cas, err := l.clientCA.Certificates()
	if err != nil {
		return nil, fmt.Errorf("tls: client CA bundle: %w", err)
	}
	if c := l.cached.Load(); c != nil && slices.Equal(c.cas, cas) {
		return c.cfg, nil
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	c := baseTLSConfig()
	c.GetCertificate = l.getCert
	c.Time = l.now
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.ClientCAs = pool
	l.cached.Store(&clientCAConfig{cas: cas, cfg: c})
	return c, nil
}

// clientSubject is the subject DN of the request's verified client
// certificate, or "" when there is none.
func clientSubject(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	return r.TLS.VerifiedChains[0][0].Subject.String()
}

// upstreamTransport is an upstream's RoundTripper whose idle connections
// a replaced configuration releases.
type upstreamTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newUpstreamTransport is the route's transport to its upstream: dial and
// handshake timeouts, an idle pool, no environment proxies, TLS 1.2+, and
// with upstream_tls the CA bundle and client identity from their secrets,
// read per handshake so a refresh applies to the next new connection. A
// plain-http upstream gets a proxy.H1Transport in front, which sends most
// requests on the caller's goroutine (net/http's hand-offs cost more CPU
// per request than wsgate's checks); the http.Transport takes the rest.
func newUpstreamTransport(upstream string, ut *config.UpstreamTLS, mgr *secrets.Manager) (upstreamTransport, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	t := proxy.NewTransport()
	tc := t.TLSClientConfig
	tc.CipherSuites = tlsCipherSuites
	if ut != nil {
		if ut.CA != "" {
			verifyWithBundle(tc, u.Hostname(), mgr.Trust(ut.CA))
		}
		if ut.Identity != "" {
			get := identityCertificate(mgr.Identity(ut.Identity))
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return get(nil)
			}
		}
	}
	if u.Scheme == "http" {
		return proxy.NewH1Transport(upstream, t.DialContext, t, proxy.MaxIdleConnsPerUpstream, proxy.UpstreamIdleTimeout, nil)
	}
	return t, nil
}

// verifyWithBundle makes tc verify the server against the bundle's current
// certificates instead of the system roots. The standard verification is
// replaced, not skipped: VerifyConnection runs x509 chain building and the
// host name check itself, as in crypto/tls's documented example, because a
// fixed RootCAs pool could not follow a refreshed bundle.
func verifyWithBundle(tc *tls.Config, host string, bundle *secrets.CertSet) {
	tc.InsecureSkipVerify = true // replaced by VerifyConnection below
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		cas, err := bundle.Certificates()
		if err != nil {
			return fmt.Errorf("upstream_tls.ca: %w", err)
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("upstream_tls: the upstream sent no certificate")
		}
		roots := x509.NewCertPool()
		for _, c := range cas {
			roots.AddCert(c)
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		// The name dialled: each of a route's upstreams has its own.
		name := cs.ServerName
		if name == "" {
			name = host
		}
		_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			DNSName:       name,
			Roots:         roots,
			Intermediates: inter,
		})
		return err
	}
}
