// Command wsgate is a security proxy for legacy SOAP services and REST APIs:
// it verifies WS-Security on SOAP routes and OAuth 2.0 bearer tokens on REST
// routes before anything reaches the upstream.
//
// Usage:
//
//	wsgate serve -config FILE
//	wsgate check-config -config FILE [-secrets]
//	wsgate sign -config FILE -route NAME [-in F] [-out F]
//	wsgate verify -config FILE -route NAME [-in F] [-at RFC3339]
//	wsgate demo [-dir DIR] [-listen ADDR]
//	wsgate version
//	wsgate help [COMMAND]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
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
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			usage(stdout)
			return exitOK
		}
		if _, ok := findCommand(rest[0]); !ok {
			fmt.Fprintf(stderr, "wsgate help: unknown command %q\n", rest[0])
			usage(stderr)
			return exitUsage
		}
		return run(ctx, []string{rest[0], "-h"}, stdin, stdout, stderr)
	case "--version", "-version":
		cmd = "version"
	}
	// Commands report a help request through their stderr (parseFlags).
	errOut := &cmdStderr{Writer: stderr, stdout: stdout}
	code := exitUsage
	switch cmd {
	case "serve":
		code = cmdServe(ctx, rest, stdout, errOut)
	case "check-config":
		code = cmdCheckConfig(ctx, rest, stdout, errOut)
	case "sign":
		code = cmdSign(ctx, rest, stdin, stdout, errOut)
	case "verify":
		code = cmdVerify(ctx, rest, stdin, stdout, errOut)
	case "encrypt":
		code = cmdEncrypt(ctx, rest, stdin, stdout, errOut)
	case "demo":
		code = cmdDemo(ctx, rest, stdout, errOut, nil)
	case "version":
		code = cmdVersion(rest, stdout, errOut)
	case "apikey":
		code = cmdAPIKey(rest, stdout, errOut)
	case "policy":
		code = cmdPolicy(rest, stdout, errOut)
	default:
		fmt.Fprintf(stderr, "wsgate: unknown command %q\n", cmd)
		usage(stderr)
		return exitUsage
	}
	if errOut.help {
		return exitOK
	}
	return code
}

// cmdStderr is the stderr run hands a command. A command's parseFlags
// cannot return "help was asked for" through the command's exit code, so it
// marks it here; run then exits 0, and the help went to stdout.
type cmdStderr struct {
	io.Writer
	stdout io.Writer
	help   bool
}

// helpRequested marks a help request on w (when run made it) and returns
// where the help goes: stdout for run, else w itself.
func helpRequested(w io.Writer) io.Writer {
	if c, ok := w.(*cmdStderr); ok {
		c.help = true
		return c.stdout
	}
	return w
}

// command is one line of wsgate's help.
type command struct {
	name, synopsis, summary string
}

// commands lists wsgate's commands for help, in the order usage shows them.
func commands() []command {
	return []command{
		{"serve", "-config FILE", "run the proxy until SIGINT/SIGTERM; SIGHUP reloads config and secrets"},
		{"check-config", "-config FILE [-secrets]", "print every problem of a configuration file as FILE: path.to.field: reason; " +
			"-secrets also reads every secret it names"},
		{"sign", "-config FILE -route NAME [-in F] [-out F]", "sign a SOAP envelope with the route's outbound identity"},
		{"verify", "-config FILE -route NAME [-in F] [-at TIME]", "verify (and decrypt) a SOAP envelope offline with the route's inbound policy"},
		{"encrypt", "-config FILE -route NAME [-in F] [-out F]", "sign and encrypt a SOAP envelope as the route's bridge.encrypt or soap.encrypt_response does"},
		{"demo", "[-dir DIR] [-listen ADDR]", "run the embedded default with demo keys and upstreams"},
		{"apikey", "new [-id ID] [-subject SUB] [-scopes 'A B']", "print a fresh API key and the JSON to store under its id in a route's api_key secret"},
		{"policy", "-wsdl F [-service S -port P]", "print the soap: block enforcing a WSDL port's WS-SecurityPolicy; exit 1 naming each assertion wsgate cannot enforce"},
		{"version", "", "print the version (release or VCS revision), the Go version and build information"},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %s\n      %s\n", strings.TrimSpace("wsgate "+c.name+" "+c.synopsis), c.summary)
	}
	b.WriteString("\n`wsgate help COMMAND` or `wsgate COMMAND -h` describes a command's flags; " +
		"`wsgate --version` = `wsgate version`.\n" +
		"Exit codes: 0 ok, 1 the answer is no (problems found, verification failed, serve failed), 2 bad command line.\n")
	fmt.Fprint(w, b.String())
}

// commandHelp prints the help of fs's command to w.
func commandHelp(fs *flag.FlagSet, w io.Writer) {
	name := strings.TrimPrefix(fs.Name(), "wsgate ")
	c, _ := findCommand(name)
	fmt.Fprintf(w, "usage: wsgate %s %s\n", name, c.synopsis)
	if c.summary != "" {
		fmt.Fprintf(w, "\n%s\n", c.summary)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nflags:\n")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
}
