package wssec

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// parseSentinels are the errors parseXML may return.
var parseSentinels = []error{ErrNotXML, ErrNamespace, ErrDTD, ErrTooDeep, ErrTooManyElements, ErrUnsupportedEncoding}

// etreeParse is the reference: etree's encoding/xml-based reader as
// ParseEnvelope used it. A leading BOM is dropped, since encoding/xml keeps it
// as text while XML 1.0 (and parseXML) skip it.
// parseXML parses a copy of msg into a fresh arena.
func parseXML(msg []byte, limits Limits) (*etree.Document, error) {
	return parseXMLString(string(msg), limits, new(arena))
}

func etreeParse(msg []byte, limits Limits) (*etree.Document, error) {
	limits = limits.withDefaults()
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{PreserveDuplicateAttrs: true, MaxDepth: limits.MaxDepth}
	err := doc.ReadFromBytes(bytes.TrimPrefix(msg, []byte("\xef\xbb\xbf")))
	return doc, err
}

// attrNorm maps both sides of an attribute-value comparison to the same
// form: encoding/xml does not apply XML 1.0 §3.3.3, parseXML does.
func attrNorm(v string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, v)
}

// eolNorm applies §2.11 to comment text, which encoding/xml leaves alone.
func eolNorm(v string) string {
	return strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", "\n"), "\r", "\n")
}

// diffTree returns the first difference between the reference tree want and
// parseXML's got, or "". It also checks got's parent and index links and the
// attributes' element, which etree's own methods rely on.
func diffTree(want, got *etree.Element, path string) string {
	if len(want.Child) != len(got.Child) {
		return fmt.Sprintf("%s: %d children, want %d", path, len(got.Child), len(want.Child))
	}
	for i := range want.Child {
		w, g := want.Child[i], got.Child[i]
		here := fmt.Sprintf("%s/%d", path, i)
		if g.Parent() != got || g.Index() != i {
			return here + ": wrong parent or index"
		}
		switch wt := w.(type) {
		case *etree.Element:
			gt, ok := g.(*etree.Element)
			if !ok {
				return fmt.Sprintf("%s: %T, want element", here, g)
			}
			if gt.Space != wt.Space || gt.Tag != wt.Tag {
				return fmt.Sprintf("%s: element %q:%q, want %q:%q", here, gt.Space, gt.Tag, wt.Space, wt.Tag)
			}
			if len(gt.Attr) != len(wt.Attr) {
				return fmt.Sprintf("%s: %d attributes, want %d", here, len(gt.Attr), len(wt.Attr))
			}
			for j := range wt.Attr {
				wa, ga := wt.Attr[j], gt.Attr[j]
				if ga.Space != wa.Space || ga.Key != wa.Key || attrNorm(ga.Value) != attrNorm(wa.Value) {
					return fmt.Sprintf("%s: attribute %q:%q=%q, want %q:%q=%q", here, ga.Space, ga.Key, ga.Value, wa.Space, wa.Key, wa.Value)
				}
				if ga.Element() != gt {
					return here + ": attribute without its element"
				}
			}
			if d := diffTree(wt, gt, here+"/"+gt.FullTag()); d != "" {
				return d
			}
		case *etree.CharData:
			gt, ok := g.(*etree.CharData)
			if !ok {
				return fmt.Sprintf("%s: %T, want text", here, g)
			}
			if gt.Data != wt.Data || gt.IsWhitespace() != wt.IsWhitespace() || gt.IsCData() != wt.IsCData() {
				return fmt.Sprintf("%s: text %q (ws %v), want %q (ws %v)", here, gt.Data, gt.IsWhitespace(), wt.Data, wt.IsWhitespace())
			}
		case *etree.Comment:
			gt, ok := g.(*etree.Comment)
			if !ok || gt.Data != eolNorm(wt.Data) {
				return fmt.Sprintf("%s: %#v, want comment %q", here, g, wt.Data)
			}
		case *etree.ProcInst:
			gt, ok := g.(*etree.ProcInst)
			if !ok || gt.Target != wt.Target || gt.Inst != wt.Inst {
				return fmt.Sprintf("%s: %#v, want PI %q %q", here, g, wt.Target, wt.Inst)
			}
		default:
			return fmt.Sprintf("%s: reference has %T, which parseXML never accepts", here, w)
		}
	}
	return ""
}

// docShape checks the document-level rules: an optional leading XML
// declaration, one root element, and otherwise only comments and white space.
func docShape(doc *etree.Document) string {
	roots := 0
	for i, tok := range doc.Child {
		switch t := tok.(type) {
		case *etree.Element:
			roots++
		case *etree.CharData:
			if !t.IsWhitespace() {
				return "text outside the root"
			}
		case *etree.Comment:
		case *etree.ProcInst:
			if t.Target != "xml" || i != 0 {
				return "processing instruction"
			}
		default:
			return fmt.Sprintf("%T at top level", tok)
		}
	}
	if roots != 1 {
		return fmt.Sprintf("%d root elements", roots)
	}
	return ""
}

