package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"wsgate/config"
	"wsgate/internal/metrics"
	"wsgate/internal/reqscope"
	"wsgate/proxy"
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

// generation is one configuration, built: its routes, its secrets, its
// listener TLS state. A reload builds a new generation and swaps it in whole.
type generation struct {
	cfg     *config.Config
	baseDir string
	secrets *secrets.Manager
	jwks    []*jwksEntry // the jwks_url key sources of REST routes
	handler http.Handler // the router
	logger  *slog.Logger
	tls     *listenerTLS // nil without tls
	trusted trustedProxies
	stores  *stores
	backend *backend // the secrets backend the Manager reads
	metrics *metrics.Metrics
	// budget is the memory budget all SOAP routes share (limits.memory_budget_bytes).
	budget *soap.Budget

	transports []*http.Transport  // closed (idle connections) when replaced
	stopFn     context.CancelFunc // ends this gateway's refresh loops
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
	transports *[]*http.Transport
}

// build turns a validated config into a gateway. prev, the gateway in
// service, lends the state a reload must keep (the replay store). It does
// no network I/O beyond reading jwks_ca_cert files: secrets and key sets
// load when the gateway starts.
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
	g := &generation{cfg: cfg, baseDir: baseDir, logger: logger, stores: st, metrics: gw.metrics}
	// A reload keeps the budget while its size is unchanged, so requests in
	// flight on the old gateway still count against the new one.
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
		now: now, logger: logger, budget: g.budget, transports: &g.transports}

	rt := &router{logger: logger}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		h, src, err := buildRoute(env, r)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		if src != nil {
			g.jwks = append(g.jwks, src)
		}
		if r.ForwardClientCert != "" {
			h = forwardClientCert(r.ForwardClientCert, h)
		}
		rt.add(r.Name, r.PathPrefix, routeTag(r.Name, r.Kind(), h))
	}
	g.handler = rt
	return g, nil
}

// buildRoute is the one switch over route kinds: a new kind adds a case
// calling its builder with env. A route may return its JWKS source.
func buildRoute(env *routeEnv, r *config.Route) (http.Handler, *jwksEntry, error) {
	switch r.Kind() {
	case config.KindSOAP:
		h, err := buildSOAPRoute(env, r)
		return h, nil, err
	case config.KindPublic:
		h, err := buildPublicRoute(env, r)
		return h, nil, err
	case config.KindREST:
		return buildRESTRoute(env, r)
	case config.KindBridge:
		return buildBridgeRoute(env, r)
	}
	return nil, nil, errors.New("route kind unknown")
}

// newUpstreamTransportFor is the route's upstream transport (upstream_tls
// applied), timed for wsgate_upstream_duration_seconds. upstream is the URL
// dialled: the route's upstream, or bridge.upstream.
func newUpstreamTransportFor(env *routeEnv, r *config.Route, upstream string) (http.RoundTripper, error) {
	t, err := newUpstreamTransport(upstream, r.UpstreamTLS, env.secrets)
	if err != nil {
		return nil, err
	}
	*env.transports = append(*env.transports, t)
	return &timedTransport{next: t, route: r.Name, metrics: env.metrics, now: env.now}, nil
}

// newUpstreamProxy is the route's reverse proxy to its upstream, with the path prefix stripped.
func newUpstreamProxy(env *routeEnv, r *config.Route, logger *slog.Logger) (http.Handler, error) {
	t, err := newUpstreamTransportFor(env, r, r.Upstream)
	if err != nil {
		return nil, err
	}
	return proxy.New(proxy.Options{
		Upstream:    r.Upstream,
		StripPrefix: r.PathPrefix,
		Timeout:     env.cfg.Limits.UpstreamTimeout.D(),
		Transport:   t,
		Logger:      logger,
	})
}

// buildPublicRoute is a plain reverse proxy with the body size limit and
// the route's rate limit (per client_ip, client_cert or route).
func buildPublicRoute(env *routeEnv, r *config.Route) (http.Handler, error) {
	rlog := env.logger.With(slog.String("route", r.Name))
	up, err := newUpstreamProxy(env, r, rlog)
	if err != nil {
		return nil, err
	}
	h, err := rateLimited(env, r, limitBody(up, env.cfg.Limits.MaxBodyBytes), rlog)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func buildSOAPRoute(env *routeEnv, r *config.Route) (http.Handler, error) {
	cfg := env.cfg
	rlog := env.logger.With(slog.String("route", r.Name))
	up, err := newUpstreamProxy(env, r, rlog)
	if err != nil {
		return nil, err
	}
	strip := r.SOAP.StripSecurityHeader == nil || *r.SOAP.StripSecurityHeader
	so := soap.Options{
		Route:               r.Name,
		Verifier:            newVerifier(cfg, r, env.secrets, env.stores.replay, env.now),
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
	h := soap.New(so)
	return rateLimited(env, r, h, rlog)
}

// buildBridgeRoute is a bridge (REST to SOAP) route: the oauth edge of
// REST routes in front of the bridge, so tokens, scopes, rate limits and
// forward_claims apply unchanged.
func buildBridgeRoute(env *routeEnv, r *config.Route) (http.Handler, *jwksEntry, error) {
	b, err := buildBridge(env, r)
	if err != nil {
		return nil, nil, err
	}
	return buildOAuthEdge(env, r, b)
}

// writeJSONError answers with the REST error body of the product contract.
// The request ID is the one the front door set on the request.
func writeJSONError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	id := reqscope.IDOf(r)
	w.Header().Set(soap.RequestIDHeader, id)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc, "request_id": id})
}

// router sends a request to the route with the longest matching path prefix.
type router struct {
	routes []routeEntry // longest prefix first
	logger *slog.Logger
}

type routeEntry struct {
	name, prefix string
	handler      http.Handler
}

func (rt *router) add(name, prefix string, h http.Handler) {
	rt.routes = append(rt.routes, routeEntry{name: name, prefix: prefix, handler: h})
	sort.SliceStable(rt.routes, func(i, j int) bool { return len(rt.routes[i].prefix) > len(rt.routes[j].prefix) })
}

// match returns the route for p, or nil. Prefixes match on path segment
// boundaries: /soap/orders matches /soap/orders and /soap/orders/x, never /soap/ordersX.
func (rt *router) match(p string) *routeEntry {
	for i := range rt.routes {
		e := &rt.routes[i]
		if e.prefix == "/" || p == e.prefix || strings.HasPrefix(p, e.prefix+"/") {
			return e
		}
	}
	return nil
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // sentinel panic value, compared as net/http does
				panic(v)
			}
			rt.logger.Error("handler panic", slog.String("path", r.URL.Path), slog.Any("panic", v))
			writeJSONError(w, r, http.StatusInternalServerError, "internal_error", "internal error")
		}
	}()
	p := r.URL.Path
	if !cleanPath(p) {
		// Dot segments or doubled slashes could make a route and its
		// upstream disagree about which resource is meant.
		writeJSONError(w, r, http.StatusBadRequest, "invalid_request", "path is not in canonical form")
		return
	}
	e := rt.match(p)
	if e == nil {
		writeJSONError(w, r, http.StatusNotFound, "not_found", "no route for this path")
		return
	}
	e.handler.ServeHTTP(w, r)
}

// cleanPath reports whether p is absolute and canonical (a trailing slash is allowed).
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	c := path.Clean(p)
	return c == p || (strings.HasSuffix(p, "/") && c+"/" == p)
}
