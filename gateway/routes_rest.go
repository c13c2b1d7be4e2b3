package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"wsgate/config"
	"wsgate/internal/metrics"
	"wsgate/internal/reqscope"
	"wsgate/oauth"
	"wsgate/rest"
)

// idpTimeout bounds one JWKS fetch or introspection call.
const idpTimeout = 10 * time.Second

// jwksEntry is a route's JWKS source (jwks_url, or discovery's), kept so
// serve can run its refresh loop, SIGHUP can refresh it, and /readyz can
// report it.
type jwksEntry struct {
	route, url string
	src        keyLoop
}

// keyLoop is what serve, SIGHUP and /readyz need of a fetched key source:
// *oauth.JWKSSource and *oauth.DiscoverySource.
type keyLoop interface {
	Run(ctx context.Context)
	Refresh(ctx context.Context) error
	Status() (loaded bool, fetched time.Time, lastErr error)
}

// buildRESTRoute builds an oauth (REST) route: bearer-token validation,
// scopes, rate limit and identity headers in front of the route's upstream.
// It returns the route's JWKS source when it has one. Secrets are only
// registered with mgr; they load when serve starts, and until then (or if
// they never load) the route answers 503.
func buildRESTRoute(env *routeEnv, r *config.Route, onError errorWriter) (http.Handler, *jwksEntry, error) {
	up, err := newUpstreamProxy(env, r, env.logger.With(slog.String("route", r.Name)), onError)
	if err != nil {
		return nil, nil, err
	}
	if up, err = withOpenAPI(env, r, up, onError); err != nil {
		return nil, nil, err
	}
	return buildOAuthEdge(env, r, up, onError)
}

// buildOAuthEdge puts the route's checks (bearer or DPoP token and/or API
// key, scopes, claims, CORS, rate limit, identity headers, body limit) in
// front of up: the reverse proxy of a REST route, or the bridge of a bridge
// route.
func buildOAuthEdge(env *routeEnv, r *config.Route, up http.Handler, onError errorWriter) (http.Handler, *jwksEntry, error) {
	cfg, mgr, logger := env.cfg, env.secrets, env.logger
	o := r.OAuth
	ro := rest.Options{
		Route:             r.Name,
		PathPrefix:        r.PathPrefix,
		KeepAuthorization: r.KeepAuthorization,
		MaxFormBytes:      cfg.Limits.MaxBodyBytes,
		Upstream:          up,
		Logger:            logger, // the audit records name the route themselves
		OnDecision:        restDecision(env.metrics),
	}
	if k := r.APIKey; k != nil {
		ro.APIKeys, ro.APIKeyHeader = oauth.NewAPIKeys(mgr.Fields(k.Secret)), k.Header
	}
	if r.CORS != nil {
		c, err := newCORS(r.CORS)
		if err != nil {
			return nil, nil, err
		}
		ro.CORS = c // onError, the route's writeError, adds the headers already (buildRoute)
	}
	var jwks *jwksEntry
	if o != nil {
		var err error
		if jwks, err = buildTokenChecks(env, r, &ro); err != nil {
			return nil, nil, err
		}
	}
	// Per subject is known only after the token: the edge applies it. The
	// other keys are the front door's (see buildRoute). Set only when
	// configured: a nil *Memory in the interface would not be nil.
	if rl := r.RateLimit; rl != nil && rl.Per == rest.PerSubject {
		lim, err := env.stores.newLimiter(r.Name, rl)
		if err != nil {
			return nil, nil, err
		}
		ro.RateLimiter = lim
	}
	h, err := rest.New(ro)
	if err != nil {
		return nil, nil, err
	}
	return limitBody(h, cfg.Limits.MaxBodyBytes, onError), jwks, nil
}