func isParseSentinel(err error) bool {
	for _, s := range parseSentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// encodingXMLNameBug reports whether encoding/xml refused a name only because
// its name tables predate XML 1.0 fifth edition, which parseXML follows.
func encodingXMLNameBug(err error) bool {
	var se *xml.SyntaxError
	if !errors.As(err, &se) || !strings.HasPrefix(se.Msg, "invalid XML name: ") {
		return false
	}
	name := strings.TrimPrefix(se.Msg, "invalid XML name: ")
	return strings.IndexFunc(name, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0
}

// differentialCases are accepted by both parsers; the trees must agree.
var differentialCases = []string{
	`<a/>`,
	`<a></a>`,
	"<?xml version=\"1.0\"?>\n<a/>\n",
	`<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><a/>`,
	"<?xml version=\"1.0\" encoding=\"utf8\"?>\r\n<a/>\r\n",
	"\xef\xbb\xbf<?xml version=\"1.0\"?><a/>",
	"\xef\xbb\xbf<a/>",
	`<p:a xmlns:p="urn:p" p:x="1" y='2' xmlns="urn:d"><p:b/><c/></p:a>`,
	`<a b = "1"	c="2"
 d="3" ></a >`,
	`<a>x &lt; &gt; &amp; &apos; &quot; &#65;&#x42;&#x00043;&#0068; &#x10FFFF; &#xE000;</a>`,
	`<a b="&lt;&amp;&#x41;&quot;'" c='"&apos;'/>`,
	`<a b="x]]>y">]]&gt; ]] ] > </a>`,
	"<a>line1\r\nline2\rline3\n</a>",
	"<a>&#13;&#10;&#9;</a>",
	"<a>one<![CDATA[<two> & ]] ]]]><!-- c -->three<![CDATA[]]></a>",
	"<a><![CDATA[x\r\ny]]></a>",
	"<!-- before --><a><!----><!-- - --></a><!-- after -->\n",
	"<a>\n  <b>\t</b>\n</a>",
	"<a>é€𝄞 \u00a0</a>",
	"<é:ü xmlns:é='urn:x' é:ñ='v'/>",
	"<a_b.c-d x.y-z_='1'/>",
	`<a b="tab	nl
cr` + "\r" + `crlf` + "\r\n" + `end"/>`,
	`<a b="&#9;&#10;&#13;"/>`,
	"<a>\ufeff\ufffd</a>",
	"<a>\u0085\u2028</a>",
	"<a xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>",
}

func checkDifferential(t *testing.T, name string, msg []byte) {
	t.Helper()
	got, err := parseXML(msg, Limits{})
	if err != nil {
		t.Fatalf("%s: parseXML: %v", name, err)
	}
	want, err := etreeParse(msg, Limits{})
	if err != nil {
		t.Fatalf("%s: etree: %v", name, err)
	}
	if d := diffTree(&want.Element, &got.Element, ""); d != "" {
		t.Fatalf("%s: %s", name, d)
	}
	if d := docShape(got); d != "" {
		t.Fatalf("%s: %s", name, d)
	}
}

func TestParseXMLDifferential(t *testing.T) {
	for i, c := range differentialCases {
		checkDifferential(t, fmt.Sprintf("case %d %.30q", i, c), []byte(c))
	}
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "wssec", "*.xml"))
	corpus, _ := filepath.Glob(filepath.Join("..", "testdata", "corpora", "*", "*.xml"))
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, name := range append(files, corpus...) {
		msg, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Base(name)
		if strings.HasPrefix(base, "valid-") || strings.Contains(name, "corpora") {
			checkDifferential(t, base, msg)
			continue
		}
		// Files meant to fail (most fail later, in verification): if
		// parseXML refuses, etree must refuse or read a malformed document.
		got, err := parseXML(msg, Limits{})
		want, werr := etreeParse(msg, Limits{})
		switch {
		case err == nil && werr == nil:
			if d := diffTree(&want.Element, &got.Element, ""); d != "" {
				t.Errorf("%s: %s", base, d)
			}
		case err == nil:
			t.Errorf("%s: parseXML accepts what etree refuses: %v", base, werr)
		case !isParseSentinel(err):
			t.Errorf("%s: unexpected error %v", base, err)
		case werr == nil:
			if docShape(want) == "" {
				t.Errorf("%s: parseXML refuses (%v) what etree reads as a well-shaped document", base, err)
			}
		}
	}
}

