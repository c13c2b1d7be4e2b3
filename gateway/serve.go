package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// maxReadHeaderTimeout caps the header read so a slow client cannot hold a
// connection for the whole read_timeout before sending a request line.
const maxReadHeaderTimeout = 10 * time.Second

// Serve starts the gateway (Start), listens on listen and admin_listen, and
// serves until ctx ends; then in-flight requests get
// limits.shutdown_timeout to finish, and the gateway is closed. ready, when
// set, is called with the bound proxy address once both listeners are up
// (AdminAddr then names the admin one).
func (g *Gateway) Serve(ctx context.Context, ready func(addr string)) error {
	defer g.Close()
	cfg := g.Config()
	g.Start(ctx)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return err
	}
	readTimeout := cfg.Limits.ReadTimeout.D()
	errorLog := slog.NewLogLogger(g.logger.Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: min(readTimeout, maxReadHeaderTimeout),
		ReadTimeout:       readTimeout,
		MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errorLog,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnContext:       framingContext,
	}
	scheme := "http"
	// The framing tracker reads plain text only; on TLS the front door
	// closes the connection after every chunked HTTP/1.1 request instead.
	tracked := &framingListener{Listener: ln, maxHead: cfg.Limits.MaxHeaderBytes}
	serveFn := func() error { return srv.Serve(tracked) }
	if g.current().tls != nil {
		// ServeTLS adds h2 to the offered protocols; certificates come from
		// the configuration in service, per handshake.
		srv.TLSConfig = listenerConfig(g.current)
		serveFn = func() error { return srv.ServeTLS(ln, "", "") }
		scheme = "https"
	}

	served := make(chan error, 2)
	go func() { served <- serveFn() }()
	addr := ln.Addr().String()
	g.logger.Info("wsgate listening", slog.String("addr", addr), slog.String("scheme", scheme),
		slog.Int("routes", len(cfg.Routes)))

	var admin *http.Server
	if cfg.AdminListen != "" {
		aln, err := lc.Listen(ctx, "tcp", cfg.AdminListen)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("admin listener: %w", err)
		}
		admin = &http.Server{
			Handler:           g.AdminHandler(),
			ReadHeaderTimeout: maxReadHeaderTimeout,
			ReadTimeout:       maxReadHeaderTimeout,
			ErrorLog:          errorLog,
		}
		go func() { served <- admin.Serve(aln) }()
		g.adminAddr.Store(aln.Addr().String())
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
	grace := g.Config().Limits.ShutdownTimeout.D()
	g.logger.Info("shutting down: in-flight requests may finish", slog.Duration("grace", grace))
	sctx, scancel := context.WithTimeout(context.Background(), grace)
	defer scancel()
	if admin != nil {
		_ = admin.Shutdown(sctx)
	}
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	g.Close()
	g.logger.Info("stopped")
	return nil
}

// AdminAddr is the bound admin_listen address while Serve runs, else "".
func (g *Gateway) AdminAddr() string {
	a, _ := g.adminAddr.Load().(string)
	return a
}
