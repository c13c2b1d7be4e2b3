package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"wsgate/config"
	"wsgate/proxy"
	"wsgate/secrets"
	"wsgate/soap"
	"wsgate/wssec"
)

// shutdownGrace bounds how long in-flight requests may take to finish after
// SIGINT/SIGTERM before connections are closed.
const shutdownGrace = 30 * time.Second

// maxReadHeaderTimeout caps the header read so a slow client cannot hold a
// connection for the whole read_timeout before sending a request line.
const maxReadHeaderTimeout = 10 * time.Second

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "", "configuration file (required)")
	if !parseFlags(fs, args, stderr) {
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "wsgate serve: -config is required")
		return exitUsage
	}
	return serveFile(ctx, *path, stderr, nil)
}

// serveFile runs the proxy described by the config file at path until ctx
// ends. ready, when set, is called with the bound listener address.
func serveFile(ctx context.Context, cfgPath string, stderr io.Writer, ready func(addr string)) int {
	cfg, ok := loadConfig(cfgPath, stderr)
	if !ok {
		return exitFail
	}
	logger := newLogger(cfg.Log, stderr)
	gw, err := newGateway(cfg, filepath.Dir(cfgPath), logger, time.Now)
	if err != nil {
		fmt.Fprintf(stderr, "wsgate serve: %v\n", err)
		return exitFail
	}
	if err := gw.serve(ctx, ready); err != nil {
		logger.Error("serve failed", slog.String("error", err.Error()))
		return exitFail
	}
	return exitOK
}

// newLogger builds the slog logger config.log asks for, writing to w.
func newLogger(l config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// newSecretsManager builds the secrets manager for the configured backend.
// Relative file-backend directories are resolved against baseDir, the
// directory of the config file, so a config and its secrets move together.
func newSecretsManager(cfg *config.Config, baseDir string, logger *slog.Logger, now func() time.Time) (*secrets.Manager, error) {
	switch cfg.Secrets.Backend {
	case "file":
		dir := cfg.Secrets.File.Dir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(baseDir, dir)
		}
		return secrets.NewManager(secrets.NewFile(dir), logger, now), nil
	case "vault":
		return nil, errors.New("vault backend not built yet")
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

// gateway is a built proxy: its routes, its secrets and its settings.
type gateway struct {
	cfg     *config.Config
	secrets *secrets.Manager
	jwks    []*jwksEntry // the jwks_url key sources of REST routes
	handler http.Handler
	logger  *slog.Logger
}

// newGateway builds every route's handler. It does no network I/O (it only
// reads jwks_ca_cert files): secrets and key sets load when serve starts.
func newGateway(cfg *config.Config, baseDir string, logger *slog.Logger, now func() time.Time) (*gateway, error) {
	if cfg.TLS != nil {
		// Refuse rather than silently serve plain HTTP where TLS was asked for.
		return nil, errors.New("tls listener not built yet")
	}
	var replay wssec.ReplayCache
	switch cfg.Replay.Store {
	case "memory":
		replay = wssec.NewMemoryReplayCache(now)
	case "redis":
		return nil, errors.New("redis replay store not built yet")
	default:
		return nil, fmt.Errorf("unknown replay store %q", cfg.Replay.Store)
	}
	mgr, err := newSecretsManager(cfg, baseDir, logger, now)
	if err != nil {
		return nil, err
	}

	rt := &router{logger: logger}
	var sources []*jwksEntry
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		var h http.Handler
		switch r.Kind() {
		case config.KindSOAP:
			h, err = buildSOAPRoute(cfg, r, mgr, replay, now, logger)
		case config.KindPublic:
			h, err = buildPublicRoute(cfg, r, logger)
		case config.KindREST:
			var src *jwksEntry
			h, src, err = buildRESTRoute(cfg, r, baseDir, mgr, now, logger)
			if src != nil {
				sources = append(sources, src)
			}
		case config.KindBridge:
			h, err = buildBridgeRoute(cfg, r, mgr, logger)
		default:
			err = errors.New("route kind unknown")
		}
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		rt.add(r.Name, r.PathPrefix, h)
	}
	return &gateway{cfg: cfg, secrets: mgr, jwks: sources, handler: rt, logger: logger}, nil
}

// newUpstreamProxy is the route's reverse proxy to its upstream, with the path prefix stripped.
func newUpstreamProxy(cfg *config.Config, r *config.Route, logger *slog.Logger) (http.Handler, error) {
	return proxy.New(proxy.Options{
		Upstream:    r.Upstream,
		StripPrefix: r.PathPrefix,
		Timeout:     cfg.Limits.UpstreamTimeout.D(),
		Logger:      logger,
	})
}

// buildPublicRoute is a plain reverse proxy with the body size limit.
func buildPublicRoute(cfg *config.Config, r *config.Route, logger *slog.Logger) (http.Handler, error) {
	rlog := logger.With(slog.String("route", r.Name))
	if r.RateLimit != nil {
		rlog.Warn("rate_limit is built for oauth routes only so far: this route is not rate limited")
	}
	up, err := newUpstreamProxy(cfg, r, rlog)
	if err != nil {
		return nil, err
	}
	return limitBody(up, cfg.Limits.MaxBodyBytes), nil
}

func buildSOAPRoute(cfg *config.Config, r *config.Route, mgr *secrets.Manager, replay wssec.ReplayCache,
	now func() time.Time, logger *slog.Logger) (http.Handler, error) {
	rlog := logger.With(slog.String("route", r.Name))
	up, err := newUpstreamProxy(cfg, r, rlog)
	if err != nil {
		return nil, err
	}
	if r.SOAP.SignResponse != "" {
		rlog.Warn("soap.sign_response is not built yet: responses are forwarded unsigned")
	}
	if r.RateLimit != nil {
		rlog.Warn("rate_limit is built for oauth routes only so far: this route is not rate limited")
	}
	strip := r.SOAP.StripSecurityHeader == nil || *r.SOAP.StripSecurityHeader
	return soap.New(soap.Options{
		Route:               r.Name,
		Verifier:            newVerifier(cfg, r, mgr, replay, now),
		Limits:              xmlLimits(cfg),
		MaxBodyBytes:        cfg.Limits.MaxBodyBytes,
		StripSecurityHeader: strip,
		Upstream:            up,
		Logger:              logger, // the audit records name the route themselves
	}), nil
}

// buildBridgeRoute is the hook for bridge (REST to SOAP) routes; it answers
// 501 until the bridge lands.
func buildBridgeRoute(cfg *config.Config, r *config.Route, mgr *secrets.Manager, logger *slog.Logger) (http.Handler, error) {
	return notImplemented("bridge routes are not implemented yet"), nil
}

func notImplemented(msg string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, r, http.StatusNotImplemented, "not_implemented", msg)
	})
}