func TestParseXMLValues(t *testing.T) {
	tests := []struct {
		name, msg, attr, text string
	}{
		{"attr tab newline", "<a v='x&#9;y\tz&#10;\r\n w\rq'/>", "x\ty z\n  w q", ""},
		{"attr char refs kept", `<a v="&#9;&#10;&#13;&#32;"/>`, "\t\n\r ", ""},
		{"attr entities", `<a v="&lt;&gt;&amp;&apos;&quot;"/>`, `<>&'"`, ""},
		{"attr other quote", `<a v='"' />`, `"`, ""},
		{"text eol", "<a v=''>a\r\nb\rc\n\r\nd</a>", "", "a\nb\nc\n\nd"},
		{"text cr ref", "<a v=''>a&#13;\nb</a>", "", "a\r\nb"},
		{"text refs", "<a v=''>&#x1F600;&#65;</a>", "", "😀A"},
		{"cdata eol", "<a v=''><![CDATA[a\r\nb\rc &amp;]]></a>", "", "a\nb\nc &amp;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := parseXML([]byte(tt.msg), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			root := doc.Root()
			if got := root.SelectAttrValue("v", "?"); got != tt.attr {
				t.Errorf("attribute %q, want %q", got, tt.attr)
			}
			if got := root.Text(); got != tt.text {
				t.Errorf("text %q, want %q", got, tt.text)
			}
		})
	}
	doc, err := parseXML([]byte("<!--a\r\nb\rc--><a/>"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := doc.Child[0].(*etree.Comment); !ok || c.Data != "a\nb\nc" {
		t.Errorf("comment %#v, want line ends normalized", doc.Child[0])
	}
}

// TestParseXMLTreeAPI checks that etree's own methods work on the tree and
// that the slab-backed slices cannot be corrupted through the public API.
func TestParseXMLTreeAPI(t *testing.T) {
	msg := `<s:Envelope xmlns:s="urn:s" xmlns:u="urn:u"><s:Header><h u:Id="x" a="1"/></s:Header> <s:Body u:Id="b"><p>t</p></s:Body></s:Envelope>`
	doc, err := parseXML([]byte(msg), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	root := doc.Root()
	if root == nil || root.Parent() != &doc.Element || root.Index() != 0 || root.NamespaceURI() != "urn:s" {
		t.Fatalf("root %v", root)
	}
	body := root.FindElement("s:Body")
	if body == nil || body.Index() != 2 || body.Parent() != root || body.NamespaceURI() != "urn:s" {
		t.Fatalf("body %v", body)
	}
	if id := body.SelectAttr("u:Id"); id == nil || id.NamespaceURI() != "urn:u" || id.Element() != body {
		t.Fatalf("body id %v", id)
	}
	if ws, ok := root.Child[1].(*etree.CharData); !ok || !ws.IsWhitespace() {
		t.Fatalf("white space token %#v", root.Child[1])
	}
	if text := body.FindElement("p").Text(); text != "t" {
		t.Fatalf("text %q", text)
	}
	// Growing one element's slices must not touch its neighbours'.
	h := root.FindElement("s:Header/h")
	h.CreateAttr("new", "v")
	h.CreateElement("added")
	root.FindElement("s:Header").CreateElement("added")
	if body.SelectAttrValue("u:Id", "") != "b" || len(body.Child) != 1 || body.ChildElements()[0].Tag != "p" {
		t.Fatal("appending to one element changed another")
	}
	out, err := doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	const want = `<s:Envelope xmlns:s="urn:s" xmlns:u="urn:u"><s:Header><h u:Id="x" a="1" new="v"><added/></h><added/></s:Header> <s:Body u:Id="b"><p>t</p></s:Body></s:Envelope>`
	if out != want {
		t.Fatalf("serialized\n%s\nwant\n%s", out, want)
	}
	if body.Remove(); len(root.ChildElements()) != 1 {
		t.Fatal("Remove did not remove")
	}
	cp := doc.Copy()
	if cp.Root().FindElement("s:Header/h").SelectAttrValue("a", "") != "1" {
		t.Fatal("Copy lost an attribute")
	}
}

func TestParseXMLSerializesLikeEtree(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "wssec", "valid-*.xml"))
	for _, name := range files {
		msg, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseXML(msg, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := etreeParse(msg, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		g, _ := got.WriteToString()
		w, _ := want.WriteToString()
		if g != w {
			t.Errorf("%s: serializations differ", name)
		}
	}
}

func TestParseXMLRejects(t *testing.T) {
	deep := strings.Repeat("<a>", 5) + strings.Repeat("</a>", 5)
	tests := []struct {
		name   string
		msg    string
		limits Limits
		want   error
	}{
		// Document structure.
		{"empty", "", Limits{}, ErrNotXML},
		{"white space only", " \r\n\t", Limits{}, ErrNotXML},
		{"text only", "hello", Limits{}, ErrNotXML},
		{"two roots", "<a/><b/>", Limits{}, ErrNotXML},
		{"text before root", "x<a/>", Limits{}, ErrNotXML},
		{"text after root", "<a/>x", Limits{}, ErrNotXML},
		{"reference outside root", "&#32;<a/>", Limits{}, ErrNotXML},
		{"entity after root", "<a/>&amp;", Limits{}, ErrNotXML},
		{"cdata outside root", "<![CDATA[ ]]><a/>", Limits{}, ErrNotXML},
		{"bom not at start", " \xef\xbb\xbf<a/>", Limits{}, ErrNotXML},
		{"unclosed", "<a><b></b>", Limits{}, ErrNotXML},
		{"mismatched end", "<a></b>", Limits{}, ErrNotXML},
		{"end prefix differs", "<p:a xmlns:p='u' xmlns:q='u'></q:a>", Limits{}, ErrNotXML},
		{"end name longer", "<a></ab>", Limits{}, ErrNotXML},
		{"end tag junk", "<a></a b>", Limits{}, ErrNotXML},
		{"stray end tag", "</a>", Limits{}, ErrNotXML},
		{"truncated tag", "<a", Limits{}, ErrNotXML},
		{"lone lt", "<a><</a>", Limits{}, ErrNotXML},
		{"lt at end", "<a/><", Limits{}, ErrNotXML},
		// Names.
		{"digit start", "<1a/>", Limits{}, ErrNotXML},
		{"dash start", "<-a/>", Limits{}, ErrNotXML},
		{"space after lt", "< a/>", Limits{}, ErrNotXML},
		{"leading colon", "<:a/>", Limits{}, ErrNamespace},
		{"trailing colon", "<a:/>", Limits{}, ErrNamespace},
		{"two colons", "<a:b:c/>", Limits{}, ErrNamespace},
		{"local starts with digit", "<a:1b/>", Limits{}, ErrNamespace},
		{"non-name rune", "<a\u00d7/>", Limits{}, ErrNotXML},
		{"non-name start rune", "<\u0300a/>", Limits{}, ErrNotXML},
		{"invalid utf8 name", "<a\xff/>", Limits{}, ErrNotXML},
		{"bad attribute name", "<a 1b='x'/>", Limits{}, ErrNotXML},
		// Attributes.
		{"unquoted value", "<a b=c/>", Limits{}, ErrNotXML},
		{"no value", "<a b/>", Limits{}, ErrNotXML},
		{"no equals", "<a b 'c'/>", Limits{}, ErrNotXML},
		{"lt in value", "<a b='<'/>", Limits{}, ErrNotXML},
		{"unterminated value", "<a b='c/>", Limits{}, ErrNotXML},
		{"no space between attributes", `<a b="1"c="2"/>`, Limits{}, ErrNotXML},
		{"duplicate attribute", `<a b="1" b="2"/>`, Limits{}, ErrNotXML},
		{"duplicate prefixed attribute", `<a p:b="1" c="" p:b="2"/>`, Limits{}, ErrNotXML},
		{"bad slash", "<a/ >", Limits{}, ErrNotXML},
		// References.
		{"undefined entity", "<a>&nbsp;</a>", Limits{}, ErrNotXML},
		{"undefined entity in attribute", "<a b='&foo;'/>", Limits{}, ErrNotXML},
		{"bare ampersand", "<a>a & b</a>", Limits{}, ErrNotXML},
		{"no semicolon", "<a>&amp</a>", Limits{}, ErrNotXML},
		{"entity case", "<a>&LT;</a>", Limits{}, ErrNotXML},
		{"empty char ref", "<a>&#;</a>", Limits{}, ErrNotXML},
		{"empty hex ref", "<a>&#x;</a>", Limits{}, ErrNotXML},
		{"upper X ref", "<a>&#X41;</a>", Limits{}, ErrNotXML},
		{"hex digits in decimal ref", "<a>&#4a;</a>", Limits{}, ErrNotXML},
		{"ref to NUL", "<a>&#0;</a>", Limits{}, ErrNotXML},
		{"ref to control", "<a>&#x1;</a>", Limits{}, ErrNotXML},
		{"ref to surrogate", "<a>&#xD800;</a>", Limits{}, ErrNotXML},
		{"ref to FFFE", "<a>&#xFFFE;</a>", Limits{}, ErrNotXML},
		{"ref beyond unicode", "<a>&#x110000;</a>", Limits{}, ErrNotXML},
		{"ref overflow", "<a>&#99999999999999999999999;</a>", Limits{}, ErrNotXML},
		{"ref unterminated", "<a>&#65", Limits{}, ErrNotXML},
		// Characters.
		{"NUL in text", "<a>\x00</a>", Limits{}, ErrNotXML},
		{"control in text", "<a>\x01</a>", Limits{}, ErrNotXML},
		{"control in attribute", "<a b='\x1f'/>", Limits{}, ErrNotXML},
		{"invalid utf8 text", "<a>\xc3\x28</a>", Limits{}, ErrNotXML},
		{"overlong utf8", "<a>\xc0\xaf</a>", Limits{}, ErrNotXML},
		{"utf8 surrogate", "<a>\xed\xa0\x80</a>", Limits{}, ErrNotXML},
		{"FFFF in text", "<a>\uffff</a>", Limits{}, ErrNotXML},
		{"invalid utf8 attribute", "<a b='\xff'/>", Limits{}, ErrNotXML},
		{"cdata end in text", "<a>]]></a>", Limits{}, ErrNotXML},
		{"control in comment", "<a><!--\x01--></a>", Limits{}, ErrNotXML},
		{"invalid utf8 comment", "<a><!--\xff--></a>", Limits{}, ErrNotXML},
		{"control in cdata", "<a><![CDATA[\x0b]]></a>", Limits{}, ErrNotXML},
		// Comments and CDATA.
		{"double dash in comment", "<a><!-- a -- b --></a>", Limits{}, ErrNotXML},
		{"comment ends with dash", "<a><!-- a ---></a>", Limits{}, ErrNotXML},
		{"unterminated comment", "<a><!-- a </a>", Limits{}, ErrNotXML},
		{"bad comment open", "<a><!- a --></a>", Limits{}, ErrNotXML},
		{"unterminated cdata", "<a><![CDATA[x</a>", Limits{}, ErrNotXML},
		{"bad cdata open", "<a><![CDAT[x]]></a>", Limits{}, ErrNotXML},
		// DTDs and processing instructions.
		{"doctype", `<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>`, Limits{}, ErrDTD},
		{"doctype after comment", `<?xml version="1.0"?><!-- c --><!DOCTYPE a><a/>`, Limits{}, ErrDTD},
		{"doctype inside", `<a><!DOCTYPE a></a>`, Limits{}, ErrDTD},
		{"entity declaration", `<!ENTITY e "x"><a/>`, Limits{}, ErrNotXML},
		{"element declaration inside", `<a><!ELEMENT a ANY></a>`, Limits{}, ErrNotXML},
		{"lowercase doctype", `<!doctype a><a/>`, Limits{}, ErrNotXML},
		{"pi in body", "<a><?evil x?></a>", Limits{}, ErrDTD},
		{"pi before root", "<?xml-stylesheet href='x'?><a/>", Limits{}, ErrDTD},
		{"pi after root", "<a/><?php x?>", Limits{}, ErrDTD},
		{"pi xmlfoo", "<a><?xmlfoo?></a>", Limits{}, ErrDTD},
		// The XML declaration.
		{"decl after space", " <?xml version='1.0'?><a/>", Limits{}, ErrNotXML},
		{"decl after comment", "<!-- c --><?xml version='1.0'?><a/>", Limits{}, ErrNotXML},
		{"decl inside", "<a><?xml version='1.0'?></a>", Limits{}, ErrNotXML},
		{"decl after root", "<a/><?xml version='1.0'?>", Limits{}, ErrNotXML},
		{"decl upper case", "<a><?XML version='1.0'?></a>", Limits{}, ErrNotXML},
		{"second decl", "<?xml version='1.0'?><?xml version='1.0'?><a/>", Limits{}, ErrNotXML},
		{"decl without version", "<?xml encoding='UTF-8'?><a/>", Limits{}, ErrNotXML},
		{"empty decl", "<?xml?><a/>", Limits{}, ErrNotXML},
		{"decl version 1.1", "<?xml version='1.1'?><a/>", Limits{}, ErrNotXML},
		{"decl version 2", "<?xml version=\"2.0\"?><a/>", Limits{}, ErrNotXML},
		{"decl unterminated", "<?xml version='1.0'<a/>", Limits{}, ErrNotXML},
		{"decl order", "<?xml encoding='UTF-8' version='1.0'?><a/>", Limits{}, ErrNotXML},
		{"decl junk", "<?xml version='1.0' foo='bar'?><a/>", Limits{}, ErrNotXML},
		{"decl bad standalone", "<?xml version='1.0' standalone='maybe'?><a/>", Limits{}, ErrNotXML},
		{"decl mismatched quote", "<?xml version='1.0\"?><a/>", Limits{}, ErrNotXML},
		{"decl bad encoding name", "<?xml version='1.0' encoding='utf 8'?><a/>", Limits{}, ErrNotXML},
		{"ascii with non-ascii", "<?xml version='1.0' encoding='US-ASCII'?><a>\u00e9</a>", Limits{}, ErrNotXML},
		{"ascii with bom", "\xef\xbb\xbf<?xml version='1.0' encoding='us-ascii'?><a/>", Limits{}, ErrNotXML},
		{"latin1", "<?xml version='1.0' encoding='ISO-8859-1'?><a/>", Limits{}, ErrUnsupportedEncoding},
		{"utf16 declared", "<?xml version='1.0' encoding='UTF-16'?><a/>", Limits{}, ErrUnsupportedEncoding},
		{"utf16 bom", "\xff\xfe<\x00a\x00/\x00>\x00", Limits{}, ErrUnsupportedEncoding},
		{"utf16 be bom", "\xfe\xff\x00<\x00a\x00/\x00>", Limits{}, ErrUnsupportedEncoding},
		// Limits.
		{"too deep", deep, Limits{MaxDepth: 4}, ErrTooDeep},
		{"too many elements", "<a>" + strings.Repeat("<b/>", 10) + "</a>", Limits{MaxElements: 10}, ErrTooManyElements},
		{"too many attributes", "<a b='' c='' d=''/>", Limits{MaxAttributes: 2}, ErrTooManyElements},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := parseXML([]byte(tt.msg), tt.limits)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if doc != nil {
				t.Fatal("document returned with an error")
			}
		})
	}
}

