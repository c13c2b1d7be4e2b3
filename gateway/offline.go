package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"wsgate/bridge"
	"wsgate/config"
	"wsgate/wssec"
)

// ErrNoSuchRoute means the configuration has no route of that name.
var ErrNoSuchRoute = errors.New("gateway: no such route")

// ErrNotSOAP means an offline verification named a route without soap verification.
var ErrNotSOAP = errors.New("gateway: not a soap route")

// ErrNoSigner means the route signs nothing (no bridge.sign.identity, no soap.sign_response).
var ErrNoSigner = errors.New("gateway: route has no signing identity")

// OfflineRoute is one route built the way serving builds it, for the
// offline commands: verify with its inbound policy (never touching the
// replay cache), sign with its outbound identity. Close it when done.
type OfflineRoute struct {
	cfg      *config.Config
	route    *config.Route
	env      *routeEnv
	be       *backend
	verifier *wssec.Verifier
	signer   bridge.IdentitySource
	signErr  error
	saml     bridge.AssertionSource // bridge.sign.saml_assertion, or nil
	encCert  *certificateSource     // bridge.encrypt or soap.encrypt_response; see Encrypt
	encErr   error
}

// Route builds the named route of cfg for offline use, with the same
// builders serving uses. Its secrets load on Refresh.
func Route(cfg *config.Config, name string, deps Deps) (*OfflineRoute, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	var r *config.Route
	for i := range cfg.Routes {
		if cfg.Routes[i].Name == name {
			r = &cfg.Routes[i]
		}
	}
	if r == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchRoute, name)
	}
	be, err := newBackend(cfg, deps.BaseDir, nil, deps.Logger)
	if err != nil {
		return nil, err
	}
	mgr := newManager(be, deps.Logger, deps.Now)
	env := &routeEnv{cfg: cfg, baseDir: deps.BaseDir, secrets: mgr, vault: be.vault, now: deps.Now, logger: deps.Logger}
	// soap.policy: from_wsdl verifies offline as it does when serving.
	if r, err = withPolicy(env, r); err != nil {
		be.close()
		return nil, fmt.Errorf("route %s: %w", name, err)
	}
	o := &OfflineRoute{cfg: cfg, route: r, env: env, be: be}
	if r.SOAP != nil {
		// Offline: no replay cache.
		o.verifier = newVerifier(cfg, r, mgr, nil, deps.Now)
		if err := secureVerifier(env, r, o.verifier); err != nil {
			be.close()
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
	}
	o.signer, o.signErr = signingSource(env, r)
	if r.Bridge != nil {
		o.saml = bridgeAssertion(env, r.Bridge.Sign)
	}
	o.encCert, o.encErr = encryptionSource(env, r)
	return o, nil
}

// Refresh loads the route's secrets.
func (o *OfflineRoute) Refresh(ctx context.Context) error { return o.env.secrets.Refresh(ctx) }

// Close ends the secrets backend's background work (Vault token renewal).
func (o *OfflineRoute) Close() { o.be.close() }

// MaxBodyBytes is limits.max_body_bytes, the most an offline input may hold.
func (o *OfflineRoute) MaxBodyBytes() int64 { return o.cfg.Limits.MaxBodyBytes }

// CanVerify reports whether the route verifies inbound messages (soap routes).
func (o *OfflineRoute) CanVerify() error {
	if o.verifier == nil {
		return fmt.Errorf("%w: route %q", ErrNotSOAP, o.route.Name)
	}
	return nil
}

// CanSign reports whether the route has an outbound signing identity.
func (o *OfflineRoute) CanSign() error { return o.signErr }

// Verify checks msg with the route's inbound policy and returns the
// signer's subject ("" for a UsernameToken-only policy).
func (o *OfflineRoute) Verify(ctx context.Context, msg []byte) (signer string, err error) {
	if err := o.CanVerify(); err != nil {
		return "", err
	}
	v, err := o.verifier.Verify(ctx, msg)
	if err != nil {
		return "", err
	}
	if v.Signer != nil {
		signer = v.Signer.Subject.String()
	}
	return signer, nil
}

// Sign signs msg the way the route's outbound signing would: Timestamp,
// Body and any WS-Addressing headers, with a BinarySecurityToken.
func (o *OfflineRoute) Sign(msg []byte) ([]byte, error) {
	if o.signErr != nil {
		return nil, o.signErr
	}
	chain, key, err := o.signer.Identity()
	if err != nil {
		return nil, fmt.Errorf("signing identity: %w", err)
	}
	ttl := time.Duration(0) // the Signer's default
	if o.route.SOAP != nil {
		ttl = o.route.SOAP.Timestamp.TTL.D()
	}
	s := wssec.Signer{Chain: chain, Key: key, TTL: ttl, Now: o.env.now, SAMLLimits: xmlLimits(o.cfg)}
	if o.saml != nil {
		if s.SAMLAssertion, err = o.saml.Assertion(); err != nil {
			return nil, fmt.Errorf("SAML assertion: %w", err)
		}
	}
	return s.SignBytes(msg, xmlLimits(o.cfg))
}

// signingSource is where a route's outbound signing key comes from, as
// the route itself would sign: bridge.sign (an identity secret, or its
// certificate with a Vault Transit key), else soap.sign_response.
func signingSource(env *routeEnv, route *config.Route) (bridge.IdentitySource, error) {
	if b := route.Bridge; b != nil && b.Sign != nil && b.Sign.Identity != "" {
		return bridgeIdentity(env, b.Sign)
	}
	if route.SOAP != nil && route.SOAP.SignResponse != "" {
		return env.secrets.Identity(route.SOAP.SignResponse), nil
	}
	return nil, fmt.Errorf("%w: route %q (bridge.sign.identity or soap.sign_response)", ErrNoSigner, route.Name)
}
