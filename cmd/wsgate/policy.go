package main

import (
	"errors"
	"fmt"
	"io"

	"wsgate/contract/wspolicy"
)

// cmdPolicy prints the soap: block that enforces a WSDL port's
// WS-SecurityPolicy, and exits 1 naming each assertion wsgate cannot
// enforce (the block is printed anyway, for review).
func cmdPolicy(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("policy", stderr)
	path := fs.String("wsdl", "", "the WSDL 1.1 file (policies are read from it, not from its imports)")
	service := fs.String("service", "", "the wsdl:service name (needed when there are several)")
	port := fs.String("port", "", "the wsdl:port name (needed when the service has several SOAP ports)")
	if !parseFlags(fs, args, stderr) {
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "policy: -wsdl is required")
		return exitUsage
	}
	r, err := wspolicy.FromWSDL(*path, *service, *port)
	if err != nil {
		fmt.Fprintf(stderr, "wsgate policy: %v\n", err)
		if errors.Is(err, wspolicy.ErrPort) {
			return exitUsage
		}
		return exitFail
	}
	fmt.Fprintf(stdout, "# %s/%s\n%s", r.Service, r.Port, r.YAML)
	for _, u := range r.Unsupported {
		fmt.Fprintf(stderr, "wsgate policy: cannot enforce %s\n", u)
	}
	if len(r.Unsupported) > 0 {
		return exitFail
	}
	return exitOK
}
