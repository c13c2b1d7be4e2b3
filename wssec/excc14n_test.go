package wssec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// excFindElement returns the first element in document order with the given
// prefixed name (prefix:tag, or tag alone).
func excFindElement(root *etree.Element, name string) *etree.Element {
	space, tag := "", name
	if i := strings.IndexByte(name, ':'); i >= 0 {
		space, tag = name[:i], name[i+1:]
	}
	var found *etree.Element
	excWalkElements(root, func(e *etree.Element) bool {
		if found == nil && e.Space == space && e.Tag == tag {
			found = e
		}
		return found == nil
	})
	return found
}

// excWalkElements calls fn for el and its descendants in document order until
// fn returns false.
func excWalkElements(el *etree.Element, fn func(*etree.Element) bool) bool {
	if !fn(el) {
		return false
	}
	for _, c := range el.ChildElements() {
		if !excWalkElements(c, fn) {
			return false
		}
	}
	return true
}

func excParseDoc(t testing.TB, s string) *etree.Document {
	t.Helper()
	doc := etree.NewDocument()
	doc.ReadSettings.PreserveDuplicateAttrs = true
	if err := doc.ReadFromString(s); err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return doc
}

// TestExcC14NVectors checks the spec's examples and hand-computed cases.
func TestExcC14NVectors(t *testing.T) {
	// Exclusive XML Canonicalization 1.0, section 2.2: both documents give
	// the same canonical n1:elem2.
	const excElem2 = "<n1:elem2 xmlns:n1=\"http://example.net\" xml:lang=\"en\">\n" +
		"       <n3:stuff xmlns:n3=\"ftp://example.org\"></n3:stuff>\n" +
		"   </n1:elem2>"
	// Canonical XML 1.0, example 3.3, canonicalized exclusively.
	const c14nStartEnd = `<doc>
   <e1   />
   <e2   ></e2>
   <e3   name = "elem3"   id="elem3"   />
   <e4   name="elem4"   id="elem4"   ></e4>
   <e5 a:attr="out" b:attr="sorted" attr2="all" attr="I'm"
      xmlns:b="http://www.ietf.org"
      xmlns:a="http://www.w3.org"
      xmlns="http://example.org"/>
   <e6 xmlns="" xmlns:a="http://www.w3.org">
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="" xmlns:a="http://www.w3.org">
            <e9 xmlns="" xmlns:a="http://www.ietf.org"/>
         </e8>
      </e7>
   </e6>
</doc>`
	const c14nStartEndOut = `<doc>
   <e1></e1>
   <e2></e2>
   <e3 id="elem3" name="elem3"></e3>
   <e4 id="elem4" name="elem4"></e4>
   <e5 xmlns="http://example.org" xmlns:a="http://www.w3.org" xmlns:b="http://www.ietf.org" attr="I'm" attr2="all" b:attr="sorted" a:attr="out"></e5>
   <e6>
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="">
            <e9></e9>
         </e8>
      </e7>
   </e6>
</doc>`
	// Canonical XML 1.0, example 3.4 (the rows that need no DTD).
	const c14nChars = `<doc>
   <text>First line&#x0d;&#10;Second line</text>
   <value>&#x32;</value>
   <compute><![CDATA[value>"0" && value<"10" ?"valid":"error"]]></compute>
   <compute expr='value>"0" &amp;&amp; value&lt;"10" ?"valid":"error"'>valid</compute>
   <norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>
</doc>`
	const c14nCharsOut = "<doc>\n" +
		"   <text>First line&#xD;\nSecond line</text>\n" +
		"   <value>2</value>\n" +
		"   <compute>value&gt;\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"</compute>\n" +
		"   <compute expr=\"value>&quot;0&quot; &amp;&amp; value&lt;&quot;10&quot; ?&quot;valid&quot;:&quot;error&quot;\">valid</compute>\n" +
		"   <norm attr=\" '    &#xD;&#xA;&#x9;   ' \"></norm>\n" +
		"</doc>"

	tests := []struct {
		name       string
		doc        string
		apex       string // first element of that name; "" for the root
		prefixList string
		want       string
	}{
		{
			name: "exc-c14n 2.2 first document",
			doc: "<n0:local xmlns:n0=\"foo:bar\" xmlns:n3=\"ftp://example.org\">\n" +
				"   <n1:elem2 xmlns:n1=\"http://example.net\" xml:lang=\"en\">\n" +
				"       <n3:stuff xmlns:n3=\"ftp://example.org\"/>\n" +
				"   </n1:elem2>\n</n0:local>",
			apex: "n1:elem2",
			want: excElem2,
		},
		{
			name: "exc-c14n 2.2 second document",
			doc: "<n2:pdu xmlns:n1=\"http://example.com\"\n" +
				"           xmlns:n2=\"http://foo.example\"\n" +
				"           xml:lang=\"fr\"\n" +
				"           xml:space=\"retain\">\n" +
				"   <n1:elem2 xmlns:n1=\"http://example.net\" xml:lang=\"en\">\n" +
				"       <n3:stuff xmlns:n3=\"ftp://example.org\"/>\n" +
				"   </n1:elem2>\n</n2:pdu>",
			apex: "n1:elem2",
			want: excElem2,
		},
		{
			name: "exc-c14n 2.2 with n0 in the PrefixList",
			doc: "<n0:local xmlns:n0=\"foo:bar\" xmlns:n3=\"ftp://example.org\">" +
				"<n1:elem2 xmlns:n1=\"http://example.net\"><n3:stuff/></n1:elem2></n0:local>",
			apex:       "n1:elem2",
			prefixList: "n0",
			want:       `<n1:elem2 xmlns:n0="foo:bar" xmlns:n1="http://example.net"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>`,
		},
		{name: "c14n 3.3 start and end tags", doc: c14nStartEnd, want: c14nStartEndOut},
		{name: "c14n 3.4 character modifications", doc: c14nChars, want: c14nCharsOut},
		{
			name: "xmlns empty undeclares an output default",
			doc:  `<a xmlns="urn:a"><b xmlns=""><c/></b></a>`,
			want: `<a xmlns="urn:a"><b xmlns=""><c></c></b></a>`,
		},
		{
			name: "xmlns empty at the apex is not output",
			doc:  `<a xmlns="urn:a"><b xmlns=""><c/></b></a>`,
			apex: "b",
			want: `<b><c></c></b>`,
		},
		{
			name: "xmlns empty under a default that was never output",
			doc:  `<p:a xmlns:p="urn:p" xmlns="urn:a"><b xmlns=""/></p:a>`,
			want: `<p:a xmlns:p="urn:p"><b></b></p:a>`,
		},
		{
			name: "xmlns empty on a prefixed element is not output",
			doc:  `<a xmlns="urn:a"><p:b xmlns:p="urn:p" xmlns=""><c/></p:b></a>`,
			want: `<a xmlns="urn:a"><p:b xmlns:p="urn:p"><c xmlns=""></c></p:b></a>`,
		},
		{
			name: "prefix redeclared with a different URI",
			doc:  `<p:a xmlns:p="urn:1"><p:b xmlns:p="urn:2"><p:c xmlns:p="urn:2"/></p:b></p:a>`,
			want: `<p:a xmlns:p="urn:1"><p:b xmlns:p="urn:2"><p:c></p:c></p:b></p:a>`,
		},
		{
			name: "prefix redeclared on an element that does not use it",
			doc:  `<p:a xmlns:p="urn:1"><q:b xmlns:q="urn:q" xmlns:p="urn:2"><p:c/></q:b><p:d/></p:a>`,
			want: `<p:a xmlns:p="urn:1"><q:b xmlns:q="urn:q"><p:c xmlns:p="urn:2"></p:c></q:b><p:d></p:d></p:a>`,
		},
		{
			name: "siblings each declare what they use",
			doc:  `<r xmlns:p="urn:p"><p:a/><p:b/></r>`,
			want: `<r><p:a xmlns:p="urn:p"></p:a><p:b xmlns:p="urn:p"></p:b></r>`,
		},
		{
			name: "attributes sorted by namespace URI, not prefix",
			doc:  `<e xmlns:z="urn:a" xmlns:a="urn:z" a:x="1" z:y="2" b="3"/>`,
			want: `<e xmlns:a="urn:z" xmlns:z="urn:a" b="3" z:y="2" a:x="1"></e>`,
		},
		{
			name: "xml attributes sorted by their namespace URI",
			doc:  `<e xmlns:a="http://www.w3.org" xmlns:c="http://www.w3.org/XML/1998/namespacf" c:k="3" a:attr="1" xml:lang="en" b="2"/>`,
			want: `<e xmlns:a="http://www.w3.org" xmlns:c="http://www.w3.org/XML/1998/namespacf" b="2" a:attr="1" xml:lang="en" c:k="3"></e>`,
		},
		{
			name: "attribute prefix declared on an ancestor",
			doc:  `<r xmlns:p="urn:p"><s p:k="v"><t p:k="w"/></s></r>`,
			apex: "s",
			want: `<s xmlns:p="urn:p" p:k="v"><t p:k="w"></t></s>`,
		},
		{
			name:       "PrefixList prefix declared outside the subtree",
			doc:        `<r xmlns:p="urn:p" xmlns:q="urn:q"><s><t/></s></r>`,
			apex:       "s",
			prefixList: "p",
			want:       `<s xmlns:p="urn:p"><t></t></s>`,
		},
		{
			name:       "PrefixList with two prefixes and extra whitespace",
			doc:        `<r xmlns:p="urn:p" xmlns:q="urn:q"><s><t/></s></r>`,
			apex:       "s",
			prefixList: " q\tp\n",
			want:       `<s xmlns:p="urn:p" xmlns:q="urn:q"><t></t></s>`,
		},
		{
			name:       "PrefixList prefix not in scope",
			doc:        `<r xmlns:p="urn:p"><s><t/></s></r>`,
			apex:       "s",
			prefixList: "x xml",
			want:       `<s><t></t></s>`,
		},
		{
			name:       "PrefixList prefix redeclared below",
			doc:        `<r xmlns:p="urn:p"><s><t xmlns:p="urn:other"><u xmlns:p="urn:other"/></t></s></r>`,
			apex:       "s",
			prefixList: "p",
			want:       `<s xmlns:p="urn:p"><t xmlns:p="urn:other"><u></u></t></s>`,
		},
		{
			name:       "PrefixList #default declared outside the subtree",
			doc:        `<r xmlns="urn:d"><p:s xmlns:p="urn:p"><p:t/></p:s></r>`,
			apex:       "p:s",
			prefixList: "#default",
			want:       `<p:s xmlns="urn:d" xmlns:p="urn:p"><p:t></p:t></p:s>`,
		},
		{
			name: "default namespace not utilized by a prefixed apex",
			doc:  `<r xmlns="urn:d"><p:s xmlns:p="urn:p"><p:t/></p:s></r>`,
			apex: "p:s",
			want: `<p:s xmlns:p="urn:p"><p:t></p:t></p:s>`,
		},
		{
			name:       "PrefixList #default undeclared below",
			doc:        `<p:s xmlns:p="urn:p" xmlns="urn:d"><p:t xmlns=""/></p:s>`,
			prefixList: "#default",
			want:       `<p:s xmlns="urn:d" xmlns:p="urn:p"><p:t xmlns=""></p:t></p:s>`,
		},
		{
			name:       "PrefixList #default with no default in scope",
			doc:        `<p:s xmlns:p="urn:p"><p:t/></p:s>`,
			prefixList: "#default",
			want:       `<p:s xmlns:p="urn:p"><p:t></p:t></p:s>`,
		},
		{
			name: "nested default namespace changes",
			doc:  `<a xmlns="urn:1"><b xmlns="urn:2"><c xmlns="urn:1"><d/></c></b><e/></a>`,
			want: `<a xmlns="urn:1"><b xmlns="urn:2"><c xmlns="urn:1"><d></d></c></b><e></e></a>`,
		},
		{
			name: "nested default namespace from inside",
			doc:  `<a xmlns="urn:1"><b xmlns="urn:2"><c xmlns="urn:1"><d/></c></b></a>`,
			apex: "c",
			want: `<c xmlns="urn:1"><d></d></c>`,
		},
		{
			name: "xml attributes of ancestors are not inherited",
			doc:  `<r xml:lang="en" xml:space="preserve"><s xml:id="x"/></r>`,
			apex: "s",
			want: `<s xml:id="x"></s>`,
		},
		{
			name: "xml prefix declaration is never output",
			doc:  `<r xmlns:xml="http://www.w3.org/XML/1998/namespace"><xml:s xml:lang="en"/></r>`,
			want: `<r><xml:s xml:lang="en"></xml:s></r>`,
		},
		{
			name: "comments dropped, processing instructions kept",
			doc:  `<a><!-- c --><?pi some data?><?empty?>x<!---->y</a>`,
			want: `<a><?pi some data?><?empty?>xy</a>`,
		},
		{
			name: "text and attribute escaping",
			doc:  "<a k=\"&amp;&lt;>&quot;'&#9;&#10;&#13;\tq\">&amp;&lt;&gt;\"'&#9;&#10;&#13;</a>",
			want: "<a k=\"&amp;&lt;>&quot;'&#x9;&#xA;&#xD;&#x9;q\">&amp;&lt;&gt;\"'\t\n&#xD;</a>",
		},
		{
			name: "non-ASCII text and names pass through",
			doc:  "<é:ü xmlns:é=\"urn:é\" é:ß=\"€\">日本\uFFFD</é:ü>",
			want: "<é:ü xmlns:é=\"urn:é\" é:ß=\"€\">日本\uFFFD</é:ü>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := excParseDoc(t, tt.doc)
			el := doc.Root()
			if tt.apex != "" {
				if el = excFindElement(doc.Root(), tt.apex); el == nil {
					t.Fatalf("no %s", tt.apex)
				}
			}
			got, err := excC14N(el, tt.prefixList)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			checkExcC14NSemantics(t, el, tt.prefixList, got)
			// The append variant leaves what is already there.
			got2, err := appendExcC14N([]byte("prefix"), el, tt.prefixList)
			if err != nil || string(got2) != "prefix"+tt.want {
				t.Errorf("appendExcC14N = %q, %v", got2, err)
			}
		})
	}
}

