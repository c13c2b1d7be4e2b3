package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"wsgate/bridge"
	"wsgate/config"
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
	transport, err := newUpstreamTransportFor(env, r, b.Upstream)
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
		Upstream:         b.Upstream,
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

// bridgeIdentity is the outbound signing key's source, the seam for Vault
// Transit: with bridge.sign.transit_key, bridge.sign.identity holds only the
// certificate and a Transit-backed crypto.Signer pairs with it (an
// IdentitySource returning that chain and signer). Until that lands a
// transit_key is refused rather than ignored.
func bridgeIdentity(env *routeEnv, s *config.BridgeSign) (bridge.IdentitySource, error) {
	if s == nil || s.Identity == "" {
		return nil, errors.New("bridge.sign.identity is required")
	}
	if s.TransitKey != "" {
		return nil, errors.New("bridge.sign.transit_key: vault transit signing is not built yet")
	}
	return env.secrets.Identity(s.Identity), nil
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