// writeJSONError answers with the REST error body of the product contract.
func writeJSONError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	id := soap.RequestID(r, soap.NewRequestID)
	w.Header().Set(soap.RequestIDHeader, id)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc, "request_id": id})
}

// serve listens, loads secrets, and serves until ctx ends; then it shuts
// down gracefully, letting in-flight requests finish within shutdownGrace.
func (g *gateway) serve(ctx context.Context, ready func(addr string)) error {
	// A secret that fails to load must not stop the gateway: its route
	// answers 503 until a later refresh succeeds.
	if err := g.secrets.Refresh(ctx); err != nil {
		g.logger.Error("secrets refresh failed; affected routes answer 503 until it succeeds",
			slog.String("error", err.Error()))
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", g.cfg.Listen)
	if err != nil {
		return err
	}
	readTimeout := g.cfg.Limits.ReadTimeout.D()
	srv := &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: min(readTimeout, maxReadHeaderTimeout),
		ReadTimeout:       readTimeout,
		MaxHeaderBytes:    g.cfg.Limits.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(g.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go g.secrets.Run(runCtx, g.cfg.Secrets.RefreshInterval.D())
	for _, j := range g.jwks {
		go j.src.Run(runCtx) // fetches at once, then as the set's cache headers say
	}
	go g.refreshOnHangup(runCtx)

	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	g.logger.Info("wsgate listening", slog.String("addr", addr), slog.Int("routes", len(g.cfg.Routes)))

	var admin *http.Server
	if g.cfg.AdminListen != "" {
		aln, err := lc.Listen(ctx, "tcp", g.cfg.AdminListen)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("admin listener: %w", err)
		}
		admin = &http.Server{
			Handler:           adminHandler(g.secrets, g.jwks),
			ReadHeaderTimeout: maxReadHeaderTimeout,
			ReadTimeout:       maxReadHeaderTimeout,
			ErrorLog:          srv.ErrorLog,
		}
		go func() { served <- admin.Serve(aln) }()
		g.logger.Info("admin listening", slog.String("addr", aln.Addr().String()))
	}
	if ready != nil {
		ready(addr)
	}

	select {
	case err := <-served:
		_ = srv.Close()
		if admin != nil {
			_ = admin.Close()
		}
		return err
	case <-ctx.Done():
	}
	g.logger.Info("shutting down", slog.Duration("grace", shutdownGrace))
	sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer scancel()
	if admin != nil {
		_ = admin.Shutdown(sctx)
	}
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	g.logger.Info("stopped")
	return nil
}

// refreshOnHangup re-reads secrets and JWK Sets on SIGHUP until ctx ends.
func (g *gateway) refreshOnHangup(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			g.logger.Info("SIGHUP: refreshing secrets and key sets")
			g.refresh(ctx)
		}
	}
}

// refresh re-reads every secret and re-fetches every JWK Set now. Failures
// are logged; the last good values stay in use.
func (g *gateway) refresh(ctx context.Context) {
	var wg sync.WaitGroup
	for _, j := range g.jwks {
		wg.Go(func() {
			if err := j.src.Refresh(ctx); err != nil {
				g.logger.Error("jwks refresh failed; keeping the last good key set",
					slog.String("route", j.route), slog.String("url", j.url), slog.String("error", err.Error()))
			}
		})
	}
	if err := g.secrets.Refresh(ctx); err != nil {
		g.logger.Error("secrets refresh failed", slog.String("error", err.Error()))
	}
	wg.Wait()
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
