package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"wsgate/config"
	"wsgate/internal/metrics"
	"wsgate/internal/ratelimit"
	"wsgate/proxy"
	"wsgate/rest"
	"wsgate/secrets"
	"wsgate/soap"
	"wsgate/wssec"
)

// newManager is the secrets manager over be.
func newManager(be *backend, logger *slog.Logger, now func() time.Time) *secrets.Manager {
	return secrets.NewManager(be.b, logger, now)
}

// close ends the backend's background work (Vault token renewal).
func (b *backend) close() {
	if b.stop != nil {
		b.stop()
	}
}

// backend is a running secrets backend. Gateways built on the same
// settings share it, so a reload does not log in to Vault again.
type backend struct {
	key   backendKey
	b     secrets.Backend
	vault *secrets.Vault // nil unless secrets.backend is vault
	stop  func()         // ends the Vault token renewal; nil for file
}

type backendKey struct {
	kind    string
	vault   config.Vault
	file    config.File
	baseDir string
}

// newBackend returns prev when the backend settings are unchanged, else
// builds the configured backend. Relative file-backend directories (and
// Vault's token_file, secret_id_file, ca_cert) are resolved against
// baseDir, the directory of the config file, so a config and its secrets
// move together. A new backend is the one place to add another kind.
func newBackend(cfg *config.Config, baseDir string, prev *backend, logger *slog.Logger) (*backend, error) {
	key := backendKey{kind: cfg.Secrets.Backend, vault: cfg.Secrets.Vault, file: cfg.Secrets.File, baseDir: baseDir}
	if prev != nil && prev.key == key {
		return prev, nil
	}
	switch cfg.Secrets.Backend {
	case "file":
		dir := cfg.Secrets.File.Dir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(baseDir, dir)
		}
		return &backend{key: key, b: secrets.NewFile(dir)}, nil
	case "vault":
		// Token renewal and re-login run until stop.
		v, stop, err := newVaultBackend(context.Background(), cfg, baseDir, logger)
		if err != nil {
			return nil, err
		}
		return &backend{key: key, b: v, vault: v, stop: stop}, nil
	}
	return nil, fmt.Errorf("unknown secrets backend %q", cfg.Secrets.Backend)
}

// xmlLimits are the parser bounds of config.limits.
func xmlLimits(cfg *config.Config) wssec.Limits {
	return wssec.Limits{
		MaxBytes:    cfg.Limits.MaxBodyBytes,
		MaxDepth:    cfg.Limits.MaxXMLDepth,
		MaxElements: cfg.Limits.MaxXMLElements,
	}
}

// newVerifier builds a soap route's verifier. Its secrets load on the
// manager's next Refresh; until then verification fails as unavailable (503).
func newVerifier(cfg *config.Config, r *config.Route, mgr *secrets.Manager, replay wssec.ReplayCache, now func() time.Time) *wssec.Verifier {
	s := r.SOAP
	parts := make([]wssec.Part, 0, len(s.RequireSigned))
	for _, p := range s.RequireSigned {
		parts = append(parts, wssec.Part(p))
	}
	v := &wssec.Verifier{
		Policy: wssec.Policy{
			RequireSigned:  parts,
			TimestampTTL:   s.Timestamp.TTL.D(),
			FutureSkew:     s.Timestamp.FutureSkew.D(),
			RequireExpires: s.Timestamp.RequireExpires,
			AllowSHA1:      s.Algorithms.AllowSHA1,
			Limits:         xmlLimits(cfg),
		},
		Trust:  mgr.Trust(s.Trust),
		Replay: replay,
		Now:    now,
	}
	// Only set when configured: a typed nil in the interface would read as "required".
	if s.UsernameToken != "" {
		v.Users = mgr.Users(s.UsernameToken)
	}
	return v
}

// generation is one configuration, built: its routes behind one gin
// engine, its secrets, its listener TLS state. A reload builds a new
// generation and swaps it in whole.
type generation struct {
	cfg     *config.Config
	baseDir string
	secrets *secrets.Manager
	jwks    []*jwksEntry // the jwks_url key sources of REST routes
	engine  *gin.Engine  // front door, route match, rate limit, route handlers
	router  *router
	noRoute *metrics.Route // the series of requests no route matched
	logger  *slog.Logger
	now     func() time.Time
	tls     *listenerTLS // nil without tls
	trusted trustedProxies
	// identity are the headers no client may send (see identityHeaders).
	identity headerSet
	stores   *stores
	backend  *backend // the secrets backend the Manager reads
	metrics  *metrics.Metrics
	// budget is the memory budget all SOAP routes share (limits.memory_budget_bytes).
	budget *soap.Budget

	transports []upstreamTransport // closed (idle connections) when replaced
	pools      []routePool         // each route's upstreams, for /readyz, metrics and probes
	ready      []readyCheck        // route readiness beyond secrets (see readinessOf)
	stopFn     context.CancelFunc  // ends this generation's refresh loops
}

