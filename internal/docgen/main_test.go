package main

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// docs/configuration.md's reference must be what docgen generates from
// config/config.go now; run `go generate ./config` after changing a config
// struct or its comments.
func TestDocConfigReferenceIsCurrent(t *testing.T) {
	src, err := os.ReadFile("../../config/config.go")
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Reference(src)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Splice(page, ref)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(page) {
		t.Fatal("docs/configuration.md's configuration reference is out of date: run `go generate ./config`")
	}
	for _, key := range []string{"`listen`", "`tls.client_ca`", "`routes[].soap.trust`", "`routes[].oauth.scopes[].any_of`",
		"`routes[].upstream_tls.ca`", "`trusted_proxies`", "`limits.shutdown_timeout`"} {
		if !strings.Contains(ref, "| "+key+" |") {
			t.Errorf("reference lacks %s", key)
		}
	}
}

func TestReference(t *testing.T) {
	src := `package config
// Config doc.
type Config struct {
	// Name is the name.
	Name string ` + "`yaml:\"name\"`" + `
	// Items are items.
	Items []Item ` + "`yaml:\"items\"`" + `
	// Wait | pipe.
	Wait *Duration ` + "`yaml:\"wait\"`" + `
	internal int
}
// Item doc.
type Item struct {
	// Tags map.
	Tags map[string]string ` + "`yaml:\"tags\"`" + `
}
type Duration int64
`
	got, err := Reference([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := "| key | type | meaning |\n|---|---|---|\n" +
		"| `name` | string | Name is the name. |\n" +
		"| `items` | list of object | Items are items. |\n" +
		"| `items[].tags` | map of string to string | Tags map. |\n" +
		"| `wait` | duration (optional) | Wait \\| pipe. |\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	undocumented := strings.Replace(src, "// Name is the name.\n", "", 1)
	if _, err := Reference([]byte(undocumented)); err == nil || !strings.Contains(err.Error(), "name has no doc comment") {
		t.Errorf("undocumented field: %v", err)
	}
	if _, err := Splice([]byte("no markers"), got); !errors.Is(err, ErrNoMarkers) {
		t.Errorf("Splice without markers: %v", err)
	}
	out, err := Splice([]byte("a\n"+BeginMarker+"\nold\n"+EndMarker+"\nb\n"), "new\n")
	if err != nil || string(out) != "a\n"+BeginMarker+"\nnew\n"+EndMarker+"\nb\n" {
		t.Errorf("Splice: %q %v", out, err)
	}
}
