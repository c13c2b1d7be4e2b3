package wssec

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"
)

// etreeSerialize is what Verified.Bytes did before serializeDoc: etree's
// WriteTo with canonical attribute values and text.
func etreeSerialize(t testing.TB, doc *etree.Document) []byte {
	doc.WriteSettings = etree.WriteSettings{CanonicalAttrVal: true, CanonicalText: true}
	var buf bytes.Buffer
	if _, err := doc.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSerializeMatchesEtree holds serializeDoc to etree's output, byte for
// byte, on every golden message and on trees with what our parser never
// produces (CDATA, directives, characters XML cannot carry).
func TestSerializeMatchesEtree(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "wssec", "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden messages: %v", err)
	}
	docs := map[string]*etree.Document{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if doc, err := parseXML(data, Limits{}); err == nil {
			docs[filepath.Base(f)] = doc
		}
	}
	for name, src := range map[string]string{
		"escapes":  "<?xml version=\"1.0\"?>\n<!--c--><a k=\"&amp;&lt;>&quot;'&#9;&#10;&#13; é\">&amp;&lt;&gt;\"'\t\n&#13;é日本\U0001F600<b/><!-- x --></a>\n",
		"prefixes": `<p:a xmlns:p="urn:p" p:k="v" k="w"><p:b></p:b>text</p:a>`,
	} {
		doc, err := parseXML([]byte(src), Limits{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		docs[name] = doc
	}
	// Built by hand: what only a caller could put in a tree.
	odd := etree.NewDocument()
	root := odd.CreateElement("r")
	root.CreateAttr("bad", "a\x01b\xffc\uFFFEd\ufffdé")
	root.CreateText("t\x00\x1f\xc3\x28\ud7ff\ue000")
	root.CreateCData("x]]>y")
	root.CreateDirective("DOCTYPE r")
	root.CreateComment("a-b")
	root.CreateProcInst("p", "q")
	root.CreateElement("empty")
	docs["built"] = odd

	for name, doc := range docs {
		want := etreeSerialize(t, doc)
		got := serializeDoc(doc, 0)
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %.300q\nwant %.300q", name, got, want)
		}
	}
	if len(docs) < 40 {
		t.Fatalf("only %d documents compared", len(docs))
	}
}

// FuzzSerialize checks serializeDoc against etree on whatever parses.
func FuzzSerialize(f *testing.F) {
	addGoldenSeeds(f)
	f.Add([]byte(`<a k="&#9;&#13;">&#13;]&gt;</a>`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		doc, err := parseXML(msg, Limits{})
		if err != nil {
			return
		}
		want := etreeSerialize(t, doc)
		if got := serializeDoc(doc, len(msg)); !bytes.Equal(got, want) {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	})
}
