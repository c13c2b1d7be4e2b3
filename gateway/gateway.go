// Package gateway is wsgate's runtime: it turns a validated configuration
// into the proxy handler (one front door, one router, one handler per
// route), the admin handler (/healthz, /readyz, /metrics), and the
// background work that keeps secrets and key sets fresh. A reload builds a
// new generation of routes and swaps it in whole; requests already running
// finish on the generation they started on.
//
// cmd/wsgate owns flags, commands, signals and the demo; it calls New,
// Serve (or Handler and AdminHandler), Reload, Refresh and Close. Nothing
// here calls back into it.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"wsgate/config"
	"wsgate/internal/metrics"
)

// reloadTimeout bounds loading a new configuration's secrets and key sets.
const reloadTimeout = 30 * time.Second

// Deps are what a Gateway is given rather than reaching for: its logger,
// metrics registry, clock and the directory relative paths resolve against.
type Deps struct {
	// Logger receives the access log, audit records and operational
	// messages; nil discards them.
	Logger *slog.Logger
	// Level, when set, is the level variable behind Logger: Reload sets it
	// to the new config's log.level.
	Level *slog.LevelVar
	// Registry receives wsgate's metrics and the Go runtime and process
	// collectors, and is what /metrics serves; nil means a fresh registry.
	Registry *prometheus.Registry
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// BaseDir is the directory of the config file: relative paths in the
	// config (secrets.file.dir, request templates, CA files) resolve
	// against it. Empty means the working directory.
	BaseDir string
	// Version labels wsgate_build_info; empty means the module version
	// from the build info.
	Version string
}

// Gateway is what outlives one configuration: the logger, the metrics and
// the generation in service, swapped atomically by Reload. Its methods are
// safe for concurrent use.
type Gateway struct {
	logger   *slog.Logger
	level    *slog.LevelVar
	now      func() time.Time
	baseDir  string
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	// tracer starts the requests' server spans; nil without tracing. tp is
	// its provider, the gateway's own (never the otel global), flushed on Close.
	// A reload keeps them: tracing changes take a restart.
	tracer trace.Tracer
	tp     *sdktrace.TracerProvider

	cur       atomic.Pointer[generation]
	reloadMu  sync.Mutex   // one reload at a time
	adminAddr atomic.Value // string: the bound admin listener, while serving

	// runCtx is the context background loops run under once Start ran.
	runMu  sync.Mutex
	runCtx context.Context
	cancel context.CancelFunc
	closed bool
}

// New builds the gateway for cfg, which must be valid (config.Validate).
// It does no network I/O beyond reading files the config names: secrets
// and key sets load on Start (or Refresh), and until they do the routes
// that need them answer 503.
func New(cfg *config.Config, deps Deps) (*Gateway, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	g := &Gateway{logger: deps.Logger, level: deps.Level, now: deps.Now, baseDir: deps.BaseDir, registry: deps.Registry}
	m, err := metrics.New(deps.Registry, metrics.Sources{SecretAges: g.secretAges, MemoryBudget: g.memoryBudget,
		Version: deps.Version}, deps.Now)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	if err := deps.Registry.Register(newUpstreamCollector(g.current)); err != nil {
		return nil, err
	}
	if g.tp, err = newTracerProvider(cfg.Tracing, deps.Version); err != nil {
		return nil, err
	}
	if g.tp != nil {
		g.tracer = g.tp.Tracer(tracerName)
	}
	gen, err := g.build(cfg, nil)
	if err != nil {
		_ = shutdownTracing(g.tp)
		return nil, err
	}
	g.cur.Store(gen)
	return g, nil
}

// current is the generation in service.
func (g *Gateway) current() *generation { return g.cur.Load() }

// Config is the configuration in service.
func (g *Gateway) Config() *config.Config { return g.current().cfg }

// Logger is the gateway's logger.
func (g *Gateway) Logger() *slog.Logger { return g.logger }