// TestParseXMLNamespaces holds the parser to Namespaces in XML 1.0
// everywhere in a document, signed or not: a backend that resolves the
// names differently must never get a document at all.
func TestParseXMLNamespaces(t *testing.T) {
	const (
		xmlNS   = "http://www.w3.org/XML/1998/namespace"
		xmlnsNS = "http://www.w3.org/2000/xmlns/"
	)
	refused := []struct{ name, msg string }{
		// Undeclared prefixes, on elements and attributes, at any depth.
		{"undeclared root prefix", `<p:a/>`},
		{"undeclared nested prefix", `<a><b><p:c/></b></a>`},
		{"undeclared attribute prefix", `<a p:x="1"/>`},
		{"undeclared nested attribute prefix", `<a xmlns:q="urn:q"><q:b p:x="1"/></a>`},
		{"prefix out of scope after its element", `<a><b xmlns:p="urn:p"/><p:c/></a>`},
		{"prefix out of scope after a sibling", `<a><b xmlns:p="urn:p"><p:c/></b><p:c/></a>`},
		{"sibling declaration does not leak", `<a><b xmlns:p="urn:p"></b><c p:x="1"/></a>`},
		{"end-tag prefix declared on a child only", `<a><p:b><c xmlns:p="urn:p"/></p:b></a>`},
		{"soap body undeclared", `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><wsse:Security/></soap:Body></soap:Envelope>`},
		// XML 1.1 undeclaration.
		{"undeclare prefix", `<a xmlns:p="urn:p"><b xmlns:p=""><p:c/></b></a>`},
		{"undeclare prefix unused", `<a xmlns:p=""/>`},
		{"undeclare prefix single quotes", `<a xmlns:p=''/>`},
		{"soap prefix undeclared on Body", `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body xmlns:soap=""/></soap:Envelope>`},
		// The xml prefix and namespace.
		{"xml prefix rebound", `<a xmlns:xml="urn:x"/>`},
		{"xml prefix undeclared", `<a xmlns:xml=""/>`},
		{"xml prefix case differs", `<a xmlns:xml="HTTP://www.w3.org/XML/1998/namespace"/>`},
		{"other prefix bound to xml namespace", `<a xmlns:x="` + xmlNS + `"/>`},
		{"xml namespace through a reference", `<a xmlns:x="&#104;ttp://www.w3.org/XML/1998/namespace"/>`},
		{"xml namespace as default", `<a xmlns="` + xmlNS + `"/>`},
		// The xmlns prefix and namespace.
		{"xmlns prefix declared", `<a xmlns:xmlns="urn:x"/>`},
		{"xmlns prefix declared to its own namespace", `<a xmlns:xmlns="` + xmlnsNS + `"/>`},
		{"other prefix bound to xmlns namespace", `<a xmlns:x="` + xmlnsNS + `"/>`},
		{"xmlns namespace as default", `<a xmlns="` + xmlnsNS + `"/>`},
		{"element with xmlns prefix", `<xmlns:a/>`},
		// §6.3: one expanded name twice.
		{"two prefixes one namespace", `<a xmlns:p="urn:n" xmlns:q="urn:n" p:x="1" q:x="2"/>`},
		{"inherited and local prefix one namespace", `<a xmlns:p="urn:n"><b xmlns:q="urn:n" p:x="1" q:x="2"/></a>`},
		{"two prefixes one namespace, declared after use", `<a q:x="2" p:x="1" xmlns:p="urn:n" xmlns:q="urn:n"/>`},
		{"three attributes, last two collide", `<a xmlns:p="urn:n" xmlns:q="urn:n" xmlns:r="urn:r" r:x="" p:x="" q:x=""/>`},
		{"wsu Id twice", `<a xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" xmlns:u="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" wsu:Id="body" u:Id="evil"/>`},
		// XML 1.0 Names that are not QNames: an empty part or two colons.
		{"element leading colon", `<:a/>`},
		{"element trailing colon", `<a:/>`},
		{"element two colons", `<a:b:c xmlns:a="urn:a"/>`},
		{"element local part starts with a digit", `<a:1b xmlns:a="urn:a"/>`},
		{"element local part starts with a dot", `<a:.b xmlns:a="urn:a"/>`},
		{"element local part starts with a combining mark", "<a:\u0300b xmlns:a='urn:a'/>"},
		{"attribute leading colon", `<a :x="1"/>`},
		{"attribute trailing colon", `<a x:="1"/>`},
		{"attribute two colons", `<a x:y:z="1" xmlns:x="urn:x"/>`},
		{"declaration without a prefix", `<a xmlns:="urn:x"/>`},
		{"declaration with two colons", `<a xmlns:p:q="urn:x"/>`},
		{"end tag with two colons", `<a:b:c xmlns:a="urn:a"></a:b:c>`},
		// Deep scopes switch to the index; its answers must be the same.
		{"undeclared beyond the index", nestedDecls(40) + `<z:a/>` + closeNested(40)},
		{"popped out of the index", nestedDecls(40) + closeNested(20) + `<p39:a/>` + closeNested(20)},
		{"duplicate beyond the index", nestedDecls(40) + `<a xmlns:q="urn:3" p3:x="" q:x=""/>` + closeNested(40)},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := parseXML([]byte(tt.msg), Limits{})
			if !errors.Is(err, ErrNamespace) {
				t.Fatalf("err = %v, want ErrNamespace", err)
			}
			if doc != nil {
				t.Fatal("document returned with an error")
			}
			if FaultCode(err) != "InvalidSecurity" {
				t.Fatalf("fault %s", FaultCode(err))
			}
			// The oracle agrees wherever encoding/xml reads a document.
			if ref, werr := etreeParse([]byte(tt.msg), Limits{}); werr == nil && nsViolation(&ref.Element) == "" {
				t.Fatal("the oracle finds no violation")
			}
		})
	}
	// Names that are not even XML 1.0 Names stay ErrNotXML.
	for _, msg := range []string{`<1a/>`, `<a 1:x="1"/>`, "<a\u00d7:b/>", "<a:b\u00d7/>", "<a b\u00d7='1'/>"} {
		if _, err := parseXML([]byte(msg), Limits{}); !errors.Is(err, ErrNotXML) {
			t.Errorf("%s: err = %v, want ErrNotXML", msg, err)
		}
	}
	accepted := []string{
		`<a xmlns="urn:d"><b xmlns=""/></a>`, // undeclaring the default namespace is XML 1.0
		`<xml:a/>`,
		`<a xml:lang="en" xml:space="preserve"/>`,
		`<a xmlns:xml="` + xmlNS + `" xml:lang="en"/>`,
		`<a xmlns:p="urn:p" xmlns:q="urn:q" p:x="1" q:x="2" x="3"/>`,
		`<a xmlns:p="urn:p"><b xmlns:p="urn:q"><p:c/></b><p:c/></a>`,
		`<p:a xmlns:p="urn:p"><p:b/></p:a>`,
		`<a xmlns:p="urn:p" p:x="1" x="2"/>`, // {urn:p}x and x differ
		`<a xmlns:xmlfoo="urn:x" xmlfoo:b=""/>`,
		nestedDecls(40) + `<p0:a p39:x="" p1:y=""/>` + closeNested(40),
		nestedDecls(40) + closeNested(20) + `<p19:a/>` + closeNested(20),
	}
	for _, msg := range accepted {
		checkDifferential(t, fmt.Sprintf("%.40q", msg), []byte(msg))
	}
}

