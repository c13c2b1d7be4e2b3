package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"wsgate/config"
	"wsgate/internal/metrics"
)

// reloadTimeout bounds loading a new configuration's secrets and key sets on SIGHUP.
const reloadTimeout = 30 * time.Second

// process is what outlives one configuration: the listeners, the logger
// (whose level a reload may change), the metrics registry and the gateway
// in service, swapped atomically by a reload.
type process struct {
	logger   *slog.Logger
	level    *slog.LevelVar
	now      func() time.Time
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	// cfgPath is re-read on SIGHUP; empty means SIGHUP refreshes secrets only.
	cfgPath string

	cur      atomic.Pointer[gateway]
	reloadMu sync.Mutex // one reload at a time
}

// newProcess builds the logger and the metrics registry. w nil discards logs.
func newProcess(l config.Log, w io.Writer, now func() time.Time) (*process, error) {
	if w == nil {
		w = io.Discard
	}
	lv := &slog.LevelVar{}
	setLevel(lv, l.Level)
	p := &process{logger: newLeveledLogger(l.Format, lv, w), level: lv, now: now,
		registry: prometheus.NewRegistry()}
	m, err := metrics.New(p.registry, metrics.Sources{SecretAges: p.secretAges, MemoryBudget: p.memoryBudget}, now)
	if err != nil {
		return nil, err
	}
	p.metrics = m
	return p, nil
}

// current is the gateway in service.
func (p *process) current() *gateway { return p.cur.Load() }

func (p *process) secretAges() []metrics.SecretAge {
	g := p.current()
	if g == nil {
		return nil
	}
	var out []metrics.SecretAge
	for _, s := range g.secrets.Status() {
		out = append(out, metrics.SecretAge{Path: s.Path, LoadedAt: s.LoadedAt})
	}
	return out
}

// memoryBudget is the serving gateway's SOAP memory budget: held, size.
func (p *process) memoryBudget() (inUse, limit int64) {
	if g := p.current(); g != nil && g.budget != nil {
		return g.budget.InUse(), g.budget.Limit()
	}
	return 0, 0
}

// serve runs g on a process of its own (tests).
func (g *gateway) serve(ctx context.Context, ready func(addr string)) error {
	p, err := newProcess(g.cfg.Log, nil, time.Now)
	if err != nil {
		return err
	}
	p.logger = g.logger
	g.metrics = p.metrics
	return p.serve(ctx, g, ready)
}

// serve puts g in service: it loads g's secrets, listens, and serves until
// ctx ends; then in-flight requests get limits.shutdown_timeout to finish.
func (p *process) serve(ctx context.Context, g *gateway, ready func(addr string)) error {
	p.cur.Store(g)
	// A secret that fails to load must not stop the gateway: its route
	// answers 503 until a later refresh succeeds.
	if err := p.refreshSecrets(ctx, g); err != nil {
		p.logger.Error("secrets refresh failed; affected routes answer 503 until it succeeds",
			slog.String("error", err.Error()))
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", g.cfg.Listen)
	if err != nil {
		return err
	}
	readTimeout := g.cfg.Limits.ReadTimeout.D()
	errorLog := slog.NewLogLogger(p.logger.Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler:           &frontDoor{cur: p.current, metrics: p.metrics, now: p.now},
		ReadHeaderTimeout: min(readTimeout, maxReadHeaderTimeout),
		ReadTimeout:       readTimeout,
		MaxHeaderBytes:    g.cfg.Limits.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errorLog,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	scheme := "http"
	serveFn := func() error { return srv.Serve(ln) }
	if g.tls != nil {
		// ServeTLS adds h2 to the offered protocols; certificates come from
		// the gateway in service, per handshake.
		srv.TLSConfig = listenerConfig(p.current)
		serveFn = func() error { return srv.ServeTLS(ln, "", "") }
		scheme = "https"
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.start(runCtx, g)
	// Registered before ready is called, so a SIGHUP from then on never
	// meets the default action (terminate).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go p.reloadOnHangup(runCtx, hup)

	served := make(chan error, 2)
	go func() { served <- serveFn() }()
	addr := ln.Addr().String()
	p.logger.Info("wsgate listening", slog.String("addr", addr), slog.String("scheme", scheme),
		slog.Int("routes", len(g.cfg.Routes)))

	var admin *http.Server
	if g.cfg.AdminListen != "" {
		aln, err := lc.Listen(ctx, "tcp", g.cfg.AdminListen)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("admin listener: %w", err)
		}
		admin = &http.Server{
			Handler:           adminHandler(p.current, p.registry),
			ReadHeaderTimeout: maxReadHeaderTimeout,
			ReadTimeout:       maxReadHeaderTimeout,
			ErrorLog:          errorLog,
		}
		go func() { served <- admin.Serve(aln) }()
		p.logger.Info("admin listening", slog.String("addr", aln.Addr().String()))
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
	grace := p.current().cfg.Limits.ShutdownTimeout.D()
	p.logger.Info("shutting down: in-flight requests may finish", slog.Duration("grace", grace))
	sctx, scancel := context.WithTimeout(context.Background(), grace)
	defer scancel()
	if admin != nil {
		_ = admin.Shutdown(sctx)
	}
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	cancel()
	p.reloadMu.Lock() // a reload in progress finishes first; none starts after
	defer p.reloadMu.Unlock()
	p.current().stop()
	p.current().release(nil)
	p.logger.Info("stopped")
	return nil
}

// start runs g's background refreshes (secrets every refresh_interval, JWK
// Sets as their cache headers say) until ctx ends or g is replaced.
func (p *process) start(ctx context.Context, g *gateway) {
	gctx, cancel := context.WithCancel(ctx)
	g.stopFn = cancel
	go func() {
		interval := g.cfg.Secrets.RefreshInterval.D()
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
				_ = p.refreshSecrets(gctx, g) // failures are logged by the Manager
			}
		}
	}()
	for _, j := range g.jwks {
		go j.src.Run(gctx) // fetches at once, then as the set's cache headers say
	}
}

func (p *process) refreshSecrets(ctx context.Context, g *gateway) error {
	return g.refreshSecrets(ctx)
}

// refreshSecrets re-reads every secret of g, counting the round in the metrics.
func (g *gateway) refreshSecrets(ctx context.Context) error {
	err := g.secrets.Refresh(ctx)
	g.metrics.SecretRefresh(err == nil)
	return err
}

func (p *process) refresh(ctx context.Context, g *gateway) error { return g.refresh(ctx) }

// refresh re-reads every secret and re-fetches every JWK Set of g now.
// It returns every failure; the last good values stay in use.
func (g *gateway) refresh(ctx context.Context) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, j := range g.jwks {
		wg.Go(func() {
			if err := j.src.Refresh(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("route %s: jwks %s: %w", j.route, j.url, err))
				mu.Unlock()
			}
		})
	}
	if err := g.refreshSecrets(ctx); err != nil {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stop ends g's background refreshes and releases its idle upstream connections.
func (g *gateway) stop() {
	if g.stopFn != nil {
		g.stopFn()
	}
	for _, t := range g.transports {
		t.CloseIdleConnections()
	}
}

// release stops what g holds that next does not share: the stores' Redis
// client, the Vault backend's token renewal, the tls.pki renewal. next nil
// releases everything.
func (g *gateway) release(next *gateway) {
	if g == nil {
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
	if g.stores != nil && g.stores != keepStores && g.stores.close != nil {
		g.stores.close()
	}
	if g.tls != nil && g.tls.pki != nil && g.tls.pki != keepPKI {
		g.tls.pki.stop()
	}
	if g.backend != nil && g.backend != keepBackend {
		g.backend.close()
	}
}

// reloadOnHangup reloads on each signal from hup until ctx ends.
func (p *process) reloadOnHangup(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = p.reload(ctx)
		}
	}
}

