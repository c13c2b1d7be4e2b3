package gateway

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"wsgate/bridge"
	"wsgate/config"
	"wsgate/secrets"
	"wsgate/wssec"
)

// maxTemplateBytes caps a request_template file: templates are config, not data.
const maxTemplateBytes = 1 << 20

// buildBridge builds the REST → SOAP handler of a bridge route: templates
// loaded and parsed once (request_template relative to the config file's
// directory, like secrets.file.dir), the signing identity and the optional
// response trust registered with the secrets manager, the upstream
// transport with the route's upstream_tls and upstream timing. It does not
// authenticate: the route's oauth edge must run in front of it (the bridge
// is that edge's upstream), and the bridge forwards only the headers that
// edge sets (forward_claims, forward_client_cert), never Authorization.
func buildBridge(env *routeEnv, r *config.Route) (http.Handler, error) {
	cfg, b := env.cfg, r.Bridge
	rlog := env.logger.With(slog.String("route", r.Name))

	version := wssec.SOAP11
	switch b.SOAPVersion {
	case "1.1":
	case "1.2":
		version = wssec.SOAP12
	default:
		return nil, fmt.Errorf("bridge.soap_version %q is not 1.1 or 1.2", b.SOAPVersion)
	}
	ops := make([]bridge.Operation, 0, len(b.Operations))
	for i, op := range b.Operations {
		tmpl, err := loadBridgeTemplate(env.baseDir, op.RequestTemplate)
		if err != nil {
			return nil, fmt.Errorf("bridge.operations[%d].request_template: %w", i, err)
		}
		ops = append(ops, bridge.Operation{Name: op.Name, Action: op.Action, Template: tmpl})
	}
	identity, err := bridgeIdentity(env, b.Sign)
	if err != nil {
		return nil, err
	}
	transport, target, err := newUpstreamTransportFor(env, r)
	if err != nil {
		return nil, err
	}
	if r.KeepAuthorization {
		rlog.Warn("keep_authorization has no effect on bridge routes: the SOAP call never carries the client's Authorization")
	}
	var forward []string
	for _, h := range r.OAuth.ForwardClaims {
		forward = append(forward, h)
	}
	if r.ForwardClientCert != "" {
		forward = append(forward, r.ForwardClientCert)
	}

	o := bridge.Options{
		Route:            r.Name,
		PathPrefix:       r.PathPrefix,
		Upstream:         target,
		SOAPVersion:      version,
		Operations:       ops,
		Identity:         identity,
		Timeout:          cfg.Limits.UpstreamTimeout.D(),
		Transport:        transport,
		MaxBodyBytes:     cfg.Limits.MaxBodyBytes,
		MaxResponseBytes: cfg.Limits.MaxBodyBytes,
		Limits:           xmlLimits(cfg),
		ForwardHeaders:   forward,
		Logger:           env.logger, // the audit records name the route themselves
		Now:              env.now,
	}
	if b.Encrypt != nil {
		o.EncryptFor = newCertificateSource(env.secrets, b.Encrypt.Certificate)
	}
	o.SAMLAssertion = bridgeAssertion(env, b.Sign)
	if vr := b.VerifyResponse; vr != nil {
		o.VerifyResponse = &wssec.Verifier{
			Policy: wssec.Policy{
				RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp},
				Limits:        xmlLimits(cfg),
			},
			Trust:  env.secrets.Trust(vr.Trust),
			Replay: env.stores.replay, // a response seen twice is a replay too
			Now:    env.now,
		}
	}
	h, err := bridge.New(o)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// bridgeAssertion is bridge.sign.saml_assertion's source (field assertion,
// re-read with the secret), or nil when the route sends none.
func bridgeAssertion(env *routeEnv, s *config.BridgeSign) bridge.AssertionSource {
	if s == nil || s.SAMLAssertion == "" {
		return nil
	}
	return assertionSecret{env.secrets.Fields(s.SAMLAssertion)}
}

// assertionSecret reads the field assertion of a KV secret.
type assertionSecret struct{ fields *secrets.FieldSet }

// Assertion implements bridge.AssertionSource.
func (a assertionSecret) Assertion() ([]byte, error) {
	v, err := a.fields.Field("assertion")
	if err != nil {
		return nil, err
	}
	return []byte(v), nil
}

// bridgeIdentity is the outbound signing key's source: the identity secret's
// certificate and private key, or, with bridge.sign.transit_key, that
// secret's certificate paired with a Vault Transit key that never leaves
// Vault.
func bridgeIdentity(env *routeEnv, s *config.BridgeSign) (bridge.IdentitySource, error) {
	if s == nil || s.Identity == "" {
		return nil, errors.New("bridge.sign.identity is required")
	}
	if s.TransitKey == "" {
		return env.secrets.Identity(s.Identity), nil
	}
	if env.vault == nil {
		return nil, errors.New("bridge.sign.transit_key needs secrets.backend: vault")
	}
	return &transitIdentity{path: s.Identity, fields: env.secrets.Fields(s.Identity), vault: env.vault, key: s.TransitKey}, nil
}

// transitIdentity pairs the certificate chain in an identity secret (field
// certificate) with a Vault Transit signer. The signer is made on first use
// and retried on failure, so Vault being down at start-up makes the route
// answer 503 instead of stopping the gateway.
type transitIdentity struct {
	path   string
	fields *secrets.FieldSet
	vault  *secrets.Vault
	key    string

	mu     sync.Mutex
	signer *secrets.TransitSigner
	pem    string
	chain  []*x509.Certificate
}

// Identity implements bridge.IdentitySource.
func (t *transitIdentity) Identity() ([]*x509.Certificate, crypto.Signer, error) {
	fields, err := t.fields.Fields()
	if err != nil {
		return nil, nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.signer == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		signer, err := secrets.NewTransitSigner(ctx, t.vault, "", t.key)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: transit key %q: %v", secrets.ErrNotLoaded, t.key, err)
		}
		t.signer = signer
	}
	if pem := fields["certificate"]; pem != t.pem || t.chain == nil {
		chain, err := secrets.ParseCertificates(t.path, "certificate", pem)
		if err != nil {
			return nil, nil, err
		}
		pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(t.signer.Public()) {
			return nil, nil, fmt.Errorf("%s: certificate does not match transit key %q", t.path, t.key)
		}
		t.pem, t.chain = pem, chain
	}
	return t.chain, t.signer, nil
}

// loadBridgeTemplate reads and parses one request template.
func loadBridgeTemplate(baseDir, path string) (*bridge.Template, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	text, err := io.ReadAll(io.LimitReader(f, maxTemplateBytes+1))
	if err != nil {
		return nil, err
	}
	if len(text) > maxTemplateBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxTemplateBytes)
	}
	return bridge.ParseTemplate(filepath.Base(path), string(text))
}