// TestExcC14NErrors checks that what has no canonical form is refused.
func TestExcC14NErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		apex string
		want error
	}{
		{"undeclared element prefix", `<p:a/>`, "", errUndeclaredPrefix},
		{"undeclared attribute prefix", `<a p:k="v"/>`, "", errUndeclaredPrefix},
		{"undeclared prefix deep inside", `<a xmlns:p="urn:p"><b><q:c/></b></a>`, "", errUndeclaredPrefix},
		{"prefix declared only on a sibling", `<r><a xmlns:p="urn:p"/><b><p:c/></b></r>`, "b", errUndeclaredPrefix},
		{"prefix bound to empty", `<a xmlns:p="urn:p"><p:b xmlns:p=""/></a>`, "", errNamespaceDecl},
		{"unused prefix bound to empty on an ancestor", `<r xmlns:p=""><a/></r>`, "a", errNamespaceDecl},
		{"xml prefix rebound", `<a xmlns:xml="urn:x"/>`, "", errNamespaceDecl},
		{"xml prefix rebound on an ancestor", `<r xmlns:xml="urn:x"><a/></r>`, "a", errNamespaceDecl},
		{"xmlns prefix declared", `<a xmlns:xmlns="urn:x"/>`, "", errNamespaceDecl},
		{"default bound to the xmlns namespace", `<a xmlns="http://www.w3.org/2000/xmlns/"/>`, "", errNamespaceDecl},
		{"prefix bound to the xml namespace", `<a xmlns:p="http://www.w3.org/XML/1998/namespace"/>`, "", errNamespaceDecl},
		{"element with the xmlns prefix", `<r><xmlns:a/></r>`, "", errNamespaceDecl},
		{"same expanded attribute name twice", `<a xmlns:p="urn:x" xmlns:q="urn:x" p:k="1" q:k="2"/>`, "", errDuplicateAttr},
		{"same attribute twice", `<a k="1" k="2"/>`, "", errDuplicateAttr},
		{"same prefix declared twice", `<a xmlns:p="urn:1" xmlns:p="urn:2"><p:b/></a>`, "", errDuplicateAttr},
		{"directive inside the subtree", `<a><!DOCTYPE x></a>`, "", errUnsupportedNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := excParseDoc(t, tt.doc)
			el := doc.Root()
			if tt.apex != "" {
				el = excFindElement(doc.Root(), tt.apex)
			}
			got, err := excC14N(el, "")
			if !errors.Is(err, tt.want) {
				t.Fatalf("excC14N = %q, %v; want %v", got, err, tt.want)
			}
		})
	}

	if _, err := excC14N(nil, ""); !errors.Is(err, errUnsupportedNode) {
		t.Errorf("nil element: err = %v, want errUnsupportedNode", err)
	}
	// Characters the parser would never produce, in a tree built by hand.
	for _, s := range []string{"a\x00b", "\x1f", "bad \xff utf-8", "\uFFFE", "\uFFFF", "\xed\xa0\x80"} {
		el := etree.NewElement("a")
		el.SetText(s)
		if _, err := excC14N(el, ""); !errors.Is(err, errInvalidChar) {
			t.Errorf("text %q: err = %v, want errInvalidChar", s, err)
		}
		el = etree.NewElement("a")
		el.CreateAttr("k", s)
		if _, err := excC14N(el, ""); !errors.Is(err, errInvalidChar) {
			t.Errorf("attribute %q: err = %v, want errInvalidChar", s, err)
		}
	}
}