func (g *Gateway) secretAges() []metrics.SecretAge {
	gen := g.current()
	if gen == nil {
		return nil
	}
	var out []metrics.SecretAge
	for _, s := range gen.secrets.Status() {
		out = append(out, metrics.SecretAge{Path: s.Path, LoadedAt: s.LoadedAt})
	}
	return out
}

// memoryBudget is the serving generation's SOAP memory budget: held, size.
func (g *Gateway) memoryBudget() (inUse, limit int64) {
	if gen := g.current(); gen != nil && gen.budget != nil {
		return gen.budget.InUse(), gen.budget.Limit()
	}
	return 0, 0
}

// Start loads every secret and key set once (a failure is logged, not
// returned: the affected routes answer 503 until a later refresh succeeds)
// and runs the background refreshes (secrets every refresh_interval, JWK
// Sets as their cache headers say) until ctx ends or Close is called.
func (g *Gateway) Start(ctx context.Context) {
	g.runMu.Lock()
	if g.runCtx != nil || g.closed {
		g.runMu.Unlock()
		return
	}
	g.runCtx, g.cancel = context.WithCancel(ctx)
	runCtx := g.runCtx
	g.runMu.Unlock()
	gen := g.current()
	if err := gen.refreshSecrets(runCtx, g.metrics); err != nil {
		g.logger.Error("secrets refresh failed; affected routes answer 503 until it succeeds",
			slog.String("error", err.Error()))
	}
	gen.start(runCtx, g.metrics)
}

// Refresh re-reads every secret and re-fetches every JWK Set of the
// configuration in service now. It returns every failure; the last good
// values stay in use.
func (g *Gateway) Refresh(ctx context.Context) error {
	return g.current().refresh(ctx, g.metrics)
}

// Close stops the background work and releases what the gateway holds
// (Redis connections, Vault token renewal, idle upstream connections). The
// handlers keep answering with what they hold; Close is for the end.
func (g *Gateway) Close() {
	g.runMu.Lock()
	if g.closed {
		g.runMu.Unlock()
		return
	}
	g.closed = true
	if g.cancel != nil {
		g.cancel()
	}
	g.runMu.Unlock()
	g.reloadMu.Lock() // a reload in progress finishes first; none starts after
	defer g.reloadMu.Unlock()
	gen := g.current()
	gen.stop()
	gen.release(nil)
	if err := shutdownTracing(g.tp); err != nil {
		g.logger.Warn("tracing: final flush failed", slog.String("error", err.Error()))
	}
}

// Reload builds cfg (which must be valid) and swaps it in as one: its
// routes built, its secrets and key sets loaded, and only then does it
// replace the configuration in service. Requests already running finish on
// the one they started on. Anything wrong (a route that cannot be built, a
// secret or key set that cannot be loaded) refuses the reload with the
// reasons logged, and the old configuration keeps serving. Listeners are
// not restarted: a changed listen or admin_listen address takes a restart.
func (g *Gateway) Reload(ctx context.Context, cfg *config.Config) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err // shutting down
	}
	if g.closed {
		return errors.New("gateway closed")
	}
	old := g.current()
	if (cfg.TLS == nil) != (old.cfg.TLS == nil) {
		return g.refuse("tls: enabling or disabling TLS on the listener takes a restart")
	}
	for _, c := range []struct{ key, was, is string }{
		{"listen", old.cfg.Listen, cfg.Listen},
		{"admin_listen", old.cfg.AdminListen, cfg.AdminListen},
		{"log.format", old.cfg.Log.Format, cfg.Log.Format},
		{"limits.max_header_bytes", fmt.Sprint(old.cfg.Limits.MaxHeaderBytes), fmt.Sprint(cfg.Limits.MaxHeaderBytes)},
		{"limits.read_timeout", old.cfg.Limits.ReadTimeout.String(), cfg.Limits.ReadTimeout.String()},
	} {
		if c.was != c.is {
			g.logger.Warn("reload: this setting takes a restart; the old value stays in effect",
				slog.String("key", c.key), slog.String("running", c.was), slog.String("new", c.is))
		}
	}

	gen, err := g.build(cfg, old)
	if err != nil {
		return g.refuse(err.Error())
	}
	rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	err = gen.refresh(rctx, g.metrics)
	cancel()
	if err != nil {
		gen.stop()
		gen.release(old)
		return g.refuse(strings.Split(err.Error(), "\n")...)
	}

	if g.level != nil {
		SetLevel(g.level, cfg.Log.Level)
	}
	g.runMu.Lock()
	if g.runCtx != nil {
		gen.start(g.runCtx, g.metrics)
	}
	g.runMu.Unlock()
	g.cur.Store(gen)
	old.stop()
	// Requests still running on the old generation may use its stores a while.
	time.AfterFunc(old.cfg.Limits.ShutdownTimeout.D(), func() { old.release(gen) })
	g.logger.Info("configuration reloaded", slog.Int("routes", len(cfg.Routes)))
	return nil
}

