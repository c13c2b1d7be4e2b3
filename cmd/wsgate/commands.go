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

	"wsgate/bridge"
	"wsgate/config"
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

// findRoute returns the named route.
func findRoute(cfg *config.Config, name string) (*config.Route, error) {
	for i := range cfg.Routes {
		if cfg.Routes[i].Name == name {
			return &cfg.Routes[i], nil
		}
	}
	return nil, fmt.Errorf("no route named %q", name)
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
	route, err := findRoute(cfg, *routeName)
	if err == nil && route.SOAP == nil {
		err = fmt.Errorf("route %q is not a soap route", *routeName)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wsgate verify: %v\n", err)
		return exitFail
	}
	logger := cliLogger(cfg.Log, stderr)
	mgr, be, err := newSecretsManager(cfg, filepath.Dir(*path), logger, now)
	if err != nil {
		fmt.Fprintf(stderr, "wsgate verify: %v\n", err)
		return exitFail
	}
	defer be.close()
	// Offline: the replay cache is never touched.
	v := newVerifier(cfg, route, mgr, nil, now)
	if err := mgr.Refresh(ctx); err != nil {
		// The verifier reports the missing trust itself; say why here.
		logger.Warn("secrets refresh failed", slog.String("error", err.Error()))
	}
	msg, err := readInput(*in, stdin, cfg.Limits.MaxBodyBytes)
	if err != nil && !errors.Is(err, wssec.ErrTooLarge) {
		fmt.Fprintf(stderr, "wsgate verify: %v\n", err)
		return exitFail
	}
	var verified *wssec.Verified
	if err == nil {
		verified, err = v.Verify(ctx, msg)
	}
	if err != nil {
		fmt.Fprintf(stdout, "FAIL %s: %v\n", wssec.FaultCode(err), err)
		return exitFail
	}
	signer := ""
	if verified.Signer != nil {
		signer = verified.Signer.Subject.String()
	}
	fmt.Fprintf(stdout, "OK signer=%s\n", signer)
	return exitOK
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
	return nil, fmt.Errorf("route %q has no signing identity (bridge.sign.identity or soap.sign_response)", route.Name)
}

func cmdSign(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("sign", stderr)
	path := fs.String("config", "", "configuration file (required)")
	routeName := fs.String("route", "", "route whose outbound signing identity signs (required)")
	in := fs.String("in", "", "envelope to sign (default stdin)")
	out := fs.String("out", "", "where to write the signed envelope (default stdout)")
	if !parseFlags(fs, args, stderr) {
		return exitUsage
	}
	if *path == "" || *routeName == "" {
		fmt.Fprintln(stderr, "wsgate sign: -config and -route are required")
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "wsgate sign: %v\n", err)
		return exitFail
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitFail
	}
	route, err := findRoute(cfg, *routeName)
	if err != nil {
		return fail(err)
	}
	logger := cliLogger(cfg.Log, stderr)
	mgr, be, err := newSecretsManager(cfg, filepath.Dir(*path), logger, time.Now)
	if err != nil {
		return fail(err)
	}
	defer be.close()
	src, err := signingSource(&routeEnv{secrets: mgr, vault: be.vault}, route)
	if err != nil {
		return fail(err)
	}
	if err := mgr.Refresh(ctx); err != nil {
		return fail(err)
	}
	chain, key, err := src.Identity()
	if err != nil {
		return fail(fmt.Errorf("signing identity: %w", err))
	}
	msg, err := readInput(*in, stdin, cfg.Limits.MaxBodyBytes)
	if err != nil {
		return fail(err)
	}
	ttl := time.Duration(0) // the Signer's default
	if route.SOAP != nil {
		ttl = route.SOAP.Timestamp.TTL.D()
	}
	signer := wssec.Signer{Chain: chain, Key: key, TTL: ttl}
	signed, err := signer.SignBytes(msg, xmlLimits(cfg))
	if err != nil {
		return fail(err)
	}
	if *out == "" || *out == "-" {
		_, err = stdout.Write(signed)
	} else {
		err = os.WriteFile(*out, signed, 0o644)
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
