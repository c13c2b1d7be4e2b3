package xsd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

func loadSchema(t testing.TB, text string) (*Schema, error) {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(text); err != nil {
		t.Fatal(err)
	}
	s := New()
	if err := s.Add(doc.Root()); err != nil {
		return nil, err
	}
	return s, s.Resolve()
}

func ordersSchema(t testing.TB) (*Schema, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "orders.xsd"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := loadSchema(t, string(b))
	if err != nil {
		t.Fatal(err)
	}
	return s, string(b)
}

func validate(t testing.TB, s *Schema, xml string) error {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(xml); err != nil {
		t.Fatal(err)
	}
	return s.Validate(doc.Root())
}

const validOrder = `<PlaceOrder xmlns="urn:t"><Date>2026-02-28</Date><CustomerID>ABC</CustomerID>` +
	`<Line no="1"><Sku>ABC-1234</Sku><Qty>2</Qty></Line><Total>10.50</Total><Currency>EUR</Currency></PlaceOrder>`

func TestValidate(t *testing.T) {
	s, _ := ordersSchema(t)
	for _, tc := range []struct {
		name, from, to string
		ok             bool
	}{
		{"valid", "", "", true},
		{"guest choice", "<CustomerID>ABC</CustomerID>", "<Guest>true</Guest>", true},
		{"both choices", "<CustomerID>ABC</CustomerID>", "<CustomerID>ABC</CustomerID><Guest>1</Guest>", false},
		{"no choice", "<CustomerID>ABC</CustomerID>", "", false},
		{"bad date", "2026-02-28", "2026-02-30", false},
		{"optional dateTime", "</Date>", "</Date><At>2026-01-01T10:00:00Z</At>", true},
		{"bad pattern", "ABC-1234", "abc-1234", false},
		{"range low", "<Qty>2</Qty>", "<Qty>0</Qty>", false},
		{"range high", "<Qty>2</Qty>", "<Qty>1000</Qty>", false},
		{"not an int", "<Qty>2</Qty>", "<Qty>2.0</Qty>", false},
		{"enumeration", "EUR", "GBP", false},
		{"fraction digits", "10.50", "10.501", false},
		{"min exclusive", "10.50", "0", false},
		{"length", "ABC", "ABCD", false},
		{"maxOccurs", "</Line>", `</Line><Line no="2"><Sku>ABC-1234</Sku><Qty>1</Qty></Line><Line no="3"><Sku>ABC-1234</Sku><Qty>1</Qty></Line><Line no="4"><Sku>ABC-1234</Sku><Qty>1</Qty></Line>`, false},
		{"order", "<Total>10.50</Total><Currency>EUR</Currency>", "<Currency>EUR</Currency><Total>10.50</Total>", false},
		{"unknown element", "</Line>", "</Line><Admin/>", false},
		{"wrong namespace child", "<Total>10.50</Total>", `<Total xmlns="urn:x">10.50</Total>`, false},
		{"missing required attribute", ` no="1"`, "", false},
		{"undeclared attribute", ` no="1"`, ` no="1" admin="true"`, false},
		{"text in element-only", "<Date>", "junk<Date>", false},
		{"xsi:type", "<Date>", `<Date xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="x">`, false},
		{"element in simple content", "<Qty>2</Qty>", "<Qty>2<b/></Qty>", false},
		{"stricter: padded token", "<Currency>EUR</Currency>", "<Currency> EUR </Currency>", false},
		{"stricter: padded int", "<Qty>2</Qty>", "<Qty> 2 </Qty>", false},
		{"stricter: padded attribute", ` no="1"`, ` no=" 1 "`, false},
		{"string keeps its spaces", "<Sku>ABC-1234</Sku><Qty>2</Qty>", "<Sku>ABC-1234</Sku><Qty>2</Qty><Note> a  b </Note>", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(validOrder, tc.from, tc.to, 1)
			if tc.from != "" && doc == validOrder {
				t.Fatal("patch did not apply")
			}
			err := validate(t, s, doc)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestLoadRefusesNamingTheConstruct(t *testing.T) {
	const head = `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t" xmlns:t="urn:t">`
	for _, tc := range []struct{ body, names string }{
		{`<xs:element name="a"><xs:complexType><xs:sequence><xs:any/></xs:sequence></xs:complexType></xs:element>`, "xsd:any"},
		{`<xs:element name="a"><xs:complexType><xs:all/></xs:complexType></xs:element>`, "xsd:all"},
		{`<xs:element name="a"><xs:complexType mixed="true"/></xs:element>`, "xsd:complexType/@mixed"},
		{`<xs:element name="a" nillable="true" type="xs:string"/>`, "xsd:element/@nillable"},
		{`<xs:element name="a" substitutionGroup="t:b" type="xs:string"/>`, "xsd:element/@substitutionGroup"},
		{`<xs:group name="g"/>`, "xsd:group"},
		{`<xs:complexType name="c"><xs:complexContent/></xs:complexType>`, "xsd:complexContent"},
		{`<xs:complexType name="c"><xs:simpleContent/></xs:complexType>`, "xsd:simpleContent"},
		{`<xs:simpleType name="s"><xs:list itemType="xs:int"/></xs:simpleType>`, "xsd:list"},
		{`<xs:simpleType name="s"><xs:union memberTypes="xs:int"/></xs:simpleType>`, "xsd:union"},
		{`<xs:simpleType name="s"><xs:restriction base="xs:string"><xs:whiteSpace value="preserve"/></xs:restriction></xs:simpleType>`, "xsd:whiteSpace"},
		{`<xs:simpleType name="s"><xs:restriction base="xs:string"><xs:pattern value="\i\c*"/></xs:restriction></xs:simpleType>`, `\i`},
		{`<xs:simpleType name="s"><xs:restriction base="xs:string"><xs:pattern value="[a-z-[aeiou]]"/></xs:restriction></xs:simpleType>`, `-[`},
		{`<xs:element name="a" type="xs:duration"/>`, "xs:duration"},
		{`<xs:element name="a"/>`, "anyType"},
		{`<xs:element name="a"><xs:complexType><xs:anyAttribute/></xs:complexType></xs:element>`, "xsd:anyAttribute"},
		{`<xs:redefine schemaLocation="x.xsd"/>`, "xsd:redefine"},
		{`<xs:element name="a"><xs:complexType><xs:sequence><xs:element name="b" type="xs:string"/></xs:sequence></xs:complexType><xs:key name="k"/></xs:element>`, "xsd:key"},
	} {
		_, err := loadSchema(t, head+tc.body+`</xs:schema>`)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("%s: err %v, want ErrUnsupported naming %q", tc.body, err, tc.names)
		}
	}
}

// gen writes a random PlaceOrder. Each part is valid or, with the
// document's mutation rate, dropped, repeated or given a value from a pool
// of invalid and edge-case ones; a third of the documents are unmutated.
func gen(r *rand.Rand) string {
	rate := []float64{0, 0.03, 0.15}[r.IntN(3)]
	mut := func() bool { return r.Float64() < rate }
	pick := func(vs []string) string { return vs[r.IntN(len(vs))] }
	var b strings.Builder
	el := func(name string, good, bad []string) {
		n := 1
		if mut() {
			n = r.IntN(3) // 0 or 2 (or 1)
		}
		for range n {
			v := pick(good)
			if mut() {
				v = pick(bad)
			}
			fmt.Fprintf(&b, "<%s>%s</%s>", name, v, name)
		}
	}
	b.WriteString(`<PlaceOrder xmlns="urn:t">`)
	el("Date", []string{"2026-02-28", "2024-02-29", "2026-01-01Z", "2026-01-01+02:00"},
		[]string{"2026-02-29", "2026-13-01", "26-01-01", "0000-01-01", "2026-1-01"})
	if r.IntN(2) == 0 {
		el("At", []string{"2026-01-01T10:00:00Z", "2026-01-01T10:00:00.123+01:00", "2026-06-30T23:59:59"},
			[]string{"2026-01-01T25:00:00", "2026-01-01 10:00:00", "2026-01-01T10:00", "2026-02-30T10:00:00"})
	}
	if r.IntN(2) == 0 {
		el("CustomerID", []string{"ABC", "Ä&amp;C", "a c"}, []string{"AB", "ABCD", " AB", ""})
	} else {
		el("Guest", []string{"true", "false", "1", "0"}, []string{"yes", "TRUE", ""})
	}
	if mut() {
		b.WriteString("<Guest>true</Guest>")
	}
	lines := 1 + r.IntN(3)
	if mut() {
		lines = []int{0, 4}[r.IntN(2)]
	}
	for i := range lines {
		switch {
		case mut():
			fmt.Fprintf(&b, "<Line>")
		case mut():
			fmt.Fprintf(&b, `<Line no="%s">`, pick([]string{"0", "-1", "x", ""}))
		default:
			fmt.Fprintf(&b, `<Line no="%s">`, pick([]string{"1", "+3", fmt.Sprint(i + 1)}))
		}
		el("Sku", []string{"ABC-1234", "XYZ-0000"}, []string{"abc-1234", "ABC-123", "ABC-12345", "ABC-١٢٣٤"})
		el("Qty", []string{"1", "999", "+5", "0042"}, []string{"0", "1000", "-1", "2.0", "2147483648"})
		if r.IntN(2) == 0 {
			el("Note", []string{"", "short", "exactly10!", "ünïcödé ok"}, []string{"eleven char", "far too long a note"})
		}
		b.WriteString("</Line>")
	}
	el("Total", []string{"10.50", "0.01", "123456.78", "+.5", "00012.10", "7"},
		[]string{"0", "-1", "10.501", "1234567.89", "1e3", "."})
	el("Currency", []string{"EUR", "USD"}, []string{"GBP", "eur", ""})
	if mut() {
		b.WriteString("<Extra/>")
	}
	b.WriteString("</PlaceOrder>")
	return b.String()
}

// TestDifferentialXmllint validates generated documents with this package
// and with libxml2 (xmllint --schema) and requires the same verdict.
func TestDifferentialXmllint(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("xmllint (libxml2-utils) is required with CI set")
		}
		t.Skip("xmllint not installed (apt-get install libxml2-utils)")
	}
	s, _ := ordersSchema(t)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	const n = 400
	docs := make([]string, n)
	files := make([]string, n)
	for i := range n {
		docs[i] = gen(r)
		files[i] = filepath.Join(dir, fmt.Sprintf("d%03d.xml", i))
		if err := os.WriteFile(files[i], []byte(docs[i]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := exec.Command(xmllint, append([]string{"--noout", "--schema", filepath.Join("testdata", "orders.xsd")}, files...)...).CombinedOutput()
	valid, invalid := 0, 0
	for i, f := range files {
		theirs := strings.Contains(string(out), f+" validates")
		if !theirs && !strings.Contains(string(out), f+" fails to validate") {
			t.Fatalf("no xmllint verdict for %s:\n%s", f, out)
		}
		ours := validate(t, s, docs[i])
		if (ours == nil) != theirs {
			t.Errorf("doc %d: ours %v, libxml2 valid=%v\n%s", i, ours, theirs, docs[i])
		}
		if theirs {
			valid++
		} else {
			invalid++
		}
	}
	if valid < n/20 || invalid < n/20 {
		t.Fatalf("generator too one-sided: %d valid, %d invalid", valid, invalid)
	}
	t.Logf("%d valid, %d invalid documents agreed with libxml2", valid, invalid)
}

func FuzzValidate(f *testing.F) {
	s, _ := ordersSchema(f)
	f.Add(validOrder)
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(gen(r))
	}
	f.Fuzz(func(t *testing.T, xml string) {
		doc := etree.NewDocument()
		if doc.ReadFromString(xml) != nil || doc.Root() == nil {
			return
		}
		if err := s.Validate(doc.Root()); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error outside ErrInvalid: %v", err)
		}
	})
}

func FuzzLoad(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "orders.xsd"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	f.Fuzz(func(t *testing.T, text string) {
		doc := etree.NewDocument()
		if doc.ReadFromString(text) != nil || doc.Root() == nil {
			return
		}
		s := New()
		if s.Add(doc.Root()) == nil && s.Resolve() == nil {
			for q := range s.elements {
				_ = s.Validate(etree.NewElement(q.Local))
			}
		}
	})
}

// TestManyChildren: a long repeat is matched in linear time and memory.
func TestManyChildren(t *testing.T) {
	s, err := loadSchema(t, `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t" xmlns:t="urn:t" elementFormDefault="qualified">
  <xs:element name="L"><xs:complexType><xs:sequence><xs:element name="a" type="xs:int" maxOccurs="unbounded"/></xs:sequence></xs:complexType></xs:element></xs:schema>`)
	if err != nil {
		t.Fatal(err)
	}
	doc := `<L xmlns="urn:t">` + strings.Repeat("<a>1</a>", maxChildren) + `</L>`
	if err := validate(t, s, doc); err != nil {
		t.Fatal(err)
	}
	over := `<L xmlns="urn:t">` + strings.Repeat("<a>1</a>", maxChildren+1) + `</L>`
	if err := validate(t, s, over); !errors.Is(err, ErrInvalid) {
		t.Fatalf("over maxChildren: %v", err)
	}
}
