package main

import (
	"fmt"
	"io"
	"strings"

	"wsgate/oauth"
)

// cmdAPIKey is `wsgate apikey new`: a fresh random key for the client, and
// the JSON to store under a key id in the route's api_key secret. The
// secret holds only the key's SHA-256, so the key is shown this once.
func cmdAPIKey(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("apikey", stderr)
	id := fs.String("id", "", "the key id: the secret field to store the JSON under (default: the subject)")
	subject := fs.String("subject", "", "the subject the key acts as: the claim sub (default: the id)")
	scopes := fs.String("scopes", "", "space-separated scopes the key grants: the claim scope")
	if len(args) == 0 || args[0] != "new" {
		if len(args) > 0 && strings.HasPrefix(args[0], "-") && !parseFlags(fs, args, stderr) {
			return exitUsage
		}
		fmt.Fprintln(stderr, "wsgate apikey: the only subcommand is new")
		commandHelp(fs, stderr)
		return exitUsage
	}
	if !parseFlags(fs, args[1:], stderr) {
		return exitUsage
	}
	key, sum, err := oauth.NewAPIKey()
	if err != nil {
		fmt.Fprintf(stderr, "wsgate apikey: %v\n", err)
		return exitFail
	}
	if *id == "" {
		*id = *subject
	}
	if *id == "" {
		*id = "key-" + sum[:12]
	}
	if *subject == "" {
		*subject = *id
	}
	entry, err := oauth.APIKeyEntryJSON(sum, *subject, strings.Fields(*scopes))
	if err != nil {
		fmt.Fprintf(stderr, "wsgate apikey: %v\n", err)
		return exitFail
	}
	if err := oauth.ParseAPIKeys(map[string]string{*id: entry}); err != nil {
		fmt.Fprintf(stderr, "wsgate apikey: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "key: %s\nfield: %s\nvalue: %s\n", key, *id, entry)
	fmt.Fprintf(stderr, "Give the key to the client now: only its SHA-256 is stored. Add the field to the route's "+
		"api_key secret, e.g. vault kv patch secret/<api_key.secret> %s='%s'\n", *id, entry)
	return exitOK
}