// buildTokenChecks sets ro's token validation from the route's oauth
// block: key source (jwks_url, discovery or jwks_secret), introspection,
// scopes, claims, DPoP and certificate binding.
func buildTokenChecks(env *routeEnv, r *config.Route, ro *rest.Options) (*jwksEntry, error) {
	baseDir, mgr, now, logger := env.baseDir, env.secrets, env.now, env.logger
	rlog := logger.With(slog.String("route", r.Name))
	o := r.OAuth

	vo := oauth.Options{
		Issuer:     o.Issuer,
		Audience:   o.Audience,
		Algorithms: o.Algorithms,
		Leeway:     o.Leeway.D(),
		RequireTyp: o.RequireTyp,
		Now:        now,
		Logger:     rlog,
	}
	var jwks *jwksEntry
	switch {
	case o.JWKSURL != "":
		src, err := newJWKSSource(o, baseDir, now, rlog)
		if err != nil {
			return nil, err
		}
		vo.Keys = src
		jwks = &jwksEntry{route: r.Name, url: redactURL(o.JWKSURL), src: src}
	case o.Discovery:
		src, err := newDiscoverySource(o, baseDir, now, rlog)
		if err != nil {
			return nil, err
		}
		vo.Keys = src
		jwks = &jwksEntry{route: r.Name, url: redactURL(o.Issuer), src: src}
	case o.JWKSSecret != "":
		// The Manager refreshes the secret and keeps its last good value;
		// KeysFromSecret re-parses only when the fields change.
		vo.Keys = oauth.KeysFromSecret(mgr.Fields(o.JWKSSecret))
	}
	if in := o.Introspection; in != nil {
		client, err := oauth.NewHTTPClient(nil, idpTimeout)
		if err != nil {
			return nil, err
		}
		vo.Introspection = &oauth.IntrospectionOptions{
			URL:         in.URL,
			Credentials: oauth.CredentialsFromSecret(mgr.Fields(in.Client)),
			Client:      client,
			Timeout:     idpTimeout,
			CacheTTL:    in.CacheTTL.D(),
		}
	}
	v, err := oauth.NewValidator(vo)
	if err != nil {
		return nil, err
	}

	rules := make([]oauth.ScopeRule, 0, len(o.Scopes))
	for _, s := range o.Scopes {
		rules = append(rules, oauth.ScopeRule{Methods: s.Methods, Path: s.Path, AnyOf: s.AnyOf})
	}
	scopes, err := oauth.NewScopePolicy(rules)
	if err != nil {
		return nil, err
	}
	crules := make([]oauth.ClaimRule, 0, len(o.Claims))
	for _, c := range o.Claims {
		crules = append(crules, oauth.ClaimRule{Methods: c.Methods, Path: c.Path, Require: c.Require})
	}
	claims, err := oauth.NewClaimPolicy(crules)
	if err != nil {
		return nil, err
	}
	ro.Validator, ro.Scopes, ro.Claims, ro.ForwardClaims = tracedValidator{v, r.Name}, scopes, claims, o.ForwardClaims
	ro.RequireCertificateBinding = o.RequireCertificateBinding
	if d := o.DPoP; d != nil {
		// Proof jtis go to the gateway's replay store (Redis when
		// configured), so a proof replayed to another replica is refused.
		dv, err := oauth.NewDPoPVerifier(oauth.DPoPOptions{MaxAge: d.MaxAge.D(), Replay: env.stores.replay, Now: now})
		if err != nil {
			return nil, err
		}
		ro.DPoP, ro.DPoPRequired = dv, d.Required
		// A proof's htu names the URL the client used: behind a trusted
		// TLS-terminating proxy its X-Forwarded-Proto says the scheme.
		trusted, err := parseTrustedProxies(env.cfg.TrustedProxies)
		if err != nil {
			return nil, err
		}
		ro.TrustForwardedProto = func(r *http.Request) bool {
			peer, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				peer = r.RemoteAddr
			}
			return trusted.contains(peer)
		}
	}
	return jwks, nil
}

// newCORS is the route's CORS policy.
func newCORS(c *config.CORS) (*rest.CORS, error) {
	return rest.NewCORS(rest.CORSOptions{AllowOrigins: c.AllowOrigins, AllowMethods: c.AllowMethods,
		AllowHeaders: c.AllowHeaders, AllowCredentials: c.AllowCredentials, MaxAge: c.MaxAge.D()})
}

// newDiscoverySource builds the route's discovery key source; jwks_ca_cert
// applies to the metadata host and the key set host alike.
func newDiscoverySource(o *config.OAuth, baseDir string, now func() time.Time, logger *slog.Logger) (*oauth.DiscoverySource, error) {
	client, err := idpClient(o, baseDir)
	if err != nil {
		return nil, err
	}
	return oauth.NewDiscoverySource(oauth.DiscoveryOptions{
		Issuer:  o.Issuer,
		Client:  client,
		Timeout: idpTimeout,
		Now:     now,
		Logger:  logger,
	})
}

// restDecision counts a rest edge refusal in wsgate_security_rejections_total
// (the edge records the outcome in the request's scope itself).
func restDecision(m *metrics.Metrics) func(rest.Decision) {
	return func(d rest.Decision) {
		switch d.Outcome {
		case reqscope.Rejected, reqscope.RateLimited:
			m.Rejection(d.Route, d.Reason)
		}
	}
}

// newJWKSSource builds the route's jwks_url key source. A relative
// jwks_ca_cert is resolved against baseDir, like secrets.file.dir.
func newJWKSSource(o *config.OAuth, baseDir string, now func() time.Time, logger *slog.Logger) (*oauth.JWKSSource, error) {
	client, err := idpClient(o, baseDir)
	if err != nil {
		return nil, err
	}
	return oauth.NewJWKSSource(oauth.JWKSOptions{
		URL:     o.JWKSURL,
		Client:  client,
		Timeout: idpTimeout,
		Now:     now,
		Logger:  logger,
	})
}

// idpClient is the HTTP client for the IdP's key set and metadata, trusting
// jwks_ca_cert (relative to baseDir) or the system roots.
func idpClient(o *config.OAuth, baseDir string) (*http.Client, error) {
	var caPEM []byte
	if o.JWKSCACert != "" {
		p := o.JWKSCACert
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("oauth.jwks_ca_cert: %w", err)
		}
		caPEM = b
	}
	client, err := oauth.NewHTTPClient(caPEM, idpTimeout)
	if err != nil {
		return nil, fmt.Errorf("oauth.jwks_ca_cert: %w", err)
	}
	return client, nil
}

// redactURL hides any password in u, for /readyz and logs.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// limitBody enforces limits.max_body_bytes on routes that stream the body
// to the upstream: a declared length over the cap gets 413 at once (in the
// route's protocol), and a body that grows past it is cut off.
func limitBody(next http.Handler, maxBytes int64, onError errorWriter) http.Handler {
	if maxBytes <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBytes {
			reqscope.Of(r).Decide(reqscope.Invalid, "body_too_large")
			onError(w, r, http.StatusRequestEntityTooLarge, ErrBodyTooLarge)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
		}
		next.ServeHTTP(w, r)
	})
}