// TestExcC14NDoesNotMutate checks that the tree, ancestors included, is only
// read.
func TestExcC14NDoesNotMutate(t *testing.T) {
	src := `<r xmlns:p="urn:p" xmlns="urn:d" b="1" a="2"><p:s z="1" y="2" xmlns:q="urn:q"><!--c--><t xmlns=""/></p:s></r>`
	doc := excParseDoc(t, src)
	before, err := doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := excC14N(excFindElement(doc.Root(), "p:s"), "#default p q"); err != nil {
		t.Fatal(err)
	}
	after, _ := doc.WriteToString()
	if before != after {
		t.Errorf("tree changed:\n%s\n%s", before, after)
	}
}

// TestExcC14NDeepAndWide checks trees far deeper than a parser allows (no
// recursion in the writer) and wide ones.
func TestExcC14NDeepAndWide(t *testing.T) {
	const depth = 5000
	root := etree.NewElement("p:a")
	root.CreateAttr("xmlns:p", "urn:p")
	el := root
	for i := 1; i < depth; i++ {
		el = el.CreateElement("p:a")
		if i%1000 == 0 {
			el.CreateAttr("xmlns:p", "urn:p"+strconv.Itoa(i))
		}
	}
	el.SetText("x")
	var want strings.Builder
	want.WriteString(`<p:a xmlns:p="urn:p">`)
	for i := 1; i < depth; i++ {
		if i%1000 == 0 {
			want.WriteString(`<p:a xmlns:p="urn:p` + strconv.Itoa(i) + `">`)
		} else {
			want.WriteString(`<p:a>`)
		}
	}
	want.WriteString("x" + strings.Repeat(`</p:a>`, depth))
	got, err := excC14N(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatalf("deep tree: got %.200s...", got)
	}

	const width = 100000
	wide := etree.NewElement("r")
	wide.CreateAttr("xmlns", "urn:d")
	for i := 0; i < width; i++ {
		wide.CreateElement("v").SetText(strconv.Itoa(i % 10))
	}
	got, err = excC14N(wide, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte(`<r xmlns="urn:d"><v>0</v><v>1</v>`)) || bytes.Count(got, []byte("<v>")) != width {
		t.Fatalf("wide tree: got %.200s...", got)
	}
}

