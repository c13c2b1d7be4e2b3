package main

import (
	"context"
	"strings"
	"testing"

	"wsgate/oauth"
)

type fieldsOf map[string]string

func (f fieldsOf) Fields() (map[string]string, error) { return f, nil }

// TestAPIKeyNew: the printed key validates against the printed JSON, and
// two runs never print the same key.
func TestAPIKeyNew(t *testing.T) {
	seen := map[string]bool{}
	for range 2 {
		code, out, errOut := runCmd(t, "", "apikey", "new", "-id", "batch", "-subject", "svc-batch", "-scopes", "orders.read orders.write")
		if code != exitOK || !strings.Contains(errOut, "only its SHA-256 is stored") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "key: wsgate_") || lines[1] != "field: batch" || !strings.HasPrefix(lines[2], "value: {") {
			t.Fatalf("stdout %q", out)
		}
		key, value := strings.TrimPrefix(lines[0], "key: "), strings.TrimPrefix(lines[2], "value: ")
		if seen[key] || strings.Contains(value, key) {
			t.Fatalf("key reused or stored in the value: %q", out)
		}
		seen[key] = true
		tok, err := oauth.NewAPIKeys(fieldsOf{"batch": value}).Validate(context.Background(), key)
		if err != nil || tok.Subject != "svc-batch" || !tok.HasScope("orders.write") {
			t.Fatalf("printed key does not validate: %+v %v", tok, err)
		}
	}
	// Defaults: no flags still gives a usable entry.
	if code, out, _ := runCmd(t, "", "apikey", "new"); code != exitOK || !strings.Contains(out, `"subject":"key-`) {
		t.Fatalf("defaults: exit %d %q", code, out)
	}
	for _, args := range [][]string{{"apikey"}, {"apikey", "old"}, {"apikey", "new", "-scopes", `a"b`}, {"apikey", "new", "extra"}} {
		if code, _, errOut := runCmd(t, "", args...); code != exitUsage || errOut == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
	}
}