// isQNameParts reports whether prefix:local, as the reference parser split
// it, is a QName: NCNames both, the prefix possibly empty.
func isQNameParts(prefix, local string) bool {
	ncname := func(s string) bool {
		for i, r := range s {
			switch {
			case r == ':':
				return false
			case i == 0 && r < utf8.RuneSelf:
				if !nameStartChar[r] {
					return false
				}
			case i == 0 && !isNameRune(r, true):
				return false
			}
		}
		return s != ""
	}
	return ncname(local) && (prefix == "" || ncname(prefix))
}

// nestedDecls opens n elements, the i-th declaring pi bound to urn:i.
func nestedDecls(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `<e xmlns:p%d="urn:%d">`, i, i)
	}
	return b.String()
}

func closeNested(n int) string { return strings.Repeat("</e>", n) }

// TestParseXMLFragmentScope checks that a fragment resolves prefixes against
// the declarations at its insertion point, and only there.
func TestParseXMLFragmentScope(t *testing.T) {
	host, err := parseXML([]byte(`<s:E xmlns:s="urn:s" xmlns:m="urn:m"><s:B xmlns:x="urn:x"><in/></s:B><s:H xmlns:h="urn:h"/></s:E>`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	scope := host.Root().FindElement("s:B/in")
	for _, frag := range []string{`<w><m:op x:a="1" s:b="2"/></w>`, `<w><x:op xmlns:x="urn:y"/></w>`, `<w>text</w>`} {
		doc, err := parseXMLFragment(frag, Limits{}, new(arena), scope)
		if err != nil {
			t.Errorf("%s: %v", frag, err)
			continue
		}
		if op := doc.Root().ChildElements(); len(op) > 0 && op[0].Space == "m" && op[0].Tag != "op" {
			t.Errorf("%s: %v", frag, op[0])
		}
	}
	for _, frag := range []string{`<w><h:op/></w>`, `<w><q:op/></w>`, `<w xmlns:m=""/>`, `<w><x:a x:b="" y:b="" xmlns:y="urn:x"/></w>`} {
		if _, err := parseXMLFragment(frag, Limits{}, new(arena), scope); !errors.Is(err, ErrNamespace) {
			t.Errorf("%s: err = %v, want ErrNamespace", frag, err)
		}
	}
	if _, err := parseXMLString(`<w><m:op/></w>`, Limits{}, new(arena)); !errors.Is(err, ErrNamespace) {
		t.Errorf("without a scope: err = %v, want ErrNamespace", err)
	}
}

func TestParseXMLLimitsBoundary(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		limits Limits
	}{
		{"depth at limit", strings.Repeat("<a>", 4) + strings.Repeat("</a>", 4), Limits{MaxDepth: 4}},
		{"elements at limit", "<a>" + strings.Repeat("<b/>", 9) + "</a>", Limits{MaxElements: 10}},
		{"attributes at limit", "<a b='' c=''/>", Limits{MaxAttributes: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseXML([]byte(tt.msg), tt.limits); err != nil {
				t.Fatal(err)
			}
			// etree's depth rule is the same one.
			if _, err := etreeParse([]byte(tt.msg), tt.limits); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzParseXMLDifferential holds parseXML to encoding/xml (through etree):
// it may refuse more, it may not accept more (except names that only XML 1.0
// fifth edition allows), and when both accept the trees must be the same,
// modulo §3.3.3 attribute and §2.11 comment normalization.
func FuzzParseXMLDifferential(f *testing.F) {
	addGoldenSeeds(f)
	nsFiles, _ := filepath.Glob(filepath.Join(nsGoldenDir, "*.xml"))
	for _, name := range nsFiles {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	for _, c := range differentialCases {
		f.Add([]byte(c))
	}
	for _, c := range []string{"<a>&#xD800;</a>", "<!DOCTYPE a><a/>", "<a b='1' b='2'/>", "<a><?p?></a>", "<a>]]></a>", "<a:b:c/>",
		"<p:a/>", "<a xmlns:p=''/>", "<a xmlns:p='u' xmlns:q='u' p:x='' q:x=''/>", "<a xmlns:xml='u'/>", "<a><b xmlns:p='u'/><p:c/></a>",
		nestedDecls(20) + "<p3:a p19:b=''/>" + closeNested(20)} {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := parseXML(msg, Limits{})
		if errors.Is(err, ErrNamespace) {
			// Refused for its namespaces: encoding/xml, which does not
			// check them, must read it and the oracle find a violation.
			if want, werr := etreeParse(msg, Limits{}); werr == nil && nsViolation(&want.Element) == "" {
				t.Fatalf("refused (%v), but the oracle finds no namespace violation", err)
			}
		}
		if err != nil {
			if !isParseSentinel(err) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			if got != nil {
				t.Fatal("document returned with an error")
			}
			return
		}
		want, werr := etreeParse(msg, Limits{})
		if werr != nil {
			if encodingXMLNameBug(werr) {
				return
			}
			t.Fatalf("parseXML accepts what encoding/xml refuses: %v", werr)
		}
		if d := diffTree(&want.Element, &got.Element, ""); d != "" {
			t.Fatal(d)
		}
		if d := docShape(got); d != "" {
			t.Fatal(d)
		}
		if v := nsViolation(&want.Element); v != "" {
			t.Fatalf("accepted, but %s", v)
		}
	})
}

func benchmarkFiles(b *testing.B) map[string][]byte {
	out := map[string][]byte{}
	for _, name := range []string{"valid-soap11-rsa", "valid-large"} {
		msg, err := os.ReadFile(filepath.Join("..", "testdata", "wssec", name+".xml"))
		if err != nil {
			b.Fatal(err)
		}
		out[name] = msg
	}
	return out
}

func BenchmarkParseXML(b *testing.B) {
	for name, msg := range benchmarkFiles(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseXML(msg, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseXMLEtree(b *testing.B) {
	for name, msg := range benchmarkFiles(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := etreeParse(msg, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestParseXMLGeneratedDifferential compares the parsers on documents built
// from a small grammar with a fixed seed, which reaches far more accepted
// shapes than byte-level fuzzing does. Prefixes are declared at the root
// most of the time and (re)declared, undeclared or bound to the reserved
// namespaces on the way down now and then, so that nsViolation, an
// independent reading of Namespaces in XML 1.0 over the reference tree,
// checks ErrNamespace both ways: every refusal is a violation, every
// violation is refused.
func TestParseXMLGeneratedDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	names := []string{"a", "p:a", "q:b", "é", "x.y-z_1", "ns:Ünï", "_", "a·b", "xml:lang", "xmlns:p", "xmlns",
		"u:a", "r:b", "p:b", "xmlns:u", "xmlns:r", "xml:space"}
	texts := []string{"x", " ", "\n", "\r\n", "\r", "\t", "&amp;", "&lt;", "&#x41;", "&#10;", "&#13;", "&#9;", "]", "]]", ">", "é€😀", "\"'", "&quot;&apos;", "\u00a0"}
	nsValues := []string{"urn:p", "urn:q", "urn:r", "", xmlNamespaceURI, xmlnsNamespaceURI, "&#x75;rn:p", "http://www.w3.org/XML/1998/namespace ", "urn:p"}
	var elem func(depth int) string
	elem = func(depth int) string {
		var b strings.Builder
		name := pick(names...)
		b.WriteString("<" + name)
		if depth == 0 && rng.IntN(10) != 0 {
			b.WriteString(` xmlns:p="urn:p" xmlns:q='urn:q' xmlns:ns="urn:ns"`)
		}
		used := map[string]bool{}
		for n := rng.IntN(4); n > 0; n-- {
			an := pick(names...)
			if used[an] || depth == 0 && strings.HasPrefix(an, "xmlns:") && an != "xmlns:u" && an != "xmlns:r" {
				continue
			}
			used[an] = true
			q := pick(`"`, `'`)
			b.WriteString(pick(" ", "\n", "\t", "\r\n", "  ") + an + pick("=", " = ") + q)
			if strings.HasPrefix(an, "xmlns") && rng.IntN(2) == 0 {
				b.WriteString(pick(nsValues...))
			} else {
				for m := rng.IntN(4); m > 0; m-- {
					v := pick(texts...)
					if strings.Contains(v, q) {
						v = "x"
					}
					b.WriteString(v)
				}
			}
			b.WriteString(q)
		}
		if depth > 4 || rng.IntN(4) == 0 {
			b.WriteString(pick("/>", " />"))
			return b.String()
		}
		b.WriteString(">")
		for n := rng.IntN(5); n > 0; n-- {
			switch rng.IntN(5) {
			case 0:
				b.WriteString(elem(depth + 1))
			case 1:
				b.WriteString("<![CDATA[" + pick(texts...) + pick("", "<&>", "]]") + "]]>")
			case 2:
				b.WriteString("<!--" + pick("", " c ", "\r\n", " -x- ", "<&>") + "-->")
			default:
				b.WriteString(strings.ReplaceAll(pick(texts...), "]]", "] ]"))
			}
		}
		b.WriteString("</" + name + pick(">", " >", "\n>"))
		return b.String()
	}
	compared, nsRefused := 0, 0
	for i := 0; i < 4000; i++ {
		doc := pick("", "<?xml version=\"1.0\"?>", "<?xml version='1.0' encoding='utf-8'?>\r\n", "\xef\xbb\xbf") +
			pick("", "<!-- head -->", "\n") + elem(0) + pick("", "\n", "<!-- tail -->")
		if strings.Contains(doc, "]]>") && !strings.Contains(doc, "<![CDATA[") {
			continue
		}
		got, err := parseXML([]byte(doc), Limits{})
		want, werr := etreeParse([]byte(doc), Limits{})
		switch {
		case err != nil && werr != nil:
		case errors.Is(err, ErrNamespace):
			if v := nsViolation(&want.Element); v == "" {
				t.Fatalf("%q: refused (%v), but the oracle finds no namespace violation", doc, err)
			}
			nsRefused++
		case err != nil:
			// Only our stricter rules may refuse: "]]>" split across
			// generated texts, or a name the generator made invalid.
			if !errors.Is(err, ErrNotXML) {
				t.Fatalf("%q: %v", doc, err)
			}
			t.Logf("refused %q: %v", doc, err)
		case werr != nil:
			if !encodingXMLNameBug(werr) {
				t.Fatalf("%q: accepted, encoding/xml says %v", doc, werr)
			}
		default:
			if d := diffTree(&want.Element, &got.Element, ""); d != "" {
				t.Fatalf("%q: %s", doc, d)
			}
			if v := nsViolation(&want.Element); v != "" {
				t.Fatalf("%q: accepted, but %s", doc, v)
			}
			compared++
		}
	}
	t.Logf("%d documents compared, %d refused for their namespaces", compared, nsRefused)
	if compared < 1500 || nsRefused < 500 {
		t.Fatalf("only %d compared and %d namespace refusals of 4000 generated documents", compared, nsRefused)
	}
}

// nsViolation is the test oracle for ErrNamespace: an independent, plain
// reading of Namespaces in XML 1.0 over a tree from the reference parser
// (prefixes as written, attribute values not normalized). It returns the
// first violation, or "".
func nsViolation(root *etree.Element) string {
	var walk func(el *etree.Element, scope map[string]string) string
	walk = func(el *etree.Element, scope map[string]string) string {
		if el.Tag != "" { // not the document
			local := scope
			for _, a := range el.Attr {
				v := attrNorm(a.Value)
				switch {
				case a.Space == "xmlns":
					switch {
					case a.Key == "xmlns":
						return "xmlns declared"
					case a.Key == "xml" && v != xmlNamespaceURI:
						return "xml bound elsewhere"
					case a.Key != "xml" && (v == xmlNamespaceURI || v == xmlnsNamespaceURI):
						return "prefix bound to a reserved namespace"
					case v == "":
						return "prefix undeclared"
					}
					if a.Key != "xml" {
						local = maps.Clone(local)
						local[a.Key] = v
					}
				case a.Space == "" && a.Key == "xmlns":
					if v == xmlNamespaceURI || v == xmlnsNamespaceURI {
						return "reserved default namespace"
					}
				}
			}
			resolve := func(prefix string) (string, bool) {
				if prefix == "xml" {
					return xmlNamespaceURI, true
				}
				uri, ok := local[prefix]
				return uri, ok
			}
			if !isQNameParts(el.Space, el.Tag) {
				return "element name not a QName"
			}
			for _, a := range el.Attr {
				if !isQNameParts(a.Space, a.Key) {
					return "attribute name not a QName"
				}
			}
			if el.Space == "xmlns" {
				return "element prefix xmlns"
			}
			if _, ok := resolve(el.Space); el.Space != "" && !ok {
				return "undeclared element prefix " + el.Space
			}
			seen := map[[2]string]bool{}
			for _, a := range el.Attr {
				if a.Space == "" || a.Space == "xmlns" {
					continue
				}
				uri, ok := resolve(a.Space)
				if !ok {
					return "undeclared attribute prefix " + a.Space
				}
				if seen[[2]string{uri, a.Key}] {
					return "two attributes named {" + uri + "}" + a.Key
				}
				seen[[2]string{uri, a.Key}] = true
			}
			scope = local
		}
		for _, c := range el.ChildElements() {
			if v := walk(c, scope); v != "" {
				return v
			}
		}
		return ""
	}
	return walk(root, map[string]string{})
}