// routeEnv is what every route builder receives. Builders for new route
// kinds take it too, so adding one changes no signature.
type routeEnv struct {
	cfg     *config.Config
	baseDir string
	secrets *secrets.Manager
	// vault is the Vault backend (for Transit signing); nil with the file backend.
	vault   *secrets.Vault
	stores  *stores
	metrics *metrics.Metrics
	now     func() time.Time
	logger  *slog.Logger
	// budget is the gateway's SOAP memory budget.
	budget *soap.Budget
	// transports collects the upstream transports built, so a reload can
	// release their idle connections.
	transports *[]upstreamTransport
	// pools collects each route's upstream pool.
	pools *[]routePool
	// ready collects route readiness checks beyond secrets (revocation
	// lists); nil offline.
	ready *[]readyCheck
}

// build turns a validated config into a generation. prev, the one in
// service, lends the state a reload must keep (the replay store, the rate
// limit buckets, the memory budget). It does no network I/O beyond reading
// jwks_ca_cert files: secrets and key sets load when the gateway starts.
func (gw *Gateway) build(cfg *config.Config, prev *generation) (_ *generation, err error) {
	logger, now, baseDir := gw.logger, gw.now, gw.baseDir
	var prevStores *stores
	if prev != nil {
		prevStores = prev.stores
	}
	st, err := newStores(cfg, prevStores, now, logger)
	if err != nil {
		return nil, err
	}
	g := &generation{cfg: cfg, baseDir: baseDir, logger: logger, now: now, stores: st, metrics: gw.metrics,
		identity: identityHeaders(cfg)}
	// A reload keeps the budget while its size is unchanged, so requests in
	// flight on the old generation still count against the new one.
	if prev != nil && prev.budget != nil && prev.budget.Limit() == cfg.Limits.MemoryBudgetBytes {
		g.budget = prev.budget
	} else if cfg.Limits.MemoryBudgetBytes > 0 { // Validate requires it; a hand-built config may not
		g.budget = soap.NewBudget(cfg.Limits.MemoryBudgetBytes)
	}
	defer func() {
		if err != nil {
			g.release(prev) // what was built for this config only
		}
	}()
	var prevBackend *backend
	var prevTLS *listenerTLS
	if prev != nil {
		prevBackend, prevTLS = prev.backend, prev.tls
	}
	if g.backend, err = newBackend(cfg, baseDir, prevBackend, logger); err != nil {
		return nil, err
	}
	g.secrets = secrets.NewManager(g.backend.b, logger, now)
	if g.trusted, err = parseTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted_proxies: %w", err)
	}
	if g.tls, err = newListenerTLS(cfg, g.secrets, g.backend, prevTLS, logger, now); err != nil {
		return nil, err
	}
	env := &routeEnv{cfg: cfg, baseDir: baseDir, secrets: g.secrets, vault: g.backend.vault, stores: st, metrics: gw.metrics,
		now: now, logger: logger, budget: g.budget, transports: &g.transports, pools: &g.pools, ready: &g.ready}

	g.router = &router{}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		e, src, err := buildRoute(env, r)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		if src != nil {
			g.jwks = append(g.jwks, src)
		}
		if r.ForwardClientCert != "" {
			e.handler = forwardClientCert(r.ForwardClientCert, e.handler)
		}
		g.router.add(e)
	}
	g.engine = g.newEngine()
	return g, nil
}

