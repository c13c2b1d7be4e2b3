package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"wsgate/gateway"
)

// cmdEncrypt encrypts an envelope offline the way the route's outbound
// messages are: signed with the route's signing identity when it has one,
// then the Body content encrypted for bridge.encrypt's (or
// soap.encrypt_response's) certificate.
func cmdEncrypt(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("encrypt", stderr)
	path := fs.String("config", "", "configuration file (required)")
	routeName := fs.String("route", "", "route whose bridge.encrypt or soap.encrypt_response certificate is used (required)")
	in := fs.String("in", "", "envelope to encrypt (default stdin)")
	out := fs.String("out", "", "where to write the encrypted envelope (default stdout)")
	if !parseFlags(fs, args, stderr) {
		return exitUsage
	}
	if *path == "" || *routeName == "" {
		fmt.Fprintln(stderr, "wsgate encrypt: -config and -route are required")
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "wsgate encrypt: %v\n", err)
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
	if err := route.CanEncrypt(); err != nil {
		return fail(err)
	}
	if err := route.Refresh(ctx); err != nil {
		return fail(err)
	}
	msg, err := readInput(*in, stdin, route.MaxBodyBytes())
	if err != nil {
		return fail(err)
	}
	enc, err := route.Encrypt(msg)
	if err != nil {
		return fail(err)
	}
	if *out == "" || *out == "-" {
		_, err = stdout.Write(enc)
	} else {
		err = os.WriteFile(*out, enc, 0o644)
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
}
