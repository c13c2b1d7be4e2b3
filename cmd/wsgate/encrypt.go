package main

import (
	"context"
	"io"

	"wsgate/gateway"
)

// cmdEncrypt encrypts an envelope offline the way the route's outbound
// messages are: signed with the route's signing identity when it has one,
// then the Body content encrypted for bridge.encrypt's (or
// soap.encrypt_response's) certificate.
func cmdEncrypt(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runOffline(ctx, offlineCommand{
		name:      "encrypt",
		routeHelp: "route whose bridge.encrypt or soap.encrypt_response certificate is used (required)",
		inHelp:    "envelope to encrypt (default stdin)",
		outHelp:   "where to write the encrypted envelope (default stdout)",
		check:     (*gateway.OfflineRoute).CanEncrypt,
		run:       (*gateway.OfflineRoute).Encrypt,
	}, args, stdin, stdout, stderr)
}