// buildRoute is the one switch over route kinds: a new kind adds a case
// calling its builder with env. Every route gets its error renderer (the
// SOAP Fault or the JSON body) and the rate limit the front door applies
// before it (per client_ip, client_cert or route; per subject is the
// oauth edge's). A route may return its JWKS source.
func buildRoute(env *routeEnv, r *config.Route) (*routeEntry, *jwksEntry, error) {
	e := &routeEntry{name: r.Name, prefix: r.PathPrefix, protocol: r.Kind(), writeError: rest.WriteError}
	if r.Kind() == config.KindSOAP {
		e.writeError = soap.WriteError
	}
	if r.CORS != nil {
		// The front door's own answers (429, 413, 500) carry the CORS
		// headers too, so a browser app can read why it was refused.
		c, err := newCORS(r.CORS)
		if err != nil {
			return nil, nil, err
		}
		e.writeError = c.WrapErrorWriter(e.writeError)
	}
	if rl := r.RateLimit; rl != nil && rl.Per != rest.PerSubject {
		lim, err := env.stores.newLimiter(r.Name, rl)
		if err != nil {
			return nil, nil, err
		}
		e.limiter, e.limitPer = lim, rl.Per
	}
	var src *jwksEntry
	var err error
	switch r.Kind() {
	case config.KindSOAP:
		e.handler, err = buildSOAPRoute(env, r, e.writeError)
	case config.KindPublic:
		e.handler, err = buildPublicRoute(env, r, e.writeError)
	case config.KindREST:
		e.handler, src, err = buildRESTRoute(env, r, e.writeError)
	case config.KindBridge:
		e.handler, src, err = buildBridgeRoute(env, r, e.writeError)
	default:
		err = errors.New("route kind unknown")
	}
	if err != nil {
		return nil, nil, err
	}
	return e, src, nil
}

// errorWriter renders the gateway's own answers in a route's protocol:
// soap.WriteError (a SOAP Fault) or rest.WriteError (the JSON body).
type errorWriter func(w http.ResponseWriter, r *http.Request, status int, err error)

// writeNoRoute answers where no route matched: the JSON error body.
var writeNoRoute errorWriter = rest.WriteError

// routePool is one route's upstream pool.
type routePool struct {
	route string
	pool  *proxy.Pool
}

// newUpstreamTransportFor is the route's upstream transport: its upstreams
// (upstream or upstreams, or the bridge's) balanced with passive health,
// optional probes and retries, each with upstream_tls applied, timed for
// wsgate_upstream_duration_seconds. It also returns the URL requests are
// addressed to (the first upstream; the pool sets each one's host).
func newUpstreamTransportFor(env *routeEnv, r *config.Route) (http.RoundTripper, string, error) {
	urls := r.UpstreamURLs()
	rts := make([]http.RoundTripper, len(urls))
	for i, u := range urls {
		t, err := newUpstreamTransport(u, r.UpstreamTLS, env.secrets)
		if err != nil {
			return nil, "", err
		}
		*env.transports = append(*env.transports, t)
		rts[i] = t
	}
	po := proxy.PoolOptions{
		Upstreams:  urls,
		Transports: rts,
		Balance:    r.Balance,
		EjectAfter: r.PassiveHealth.Failures,
		EjectFor:   r.PassiveHealth.EjectFor.D(),
		Retries:    r.Retries,
		Now:        env.now,
		Logger:     env.logger.With(slog.String("route", r.Name)),
	}
	if h := r.HealthCheck; h != nil {
		po.Check = &proxy.HealthCheck{Path: h.Path, Interval: h.Interval.D(), Timeout: h.Timeout.D()}
	}
	pool, err := proxy.NewPool(po)
	if err != nil {
		return nil, "", err
	}
	if env.pools != nil {
		*env.pools = append(*env.pools, routePool{route: r.Name, pool: pool})
	}
	return &timedTransport{next: pool, metrics: env.metrics.Route(r.Name, r.Kind()), now: env.now}, pool.Target(), nil
}

// newUpstreamProxy is the route's reverse proxy to its upstreams, with the
// path prefix stripped; its own failures (502, 504) speak the route's protocol.
func newUpstreamProxy(env *routeEnv, r *config.Route, logger *slog.Logger, onError errorWriter) (http.Handler, error) {
	t, target, err := newUpstreamTransportFor(env, r)
	if err != nil {
		return nil, err
	}
	return proxy.New(proxy.Options{
		Upstream:    target,
		StripPrefix: r.PathPrefix,
		Timeout:     upstreamTimeout(env.cfg, r),
		Transport:   t,
		Logger:      logger,
		OnError:     onError,
	})
}

// buildPublicRoute is a plain reverse proxy with the body size limit.
func buildPublicRoute(env *routeEnv, r *config.Route, onError errorWriter) (http.Handler, error) {
	up, err := newUpstreamProxy(env, r, env.logger.With(slog.String("route", r.Name)), onError)
	if err != nil {
		return nil, err
	}
	return limitBody(up, env.cfg.Limits.MaxBodyBytes, onError), nil
}

