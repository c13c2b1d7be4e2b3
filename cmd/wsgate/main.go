// Command wsgate is a security proxy for legacy SOAP services and REST APIs:
// it verifies WS-Security on SOAP routes and OAuth 2.0 bearer tokens on REST
// routes before anything reaches the upstream.
//
// Usage:
//
//	wsgate serve -config FILE
//	wsgate check-config -config FILE
//	wsgate sign -config FILE -route NAME [-in F] [-out F]
//	wsgate verify -config FILE -route NAME [-in F] [-at RFC3339]
//	wsgate demo [-dir DIR] [-listen ADDR]
//	wsgate version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and the answer is no (invalid config, failed verification, serve error)
	exitUsage = 2 // the command line is wrong
)

func main() {
	// gin's debug mode prints route warnings to stdout; GIN_MODE still wins.
	if os.Getenv(gin.EnvGinMode) == "" {
		gin.SetMode(gin.ReleaseMode)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one wsgate command. ctx ends serve and demo; tests call run directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(rest, stdout, stderr)
	case "sign":
		return cmdSign(ctx, rest, stdin, stdout, stderr)
	case "verify":
		return cmdVerify(ctx, rest, stdin, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr, nil)
	case "version":
		return cmdVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "wsgate: unknown command %q\n", cmd)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  wsgate serve -config FILE                                  run the proxy
  wsgate check-config -config FILE                           validate a configuration file
  wsgate sign -config FILE -route NAME [-in F] [-out F]      sign a SOAP envelope with the route's identity
  wsgate verify -config FILE -route NAME [-in F] [-at TIME]  verify a SOAP envelope offline
  wsgate demo [-dir DIR] [-listen ADDR]                      run the embedded default with demo keys and upstreams
  wsgate version                                             print version and build information
`)
}
