package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"wsgate/config"
	"wsgate/gateway"
)

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
// ends. ready, when set, is called with the bound listener addresses (the
// admin one "" without admin_listen). SIGHUP re-reads the file and the
// secrets (see reloadOnHangup).
func serveFile(ctx context.Context, cfgPath string, stderr io.Writer, ready func(addr, adminAddr string)) int {
	cfg, ok := loadConfig(cfgPath, stderr)
	if !ok {
		return exitFail
	}
	lv := &slog.LevelVar{}
	gateway.SetLevel(lv, cfg.Log.Level)
	logger, stopLog := newBufferedLogger(cfg.Log.Format, lv, stderr)
	defer stopLog()
	g, err := gateway.New(cfg, gateway.Deps{Logger: logger, Level: lv, Now: time.Now, BaseDir: filepath.Dir(cfgPath)})
	if err != nil {
		fmt.Fprintf(stderr, "wsgate serve: %v\n", err)
		return exitFail
	}
	// Registered before the listener is up, so a SIGHUP from then on never
	// meets the default action (terminate).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go reloadOnHangup(runCtx, g, cfgPath, hup)
	var announce func(string)
	if ready != nil {
		announce = func(addr string) { ready(addr, g.AdminAddr()) }
	}
	if err := g.Serve(ctx, announce); err != nil {
		logger.Error("serve failed", slog.String("error", err.Error()))
		return exitFail
	}
	return exitOK
}

// reloadOnHangup reloads g from cfgPath on each signal from hup until ctx
// ends: a file that does not load is refused (the running configuration
// keeps serving), else Gateway.Reload swaps it in.
func reloadOnHangup(ctx context.Context, g *gateway.Gateway, cfgPath string, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			g.Logger().Info("SIGHUP: reloading configuration and secrets", slog.String("config", cfgPath))
			cfg, problems := configProblems(cfgPath)
			if len(problems) > 0 {
				_ = g.Refuse(problems...)
				continue
			}
			_ = g.Reload(ctx, cfg)
		}
	}
}

// newLogger builds the slog logger config.log asks for, writing to w.
func newLogger(l config.Log, w io.Writer) *slog.Logger {
	lv := &slog.LevelVar{}
	gateway.SetLevel(lv, l.Level)
	return newLeveledLogger(l.Format, lv, w)
}

// newLeveledLogger builds a JSON (or text) logger whose level a reload can change.
func newLeveledLogger(format string, lv *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