// reload re-reads the config file and every secret and swaps them in as
// one: the new config is loaded and validated, its routes built, its
// secrets and key sets loaded, and only then does it replace the old one
// with an atomic pointer store. Requests already running finish on the
// gateway they started on. Anything wrong (invalid config, a route that
// cannot be built, a secret or key set that cannot be loaded) refuses the
// reload with the reasons logged, and the old configuration keeps serving.
// Listeners are not restarted: a changed listen or admin_listen address
// takes a restart. Without a config file, reload refreshes the secrets.
func (p *process) reload(ctx context.Context) error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err // shutting down
	}
	old := p.current()
	if p.cfgPath == "" {
		p.logger.Info("SIGHUP: refreshing secrets and key sets")
		err := p.refresh(ctx, old)
		if err != nil {
			p.logger.Error("refresh failed; keeping the last good values", slog.String("error", err.Error()))
		}
		return err
	}
	p.logger.Info("SIGHUP: reloading configuration and secrets", slog.String("config", p.cfgPath))
	refuse := func(reasons ...string) error {
		p.logger.Error("reload refused; the running configuration keeps serving",
			slog.String("config", p.cfgPath), slog.Any("reasons", reasons))
		return fmt.Errorf("reload refused: %s", strings.Join(reasons, "; "))
	}

	cfg, problems := configProblems(p.cfgPath)
	if len(problems) > 0 {
		return refuse(problems...)
	}
	if (cfg.TLS == nil) != (old.cfg.TLS == nil) {
		return refuse("tls: enabling or disabling TLS on the listener takes a restart")
	}
	for _, c := range []struct{ key, was, is string }{
		{"listen", old.cfg.Listen, cfg.Listen},
		{"admin_listen", old.cfg.AdminListen, cfg.AdminListen},
		{"log.format", old.cfg.Log.Format, cfg.Log.Format},
		{"limits.max_header_bytes", fmt.Sprint(old.cfg.Limits.MaxHeaderBytes), fmt.Sprint(cfg.Limits.MaxHeaderBytes)},
		{"limits.read_timeout", old.cfg.Limits.ReadTimeout.String(), cfg.Limits.ReadTimeout.String()},
	} {
		if c.was != c.is {
			p.logger.Warn("reload: this setting takes a restart; the old value stays in effect",
				slog.String("key", c.key), slog.String("running", c.was), slog.String("new", c.is))
		}
	}

	g, err := p.build(cfg, filepath.Dir(p.cfgPath), old)
	if err != nil {
		return refuse(err.Error())
	}
	rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	err = p.refresh(rctx, g)
	cancel()
	if err != nil {
		g.stop()
		g.release(old)
		return refuse(strings.Split(err.Error(), "\n")...)
	}

	setLevel(p.level, cfg.Log.Level)
	p.start(ctx, g)
	p.cur.Store(g)
	old.stop()
	// Requests still running on the old gateway may use its stores a while.
	time.AfterFunc(old.cfg.Limits.ShutdownTimeout.D(), func() { old.release(g) })
	p.logger.Info("configuration reloaded", slog.String("config", p.cfgPath), slog.Int("routes", len(cfg.Routes)))
	return nil
}
