package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"wsgate/config"
	"wsgate/gateway"
	"wsgate/wssec"
)

// newFlags returns a flag set that reports to stderr and never exits.
// parseFlags prints its help.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wsgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args and refuses stray positional arguments. On -h it
// prints the command's help (to stdout when run asked for it, see
// cmdStderr) and reports false; run then exits 0.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) bool {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(fs, helpRequested(stderr))
		} else {
			commandHelp(fs, stderr)
		}
		return false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return false
	}
	return true
}

// configProblems checks the file at path (config.Check) and returns the
// config, or every problem as "path.to.field: reason (line N)".
func configProblems(path string) (*config.Config, []string) {
	r := checkConfigFile(path)
	if r.Config != nil {
		return r.Config, nil
	}
	out := make([]string, 0, len(r.Problems))
	for _, p := range r.Problems {
		out = append(out, p.String())
	}
	return nil, out
}

// loadConfig is configProblems for commands that need a valid config: it
// prints the problems to w as "FILE: problem" and reports failure.
func loadConfig(path string, w io.Writer) (*config.Config, bool) {
	cfg, problems := configProblems(path)
	for _, p := range problems {
		fmt.Fprintf(w, "%s: %s\n", path, p)
	}
	return cfg, problems == nil
}

// cmdCheckConfig prints every problem of the file, of the secrets
// directory and (with -secrets) of every secret the file names.
func cmdCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check-config", stderr)
	path := fs.String("config", "", "configuration file (required)")
	withSecrets := fs.Bool("secrets", false, "also read every secret the file names from the configured backend")
	if !parseFlags(fs, args, stderr) {
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "wsgate check-config: -config is required")
		return exitUsage
	}
	r := checkConfigFile(*path)
	if cfg := r.Partial(); cfg != nil {
		baseDir := filepath.Dir(*path)
		checkSecretsDir(r, cfg, baseDir)
		if *withSecrets {
			checkSecrets(ctx, r, cfg, baseDir, stderr)
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintf(stdout, "%s: %s\n", *path, p)
	}
	if len(r.Problems) > 0 {
		return exitFail
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return exitOK
}

// readInput reads the file at path, or stdin when path is "" or "-",
// refusing more than limit bytes.
func readInput(path string, stdin io.Reader, limit int64) ([]byte, error) {
	r := stdin
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: input over %d bytes", wssec.ErrTooLarge, limit)
	}
	return data, nil
}

func cmdVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("verify", stderr)
	path := fs.String("config", "", "configuration file (required)")
	routeName := fs.String("route", "", "route whose inbound policy applies (required)")
	in := fs.String("in", "", "envelope to verify (default stdin)")
	at := fs.String("at", "", "judge timestamps and certificates as of this RFC 3339 instant (default now)")
	if !parseFlags(fs, args, stderr) {
		return exitUsage
	}
	if *path == "" || *routeName == "" {
		fmt.Fprintln(stderr, "wsgate verify: -config and -route are required")
		return exitUsage
	}
	now := time.Now
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(stderr, "wsgate verify: -at: %v\n", err)
			return exitUsage
		}
		now = func() time.Time { return t }
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitFail
	}
	logger := cliLogger(cfg.Log, stderr)
	route, err := gateway.Route(cfg, *routeName, gateway.Deps{Logger: logger, Now: now, BaseDir: filepath.Dir(*path)})
	if err == nil {
		if err = route.CanVerify(); err != nil {
			route.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "wsgate verify: %v\n", err)
		return exitFail
	}
	defer route.Close()
	if err := route.Refresh(ctx); err != nil {
		// The verifier reports the missing trust itself; say why here.
		logger.Warn("secrets refresh failed", slog.String("error", err.Error()))
	}
	msg, err := readInput(*in, stdin, route.MaxBodyBytes())
	if err != nil && !errors.Is(err, wssec.ErrTooLarge) {
		fmt.Fprintf(stderr, "wsgate verify: %v\n", err)
		return exitFail
	}
	signer := ""
	if err == nil {
		signer, err = route.Verify(ctx, msg)
	}
	if err != nil {
		fmt.Fprintf(stdout, "FAIL %s: %v\n", wssec.FaultCode(err), err)
		return exitFail
	}
	fmt.Fprintf(stdout, "OK signer=%s\n", signer)
	return exitOK
}

func cmdSign(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runOffline(ctx, offlineCommand{
		name:      "sign",
		routeHelp: "route whose outbound signing identity signs (required)",
		inHelp:    "envelope to sign (default stdin)",
		outHelp:   "where to write the signed envelope (default stdout)",
		check:     (*gateway.OfflineRoute).CanSign,
		run:       (*gateway.OfflineRoute).Sign,
	}, args, stdin, stdout, stderr)
}

// offlineCommand is a command that turns one envelope into another with a
// route's outbound identity (sign, encrypt): the same flags, the same route
// builder as serving, and the same input and output handling.
type offlineCommand struct {
	name                       string
	routeHelp, inHelp, outHelp string
	check                      func(*gateway.OfflineRoute) error
	run                        func(*gateway.OfflineRoute, []byte) ([]byte, error)
}

func runOffline(ctx context.Context, c offlineCommand, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags(c.name, stderr)
	path := fs.String("config", "", "configuration file (required)")
	routeName := fs.String("route", "", c.routeHelp)
	in := fs.String("in", "", c.inHelp)
	out := fs.String("out", "", c.outHelp)
	if !parseFlags(fs, args, stderr) {
		return exitUsage
	}
	if *path == "" || *routeName == "" {
		fmt.Fprintf(stderr, "wsgate %s: -config and -route are required\n", c.name)
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "wsgate %s: %v\n", c.name, err)
		return exitFail
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitFail
	}
	route, err := gateway.Route(cfg, *routeName, gateway.Deps{Logger: cliLogger(cfg.Log, stderr), BaseDir: filepath.Dir(*path)})
	if err != nil {
		return fail(err)
	}
	defer route.Close()
	if err := c.check(route); err != nil {
		return fail(err)
	}
	if err := route.Refresh(ctx); err != nil {
		return fail(err)
	}
	msg, err := readInput(*in, stdin, route.MaxBodyBytes())
	if err != nil {
		return fail(err)
	}
	result, err := c.run(route, msg)
	if err != nil {
		return fail(err)
	}
	if *out == "" || *out == "-" {
		_, err = stdout.Write(result)
	} else {
		err = os.WriteFile(*out, result, 0o644)
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// cliLogger is the logger of one-shot commands: warnings and errors only,
// so that their stdout/stderr stay readable in a pipe.
func cliLogger(l config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil || level < slog.LevelWarn {
		l.Level = "warn"
	}
	return newLogger(l, w)
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", stderr)
	if !parseFlags(fs, args, stderr) {
		return exitUsage
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Fprint(stdout, stampOf(version, revision, info, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH))
	return exitOK
}