// TestExcC14NGolden compares with goxmldsig (through goxmldsigCanonicalize) every
// signed element of every test message.
func TestExcC14NGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "wssec", "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test messages: %v", err)
	}
	compared := 0
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		doc := etree.NewDocument()
		if doc.ReadFromBytes(data) != nil || doc.Root() == nil {
			continue // not-xml.xml, empty.xml and the like
		}
		small := len(data) < 64<<10
		excWalkElements(doc.Root(), func(el *etree.Element) bool {
			signed := el.Tag == "SignedInfo" || el.SelectAttr("wsu:Id") != nil
			if !signed && !small {
				return true
			}
			for _, pl := range []string{"", "soapenv", "soap", "wsse ds", "soapenv wsu"} {
				want, werr := goxmldsigCanonicalize(el, pl)
				got, gerr := excC14N(el, pl)
				if werr != nil || gerr != nil {
					t.Errorf("%s %s %q: goxmldsig err %v, ours %v", filepath.Base(name), el.FullTag(), pl, werr, gerr)
					continue
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s %s %q:\n got %.300s\nwant %.300s", filepath.Base(name), el.FullTag(), pl, got, want)
				}
				checkExcC14NSemantics(t, el, pl, got)
				compared++
			}
			return true
		})
	}
	if compared < 100 {
		t.Fatalf("only %d comparisons", compared)
	}
}

