package wssec

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateNSGolden = flag.Bool("update-ns-golden", false, "rewrite testdata/wssec/ns from the valid golden messages")

// nsGoldenDir holds issue 11 class 2's golden messages: signed messages
// that are well-formed XML but not namespace-well-formed, in a part the
// signature does not cover (a header block, the Envelope's attributes) or
// does. They live in a directory of their own so that the table of
// testdata/wssec/*.xml (golden_test.go) stays one row per file there.
const nsGoldenDir = "../testdata/wssec/ns"

// nsGoldenEdit makes one violation from a valid message whose SOAP prefix
// is p: before is a unique anchor in the message, after replaces it.
type nsGoldenEdit struct {
	name          string
	before, after func(p string) string
}

func nsGoldenEdits() []nsGoldenEdit {
	header := func(p string) string { return "<" + p + ":Header>" }
	body := func(p string) string { return "<" + p + ":Body " }
	envelope := func(p string) string { return "<" + p + ":Envelope " }
	inHeader := func(block string) func(string) string {
		return func(p string) string { return "<" + p + ":Header>" + block }
	}
	return []nsGoldenEdit{
		{"ns-undeclared-header-prefix", header, inHeader(`<x:Trace>t1</x:Trace>`)},
		{"ns-undeclared-attribute-prefix", envelope, func(p string) string { return "<" + p + `:Envelope y:admin="true" ` }},
		{"ns-undeclared-nested-prefix", header, inHeader(`<a:Trace xmlns:a="urn:trace"><b:Hop>1</b:Hop></a:Trace>`)},
		{"ns-prefix-out-of-scope", header, inHeader(`<a:Trace xmlns:a="urn:trace"/><a:Audit>admin</a:Audit>`)},
		{"ns-undeclare-soap-prefix-on-body", body, func(p string) string { return "<" + p + ":Body xmlns:" + p + `="" ` }},
		{"ns-undeclare-prefix-in-header", header, inHeader(`<h:Audit xmlns:h="urn:audit"><h:User xmlns:h="">admin</h:User></h:Audit>`)},
		{"ns-xml-prefix-rebound", header, inHeader(`<a:Trace xmlns:a="urn:trace" xmlns:xml="urn:not-xml" xml:lang="en">t1</a:Trace>`)},
		{"ns-xml-namespace-bound", header, inHeader(`<a:Trace xmlns:a="http://www.w3.org/XML/1998/namespace">t1</a:Trace>`)},
		{"ns-xmlns-namespace-bound", header, inHeader(`<a:Trace xmlns:a="http://www.w3.org/2000/xmlns/">t1</a:Trace>`)},
		{"ns-xmlns-prefix-declared", header, inHeader(`<a:Trace xmlns:a="urn:trace" xmlns:xmlns="urn:x">t1</a:Trace>`)},
		{"ns-reserved-default-namespace", header, inHeader(`<Trace xmlns="http://www.w3.org/XML/1998/namespace">t1</Trace>`)},
		// The same expanded name twice: which wsu:Id is the Body's depends
		// on the reader.
		{"ns-duplicate-expanded-id", body, func(p string) string {
			return "<" + p + `:Body xmlns:u="` + NSWSU + `" u:Id="id-evil" `
		}},
	}
}

// nsGoldenMessages derives the golden messages from the valid SOAP 1.1 and
// 1.2 ones.
func nsGoldenMessages(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, base := range []struct{ file, prefix, suffix string }{
		{"valid-soap11-rsa", "soapenv", "-11"},
		{"valid-soap12-rsa", "env", "-12"},
	} {
		msg := goldenMessage(t, base.file)
		for _, e := range nsGoldenEdits() {
			before := []byte(e.before(base.prefix))
			if bytes.Count(msg, before) != 1 {
				t.Fatalf("%s: anchor %q is not unique in %s", e.name, before, base.file)
			}
			out[e.name+base.suffix] = bytes.Replace(msg, before, []byte(e.after(base.prefix)), 1)
		}
	}
	return out
}

// TestNamespaceGolden: every message of testdata/wssec/ns is refused by the
// parser with ErrNamespace, as a wsse:InvalidSecurity fault, before any
// verification; and the directory holds exactly what the edits make.
func TestNamespaceGolden(t *testing.T) {
	want := nsGoldenMessages(t)
	if *updateNSGolden {
		if err := os.MkdirAll(nsGoldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, msg := range want {
			if err := os.WriteFile(filepath.Join(nsGoldenDir, name+".xml"), msg, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(nsGoldenDir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Fatalf("%d files in %s, want %d: run go test ./wssec -run TestNamespaceGolden -update-ns-golden", len(files), nsGoldenDir, len(want))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".xml")
		t.Run(name, func(t *testing.T) {
			msg, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if w, ok := want[name]; !ok || !bytes.Equal(msg, w) {
				t.Fatal("differs from what nsGoldenEdits makes: run with -update-ns-golden")
			}
			// encoding/xml reads it: the violation is in the namespaces only.
			if ref, err := etreeParse(msg, Limits{}); err != nil || nsViolation(&ref.Element) == "" {
				t.Fatalf("reference parse %v, oracle %q", err, nsViolation(&ref.Element))
			}
			if _, err := ParseEnvelope(msg, Limits{}); !errors.Is(err, ErrNamespace) {
				t.Fatalf("ParseEnvelope: err = %v, want ErrNamespace", err)
			}
			v := goldenVerifier(t, goldenCase{})
			v.Replay = NewMemoryReplayCache(v.Now)
			_, err = v.Verify(context.Background(), msg)
			if !errors.Is(err, ErrNamespace) {
				t.Fatalf("Verify: err = %v, want ErrNamespace", err)
			}
			if got := FaultCode(err); got != "InvalidSecurity" {
				t.Fatalf("FaultCode = %s, want InvalidSecurity", got)
			}
		})
	}
	// The unedited messages verify: the refusals are the edits' doing.
	for _, base := range []string{"valid-soap11-rsa", "valid-soap12-rsa"} {
		if _, err := goldenVerifier(t, goldenCase{}).Verify(context.Background(), goldenMessage(t, base)); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
	}
}