// Refuse logs a refused reload and returns it as an error; cmd uses it for
// a config file that does not load, so every refusal reads the same.
func (g *Gateway) Refuse(reasons ...string) error {
	return g.refuse(reasons...)
}

func (g *Gateway) refuse(reasons ...string) error {
	g.logger.Error("reload refused; the running configuration keeps serving", slog.Any("reasons", reasons))
	return fmt.Errorf("reload refused: %s", strings.Join(reasons, "; "))
}

// SetLevel sets lv to a config log.level name; unknown names mean info.
func SetLevel(lv *slog.LevelVar, name string) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(name)); err != nil {
		level = slog.LevelInfo
	}
	lv.Set(level)
}

// start runs gen's background refreshes until ctx ends or gen is replaced.
func (gen *generation) start(ctx context.Context, m *metrics.Metrics) {
	gctx, cancel := context.WithCancel(ctx)
	gen.stopFn = cancel
	go func() {
		interval := gen.cfg.Secrets.RefreshInterval.D()
		if interval <= 0 {
			return
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return
			case <-t.C:
				_ = gen.refreshSecrets(gctx, m) // failures are logged by the Manager
			}
		}
	}()
	for _, j := range gen.jwks {
		go j.src.Run(gctx) // fetches at once, then as the set's cache headers say
	}
	for _, p := range gen.pools {
		go p.pool.Run(gctx) // probes at once, then every health_check.interval; none without one
	}
}

// refreshSecrets re-reads every secret of gen, counting the round in the metrics.
func (gen *generation) refreshSecrets(ctx context.Context, m *metrics.Metrics) error {
	err := gen.secrets.Refresh(ctx)
	m.SecretRefresh(err == nil)
	return err
}

// refresh re-reads every secret and re-fetches every JWK Set of gen now.
func (gen *generation) refresh(ctx context.Context, m *metrics.Metrics) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, j := range gen.jwks {
		wg.Go(func() {
			if err := j.src.Refresh(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("route %s: jwks %s: %w", j.route, j.url, err))
				mu.Unlock()
			}
		})
	}
	if err := gen.refreshSecrets(ctx, m); err != nil {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stop ends gen's background refreshes and releases its idle upstream connections.
func (gen *generation) stop() {
	if gen.stopFn != nil {
		gen.stopFn()
	}
	for _, t := range gen.transports {
		t.CloseIdleConnections()
	}
}

// release stops what gen holds that next does not share: the stores' Redis
// client, the Vault backend's token renewal, the tls.pki renewal. next nil
// releases everything.
func (gen *generation) release(next *generation) {
	if gen == nil {
		return
	}
	var keepStores *stores
	var keepBackend *backend
	var keepPKI *pkiHandle
	if next != nil {
		keepStores, keepBackend = next.stores, next.backend
		if next.tls != nil {
			keepPKI = next.tls.pki
		}
	}
	if gen.stores != nil && gen.stores != keepStores && gen.stores.close != nil {
		gen.stores.close()
	}
	if gen.tls != nil && gen.tls.pki != nil && gen.tls.pki != keepPKI {
		gen.tls.pki.stop()
	}
	if gen.backend != nil && gen.backend != keepBackend {
		gen.backend.close()
	}
}