// FuzzExcC14NDifferential compares with goxmldsig on every element of
// random documents. Where they differ, goxmldsig's known deviations from the
// spec (see knownGoxmldsigDeviation) are allowed only if our output passes
// the independent spec check.
func FuzzExcC14NDifferential(f *testing.F) {
	addGoldenSeeds(f)
	for _, s := range []string{
		`<a xmlns="urn:a"><b xmlns=""><c/></b></a>`,
		`<p:a xmlns:p="urn:p" xmlns="urn:a"><b xmlns=""/></p:a>`,
		`<e xmlns:z="urn:a" xmlns:a="urn:z" a:x="1" z:y="2" b="3"/>`,
		`<p:a xmlns:p="urn:1"><q:b xmlns:q="urn:q" xmlns:p="urn:2"><p:c/></q:b></p:a>`,
		"<a k=\"&amp;&lt;>&quot;'&#9;&#10;&#13;\">&amp;&lt;&gt;\"'&#13;<?p d?><!--c--></a>",
		`<r xmlns:p="urn:p" xmlns:a="urn:a" xmlns="urn:d"><p:s b:k="1" xmlns:b="urn:b"><t a:k="2" xml:lang="x"><p:u xmlns:p="urn:q"/></t></p:s></r>`,
		`<a:r xmlns:a="urn:1" xmlns:b="urn:0"><b:s xmlns="urn:d"><t xmlns=""><a:u xmlns="urn:e" a:x="" b:y=""/></t></b:s></a:r>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4<<10 {
			return
		}
		doc := etree.NewDocument()
		doc.ReadSettings.PreserveDuplicateAttrs = true
		if doc.ReadFromBytes(data) != nil || doc.Root() == nil {
			return
		}
		n := 0
		excWalkElements(doc.Root(), func(el *etree.Element) bool {
			n++
			for _, pl := range []string{"", "p", "a b"} {
				compareWithGoxmldsig(t, el, pl)
			}
			return n < 64
		})
	})
}

func compareWithGoxmldsig(t *testing.T, el *etree.Element, prefixList string) {
	t.Helper()
	got, err := excC14N(el, prefixList)
	want, werr := goxmldsigCanonicalize(el, prefixList)
	switch {
	case err != nil && werr != nil:
		return
	case err != nil:
		// We refuse more than goxmldsig does; each is a namespaces or XML
		// well-formedness error goxmldsig lets through.
		if errors.Is(err, errDuplicateAttr) || errors.Is(err, errNamespaceDecl) ||
			errors.Is(err, errUnsupportedNode) || errors.Is(err, errInvalidChar) {
			return
		}
		t.Fatalf("%s %q: ours failed (%v), goxmldsig gave %q", el.FullTag(), prefixList, err, want)
	case werr != nil:
		t.Fatalf("%s %q: goxmldsig failed (%v), ours gave %q", el.FullTag(), prefixList, werr, got)
	}
	checkExcC14NSemantics(t, el, prefixList, got)
	if bytes.Equal(got, want) {
		return
	}
	if dev := knownGoxmldsigDeviation(el); dev != "" {
		// Ours passed the spec check; the rest must agree once goxmldsig's
		// deviation is neutralized on both sides.
		if ng, nw := excNeutralize(t, got, dev), excNeutralize(t, want, dev); ng == nw {
			return
		}
	}
	t.Fatalf("%s %q:\n got %q\nwant %q", el.FullTag(), prefixList, got, want)
}

// knownGoxmldsigDeviation names the goxmldsig v1.6.1 bug the subtree can
// trigger, if any:
//   - "attr-order": it sorts prefixed attributes by local name and uses the
//     namespace URI only to break ties (the spec: URI first);
//   - "xmlns-empty": it starts from a made-up default namespace, so an
//     explicit xmlns="" is output even when no non-empty default was output
//     by an output ancestor (at the apex, or under a prefixed element).
func knownGoxmldsigDeviation(el *etree.Element) string {
	dev := ""
	emptyDefault := false
	for p := el; p != nil; p = p.Parent() {
		if a := p.SelectAttr("xmlns"); a != nil && a.Space == "" && a.Value == "" {
			emptyDefault = true
		}
	}
	excWalkElements(el, func(e *etree.Element) bool {
		prefixes := map[string]bool{}
		for _, a := range e.Attr {
			if a.Space == "" && a.Key == "xmlns" && a.Value == "" {
				emptyDefault = true
			}
			if a.Space != "" && a.Space != "xmlns" {
				prefixes[a.Space] = true
			}
		}
		if len(prefixes) > 1 {
			dev += " attr-order"
		}
		return dev == ""
	})
	if emptyDefault {
		dev += " xmlns-empty"
	}
	return dev
}

// excNeutralize re-serializes a canonical output with the differences a
// goxmldsig deviation causes removed: attributes in name order, xmlns=""
// dropped.
func excNeutralize(t *testing.T, b []byte, dev string) string {
	t.Helper()
	doc := etree.NewDocument()
	doc.ReadSettings.PreserveDuplicateAttrs = true
	if err := doc.ReadFromBytes(b); err != nil {
		t.Fatalf("output %q does not parse: %v", b, err)
	}
	excWalkElements(doc.Root(), func(e *etree.Element) bool {
		if strings.Contains(dev, "xmlns-empty") {
			e.Attr = slices.DeleteFunc(e.Attr, func(a etree.Attr) bool {
				return a.Space == "" && a.Key == "xmlns" && a.Value == ""
			})
		}
		if strings.Contains(dev, "attr-order") {
			slices.SortStableFunc(e.Attr, func(x, y etree.Attr) int {
				return strings.Compare(x.FullKey(), y.FullKey())
			})
		}
		return true
	})
	s, _ := doc.WriteToString()
	return s
}

// excInScope resolves prefix at el in its document, the way the namespaces
// spec says, walking the ancestors (a slow, independent reference).
func excInScope(el *etree.Element, prefix string) (string, bool) {
	if prefix == "xml" {
		return xmlNamespaceURI, true
	}
	for p := el; p != nil; p = p.Parent() {
		for _, a := range p.Attr {
			if (prefix == "" && a.Space == "" && a.Key == "xmlns") || (prefix != "" && a.Space == "xmlns" && a.Key == prefix) {
				return a.Value, true
			}
		}
	}
	return "", prefix == ""
}

// checkExcC14NSemantics checks out against the spec's rules directly: out
// parses; elements, attributes and their expanded names are those of the
// input; attributes are in (URI, local name) order; and exactly the
// namespace declarations that exc-c14n requires are present, in order.
func checkExcC14NSemantics(t *testing.T, in *etree.Element, prefixList string, canon []byte) {
	t.Helper()
	doc := etree.NewDocument()
	doc.ReadSettings.PreserveDuplicateAttrs = true
	if err := doc.ReadFromBytes(canon); err != nil || doc.Root() == nil {
		t.Fatalf("output does not parse (%v): %q", err, canon)
	}
	listed := strings.Fields(prefixList)
	var walk func(in, out *etree.Element, effective map[string]string)
	walk = func(in, out *etree.Element, effective map[string]string) {
		if in.Space != out.Space || in.Tag != out.Tag {
			t.Fatalf("element %s output as %s", in.FullTag(), out.FullTag())
		}
		// The namespaces this element needs in effect.
		need := map[string]string{}
		use := func(p string) {
			if p == "xml" {
				return
			}
			if uri, ok := excInScope(in, p); ok {
				need[p] = uri
			}
		}
		use(in.Space)
		var inAttrs []string
		for _, a := range in.Attr {
			if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
				continue
			}
			inAttrs = append(inAttrs, a.FullKey()+"="+a.Value)
			if a.Space != "" {
				use(a.Space)
			}
		}
		for _, p := range listed {
			if p == "#default" {
				use("")
			} else if p != "" {
				use(p)
			}
		}
		// The declarations output, checked one by one.
		eff := make(map[string]string, len(effective))
		for k, v := range effective {
			eff[k] = v
		}
		var outAttrs []string
		lastDecl, nDecl := "", 0
		lastURI, lastKey, nAttr := "", "", 0
		for _, a := range out.Attr {
			if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
				p := a.Key
				if a.Space == "" {
					p = ""
				}
				if nAttr > 0 || (nDecl > 0 && p <= lastDecl) {
					t.Fatalf("%s: declaration %s out of order in %q", in.FullTag(), a.FullKey(), canon)
				}
				lastDecl, nDecl = p, nDecl+1
				uri, ok := need[p]
				if !ok || uri != a.Value {
					t.Fatalf("%s: declaration %s=%q not required in %q", in.FullTag(), a.FullKey(), a.Value, canon)
				}
				if cur, ok := effective[p]; ok && cur == a.Value {
					t.Fatalf("%s: redundant declaration %s in %q", in.FullTag(), a.FullKey(), canon)
				}
				eff[p] = a.Value
				continue
			}
			var uri string
			if a.Space != "" {
				uri = need[a.Space]
				if a.Space == "xml" {
					uri = xmlNamespaceURI
				}
			}
			if nAttr > 0 && (uri < lastURI || (uri == lastURI && a.Key <= lastKey)) {
				t.Fatalf("%s: attribute %s out of order in %q", in.FullTag(), a.FullKey(), canon)
			}
			lastURI, lastKey, nAttr = uri, a.Key, nAttr+1
			outAttrs = append(outAttrs, a.FullKey()+"="+a.Value)
		}
		for p, uri := range need {
			if cur, ok := eff[p]; !ok || cur != uri {
				t.Fatalf("%s: %q should be %q in effect, is %q, in %q", in.FullTag(), p, uri, cur, canon)
			}
		}
		slices.Sort(inAttrs)
		slices.Sort(outAttrs)
		if !slices.Equal(inAttrs, outAttrs) {
			t.Fatalf("%s: attributes %q output as %q", in.FullTag(), inAttrs, outAttrs)
		}
		ic, oc := in.ChildElements(), out.ChildElements()
		if len(ic) != len(oc) {
			t.Fatalf("%s: %d child elements output as %d", in.FullTag(), len(ic), len(oc))
		}
		for i := range ic {
			walk(ic[i], oc[i], eff)
		}
	}
	walk(in, doc.Root(), map[string]string{"": ""})
}

func excBenchTargets(b testing.TB) map[string]*etree.Element {
	b.Helper()
	targets := map[string]*etree.Element{}
	for _, f := range []struct{ file, el string }{
		{"valid-large.xml", "Body"},
		{"valid-soap11-rsa.xml", "SignedInfo"},
		{"valid-soap11-rsa.xml", "Body"},
	} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "wssec", f.file))
		if err != nil {
			b.Fatal(err)
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(data); err != nil {
			b.Fatal(err)
		}
		var el *etree.Element
		excWalkElements(doc.Root(), func(e *etree.Element) bool {
			if e.Tag == f.el {
				el = e
			}
			return el == nil
		})
		if el == nil {
			b.Fatalf("%s: no %s", f.file, f.el)
		}
		targets[strings.TrimSuffix(f.file, ".xml")+"/"+f.el] = el
	}
	return targets
}

func BenchmarkExcC14N(b *testing.B) {
	excBenchC14N(b, excC14N)
}

func BenchmarkExcC14NGoxmldsig(b *testing.B) {
	excBenchC14N(b, goxmldsigCanonicalize)
}

func excBenchC14N(b *testing.B, c14n func(*etree.Element, string) ([]byte, error)) {
	targets := excBenchTargets(b)
	for _, name := range []string{"valid-large/Body", "valid-soap11-rsa/SignedInfo", "valid-soap11-rsa/Body"} {
		el := targets[name]
		b.Run(name, func(b *testing.B) {
			out, err := c14n(el, "")
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c14n(el, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCanonicalizeWithComments checks the WithComments form against goxmldsig
// (on document elements, which need no detaching) and the exact output on a
// subtree, and that without comments Canonicalize is excC14N.
func TestCanonicalizeWithComments(t *testing.T) {
	tests := []struct {
		name, xml, prefixList string
	}{
		{"plain", `<a><!-- c1 --><b>x<!--c2-->y</b></a>`, ""},
		{"namespaces", `<p:a xmlns:p="urn:p" xmlns:q="urn:q"><!--&amp; <raw>--><q:b/></p:a>`, ""},
		{"prefix list", `<p:a xmlns:p="urn:p" xmlns:q="urn:q"><!----><b>t</b></p:a>`, "q"},
		{"comment and PI", `<a><?pi x?><!--c--></a>`, "#default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := etree.NewDocument()
			if err := doc.ReadFromString(tt.xml); err != nil {
				t.Fatal(err)
			}
			want, err := dsig.MakeC14N10ExclusiveWithCommentsCanonicalizerWithPrefixList(tt.prefixList).Canonicalize(doc.Root().Copy())
			if err != nil {
				t.Fatal(err)
			}
			got, err := Canonicalize(doc.Root(), tt.prefixList, true)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Canonicalize(comments) = %q, %v; want %q", got, err, want)
			}
			without, err := Canonicalize(doc.Root(), tt.prefixList, false)
			ref, rerr := excC14N(doc.Root(), tt.prefixList)
			if err != nil || rerr != nil || !bytes.Equal(without, ref) {
				t.Errorf("Canonicalize(no comments) = %q, %v; excC14N = %q, %v", without, err, ref, rerr)
			}
		})
	}

	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<r xmlns:p="urn:p"><!--outside--><p:s a="1"><!-- in --><p:t/></p:s></r>`); err != nil {
		t.Fatal(err)
	}
	sub := doc.Root().SelectElement("p:s")
	got, err := Canonicalize(sub, "", true)
	if want := `<p:s xmlns:p="urn:p" a="1"><!-- in --><p:t></p:t></p:s>`; err != nil || string(got) != want {
		t.Errorf("Canonicalize(subtree, comments) = %q, %v; want %q", got, err, want)
	}
	bad := etree.NewElement("a")
	bad.CreateComment("\x01")
	if _, err := Canonicalize(bad, "", true); !errors.Is(err, errInvalidChar) {
		t.Errorf("Canonicalize(control char in comment) err = %v; want %v", err, errInvalidChar)
	}
}