func buildSOAPRoute(env *routeEnv, r *config.Route, onError errorWriter) (http.Handler, error) {
	cfg := env.cfg
	r, err := withPolicy(env, r)
	if err != nil {
		return nil, err
	}
	up, err := newUpstreamProxy(env, r, env.logger.With(slog.String("route", r.Name)), onError)
	if err != nil {
		return nil, err
	}
	strip := r.SOAP.StripSecurityHeader == nil || *r.SOAP.StripSecurityHeader
	verifier := newVerifier(cfg, r, env.secrets, env.stores.replay, env.now)
	if err := secureVerifier(env, r, verifier); err != nil {
		return nil, err
	}
	so := soap.Options{
		Route:               r.Name,
		Verifier:            verifier,
		Limits:              xmlLimits(cfg),
		MaxBodyBytes:        cfg.Limits.MaxBodyBytes,
		StripSecurityHeader: strip,
		Upstream:            up,
		Logger:              env.logger, // the audit records name the route themselves
		OnDecision:          soapDecision(env.metrics),
		Budget:              env.budget,
		BudgetWait:          min(cfg.Limits.ReadTimeout.D(), soap.DefaultBudgetWait),
	}
	// Only set when configured: a typed nil in the interface would read as "sign".
	if r.SOAP.SignResponse != "" {
		so.SignResponse = env.secrets.Identity(r.SOAP.SignResponse)
		so.ResponseTTL = r.SOAP.Timestamp.TTL.D()
		so.Now = env.now
	}
	secureSOAPOptions(env, r, &so)
	if err := withWSDL(env, r, &so); err != nil {
		return nil, err
	}
	return soap.New(so), nil
}

// soapDecision counts a soap edge refusal in wsgate_security_rejections_total
// (the edge records the outcome in the request's scope itself). Busy (memory
// budget) and trust or replay store failures are the gateway's, not the
// sender's: no rejection is counted for them.
func soapDecision(m *metrics.Metrics) func(soap.Decision) {
	return func(d soap.Decision) {
		if d.Err != nil && !errors.Is(d.Err, soap.ErrBusy) && wssec.ClientError(d.Err) {
			m.Rejection(d.Route, wssec.FaultCode(d.Err))
		}
	}
}

// buildBridgeRoute is a bridge (REST to SOAP) route: the oauth edge of
// REST routes in front of the bridge, so tokens, scopes, rate limits and
// forward_claims apply unchanged.
func buildBridgeRoute(env *routeEnv, r *config.Route, onError errorWriter) (http.Handler, *jwksEntry, error) {
	b, err := buildBridge(env, r)
	if err != nil {
		return nil, nil, err
	}
	if b, err = withOpenAPI(env, r, b, onError); err != nil {
		return nil, nil, err
	}
	return buildOAuthEdge(env, r, b, onError)
}

// router finds the route with the longest matching path prefix.
type router struct {
	routes []*routeEntry // longest prefix first
	byName map[string]*routeEntry
}

// routeEntry is one route as the front door sees it.
type routeEntry struct {
	name, prefix, protocol string
	handler                http.Handler
	// writeError renders the gateway's own answers on this route.
	writeError errorWriter
	// limiter, when set, is the route's rate limit, keyed per limitPer.
	limiter  ratelimit.Limiter
	limitPer string
	// metrics are the route's series, set by newEngine.
	metrics *metrics.Route
}

func (rt *router) add(e *routeEntry) {
	if rt.byName == nil {
		rt.byName = map[string]*routeEntry{}
	}
	rt.byName[e.name] = e
	rt.routes = append(rt.routes, e)
	sort.SliceStable(rt.routes, func(i, j int) bool { return len(rt.routes[i].prefix) > len(rt.routes[j].prefix) })
}

// match returns the route for p, or nil. Prefixes match on path segment
// boundaries: /soap/orders matches /soap/orders and /soap/orders/x, never /soap/ordersX.
func (rt *router) match(p string) *routeEntry {
	for _, e := range rt.routes {
		if e.prefix == "/" || p == e.prefix || strings.HasPrefix(p, e.prefix+"/") {
			return e
		}
	}
	return nil
}

// cleanPath reports whether p is absolute and canonical (a trailing slash is allowed).
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	c := path.Clean(p)
	return c == p || (strings.HasSuffix(p, "/") && c+"/" == p)
}
