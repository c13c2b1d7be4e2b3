// Package xsd validates SOAP Body content against the subset of XML Schema
// 1.0 that document/literal services use: global elements, named and
// anonymous complex types with sequence and choice (nested) of elements
// with minOccurs/maxOccurs, attributes of simple types, and simple types
// restricting the built-ins with length, minLength, maxLength, pattern,
// enumeration, min/max Inclusive/Exclusive, totalDigits and fractionDigits.
//
// Go has no maintained, pure-Go, full XSD validator, and a partial one that
// skips what it does not understand would pass what the backend refuses or
// misreads. So a schema that needs anything else (xsd:any, xsd:all, groups,
// derivation of complex types, mixed content, lists, unions, identity
// constraints, nillable, substitution groups, ...) is refused when it is
// loaded, with an error naming the construct.
//
// Deliberately stricter than XML Schema: a value of a type other than
// xs:string and xs:normalizedString must have no whitespace to collapse
// (" 7 " is refused where XSD accepts 7), as libxml2 already does for some
// types; years before 0001 and 24:00:00 are refused. The differential test
// against libxml2 (xmllint --schema) covers everything else.
package xsd

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// NS is the XML Schema namespace.
const NS = "http://www.w3.org/2001/XMLSchema"

const nsXSI = "http://www.w3.org/2001/XMLSchema-instance"

var (
	// ErrUnsupported is a schema construct outside the subset; the error names it.
	ErrUnsupported = errors.New("xsd: unsupported schema construct")
	// ErrSchema is a schema that is malformed or refers to what it does not declare.
	ErrSchema = errors.New("xsd: invalid schema")
	// ErrInvalid is an instance that does not match its schema.
	ErrInvalid = errors.New("xsd: document does not match the schema")
)

// maxChildren bounds the children of one element the content matcher walks.
const maxChildren = 10000

// QName is a namespace-qualified name.
type QName struct{ Space, Local string }

func (q QName) String() string { return "{" + q.Space + "}" + q.Local }

// Schema is a set of compiled schema documents.
type Schema struct {
	elements map[QName]*elemDecl
	types    map[QName]any // *complexType or *simpleType
	pending  []func() error
}

type elemDecl struct {
	name     QName
	typ      any // *complexType or *simpleType, resolved after load
	typeName *QName
	min, max int // max -1: unbounded
}

type complexType struct {
	content *particle // nil: empty content
	attrs   []*attrDecl
}

type attrDecl struct {
	name     QName
	required bool
	typ      *simpleType
	typeName *QName
}

type particle struct {
	kind     string // "element", "sequence", "choice"
	elem     *elemDecl
	children []*particle
	min, max int
}

type simpleType struct {
	base       string // the built-in it derives from
	enum       []string
	patterns   []*regexp.Regexp
	length     *int
	minLen     *int
	maxLen     *int
	minIncl    *big.Rat
	maxIncl    *big.Rat
	minExcl    *big.Rat
	maxExcl    *big.Rat
	totalDig   *int
	fracDig    *int
	parentName *QName
	parent     *simpleType
}

// New is an empty schema set.
func New() *Schema {
	return &Schema{elements: map[QName]*elemDecl{}, types: map[QName]any{}}
}

// Add compiles one xsd:schema element. Call Resolve after the last Add.
func (s *Schema) Add(schema *etree.Element) error {
	if schema.NamespaceURI() != NS || schema.Tag != "schema" {
		return fmt.Errorf("%w: not an xsd:schema", ErrSchema)
	}
	c := &compiler{s: s, tns: schema.SelectAttrValue("targetNamespace", ""),
		qualified:     schema.SelectAttrValue("elementFormDefault", "unqualified") == "qualified",
		attrQualified: schema.SelectAttrValue("attributeFormDefault", "unqualified") == "qualified"}
	for _, a := range []string{"blockDefault", "finalDefault"} {
		if schema.SelectAttr(a) != nil {
			return unsupported(schema, "@"+a)
		}
	}
	for _, el := range schema.ChildElements() {
		if el.NamespaceURI() != NS {
			return unsupported(el, "")
		}
		var err error
		switch el.Tag {
		case "annotation":
		case "import", "include":
			// The caller loads the referenced documents (relative, local).
		case "element":
			var d *elemDecl
			if d, err = c.element(el, true); err == nil {
				s.elements[d.name] = d
			}
		case "complexType":
			var t *complexType
			if t, err = c.complexType(el); err == nil {
				s.types[QName{c.tns, el.SelectAttrValue("name", "")}] = t
			}
		case "simpleType":
			var t *simpleType
			if t, err = c.simpleType(el); err == nil {
				s.types[QName{c.tns, el.SelectAttrValue("name", "")}] = t
			}
		default:
			err = unsupported(el, "")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Resolve links type references across the added schemas.
func (s *Schema) Resolve() error {
	for _, f := range s.pending {
		if err := f(); err != nil {
			return err
		}
	}
	s.pending = nil
	return nil
}

// Element is the global element declaration named q, if any.
func (s *Schema) Element(q QName) bool { _, ok := s.elements[q]; return ok }

func unsupported(el *etree.Element, what string) error {
	if what == "" {
		what = "xsd:" + el.Tag
	}
	return fmt.Errorf("%w: %s", ErrUnsupported, what)
}

type compiler struct {
	s                        *Schema
	tns                      string
	qualified, attrQualified bool
}

// resolveQName turns prefix:local in el's scope into a QName.
func resolveQName(el *etree.Element, v string) (QName, error) {
	q, ok := ResolveQName(el, v)
	if !ok {
		prefix, _, _ := strings.Cut(v, ":")
		return QName{}, fmt.Errorf("%w: prefix %q of %q not declared", ErrSchema, prefix, v)
	}
	return q, nil
}

// ResolveQName turns a QName-valued attribute or text v (prefix:local, or
// an unprefixed local name in the default namespace, none if undeclared)
// into a QName with the declarations in scope at el. ok is false when the
// prefix is not declared there. WSDL resolves its QNames with it too.
func ResolveQName(el *etree.Element, v string) (q QName, ok bool) {
	prefix, local, found := strings.Cut(v, ":")
	if !found {
		prefix, local = "", v
	}
	for e := el; e != nil; e = e.Parent() {
		for _, a := range e.Attr {
			if (prefix == "" && a.Space == "" && a.Key == "xmlns") || (prefix != "" && a.Space == "xmlns" && a.Key == prefix) {
				return QName{a.Value, local}, true
			}
		}
	}
	return QName{"", local}, prefix == ""
}

func occurs(el *etree.Element) (int, int, error) {
	min, max := 1, 1
	if v := el.SelectAttrValue("minOccurs", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<20 {
			return 0, 0, fmt.Errorf("%w: minOccurs %q", ErrSchema, v)
		}
		min = n
	}
	if v := el.SelectAttrValue("maxOccurs", ""); v == "unbounded" {
		max = -1
	} else if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<20 {
			return 0, 0, fmt.Errorf("%w: maxOccurs %q", ErrSchema, v)
		}
		max = n
	}
	if max != -1 && max < min {
		return 0, 0, fmt.Errorf("%w: maxOccurs below minOccurs", ErrSchema)
	}
	return min, max, nil
}

// checkAttrs refuses attributes of a schema component outside allowed.
func checkAttrs(el *etree.Element, allowed ...string) error {
	for _, a := range el.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		if a.Space != "" {
			continue // foreign attributes (documentation tooling) carry no constraint
		}
		ok := false
		for _, k := range allowed {
			ok = ok || a.Key == k
		}
		if !ok {
			return unsupported(el, "xsd:"+el.Tag+"/@"+a.Key)
		}
	}
	return nil
}

func (c *compiler) element(el *etree.Element, global bool) (*elemDecl, error) {
	allowed := []string{"name", "type", "id"}
	if !global {
		allowed = append(allowed, "minOccurs", "maxOccurs", "ref", "form")
	}
	if err := checkAttrs(el, allowed...); err != nil {
		return nil, err
	}
	min, max, err := occurs(el)
	if err != nil {
		return nil, err
	}
	d := &elemDecl{min: min, max: max}
	if ref := el.SelectAttrValue("ref", ""); ref != "" {
		q, err := resolveQName(el, ref)
		if err != nil {
			return nil, err
		}
		d.name = q
		c.s.pending = append(c.s.pending, func() error {
			g, ok := c.s.elements[q]
			if !ok {
				return fmt.Errorf("%w: element ref %s not declared", ErrSchema, q)
			}
			d.typ = g.typ
			return nil
		})
		return d, nil
	}
	name := el.SelectAttrValue("name", "")
	if name == "" {
		return nil, fmt.Errorf("%w: element without name or ref", ErrSchema)
	}
	ns := ""
	switch form := el.SelectAttrValue("form", ""); {
	case global, form == "qualified", form == "" && c.qualified:
		ns = c.tns
	}
	d.name = QName{ns, name}
	var inline []*etree.Element
	for _, ch := range el.ChildElements() {
		if ch.NamespaceURI() == NS && ch.Tag == "annotation" {
			continue
		}
		inline = append(inline, ch)
	}
	tn := el.SelectAttrValue("type", "")
	switch {
	case tn != "" && len(inline) > 0:
		return nil, fmt.Errorf("%w: element %s has both type= and an inline type", ErrSchema, name)
	case len(inline) > 1:
		return nil, unsupported(inline[1], "")
	case len(inline) == 1 && inline[0].NamespaceURI() == NS && inline[0].Tag == "complexType":
		d.typ, err = c.complexType(inline[0])
	case len(inline) == 1 && inline[0].NamespaceURI() == NS && inline[0].Tag == "simpleType":
		d.typ, err = c.simpleType(inline[0])
	case len(inline) == 1:
		err = unsupported(inline[0], "")
	case tn != "":
		q, err := resolveQName(el, tn)
		if err != nil {
			return nil, err
		}
		d.typeName = &q
		c.s.pending = append(c.s.pending, func() error {
			t, err := c.s.lookupType(q)
			d.typ = t
			return err
		})
	default:
		return nil, unsupported(el, "xsd:element without a type (anyType)")
	}
	return d, err
}

func (s *Schema) lookupType(q QName) (any, error) {
	if q.Space == NS {
		if _, ok := builtins[q.Local]; ok {
			return &simpleType{base: q.Local}, nil
		}
		return nil, fmt.Errorf("%w: built-in type xs:%s", ErrUnsupported, q.Local)
	}
	t, ok := s.types[q]
	if !ok {
		return nil, fmt.Errorf("%w: type %s not declared", ErrSchema, q)
	}
	return t, nil
}

func (c *compiler) complexType(el *etree.Element) (*complexType, error) {
	if err := checkAttrs(el, "name", "id"); err != nil {
		return nil, err
	}
	t := &complexType{}
	for _, ch := range el.ChildElements() {
		if ch.NamespaceURI() != NS {
			return nil, unsupported(ch, "")
		}
		switch ch.Tag {
		case "annotation":
		case "sequence", "choice":
			if t.content != nil || len(t.attrs) > 0 {
				return nil, fmt.Errorf("%w: complexType content out of order", ErrSchema)
			}
			p, err := c.group(ch)
			if err != nil {
				return nil, err
			}
			t.content = p
		case "attribute":
			a, err := c.attribute(ch)
			if err != nil {
				return nil, err
			}
			t.attrs = append(t.attrs, a)
		default:
			return nil, unsupported(ch, "")
		}
	}
	return t, nil
}

func (c *compiler) group(el *etree.Element) (*particle, error) {
	if err := checkAttrs(el, "minOccurs", "maxOccurs", "id"); err != nil {
		return nil, err
	}
	min, max, err := occurs(el)
	if err != nil {
		return nil, err
	}
	p := &particle{kind: el.Tag, min: min, max: max}
	for _, ch := range el.ChildElements() {
		if ch.NamespaceURI() != NS {
			return nil, unsupported(ch, "")
		}
		switch ch.Tag {
		case "annotation":
		case "element":
			d, err := c.element(ch, false)
			if err != nil {
				return nil, err
			}
			p.children = append(p.children, &particle{kind: "element", elem: d, min: d.min, max: d.max})
		case "sequence", "choice":
			g, err := c.group(ch)
			if err != nil {
				return nil, err
			}
			p.children = append(p.children, g)
		default:
			return nil, unsupported(ch, "")
		}
	}
	return p, nil
}

func (c *compiler) attribute(el *etree.Element) (*attrDecl, error) {
	if err := checkAttrs(el, "name", "type", "use", "id", "form"); err != nil {
		return nil, err
	}
	name := el.SelectAttrValue("name", "")
	if name == "" {
		return nil, unsupported(el, "xsd:attribute without name (ref)")
	}
	ns := ""
	if f := el.SelectAttrValue("form", ""); f == "qualified" || (f == "" && c.attrQualified) {
		ns = c.tns
	}
	a := &attrDecl{name: QName{ns, name}}
	switch use := el.SelectAttrValue("use", "optional"); use {
	case "optional":
	case "required":
		a.required = true
	default:
		return nil, unsupported(el, "xsd:attribute/@use="+use)
	}
	var inline *etree.Element
	for _, ch := range el.ChildElements() {
		if ch.NamespaceURI() == NS && ch.Tag == "simpleType" {
			inline = ch
		} else if !(ch.NamespaceURI() == NS && ch.Tag == "annotation") {
			return nil, unsupported(ch, "")
		}
	}
	if inline != nil {
		t, err := c.simpleType(inline)
		a.typ = t
		return a, err
	}
	tn := el.SelectAttrValue("type", "")
	if tn == "" {
		return nil, unsupported(el, "xsd:attribute without a type (anySimpleType)")
	}
	q, err := resolveQName(el, tn)
	if err != nil {
		return nil, err
	}
	c.s.pending = append(c.s.pending, func() error {
		t, err := c.s.lookupType(q)
		if err != nil {
			return err
		}
		st, ok := t.(*simpleType)
		if !ok {
			return fmt.Errorf("%w: attribute %s has complex type %s", ErrSchema, name, q)
		}
		a.typ = st
		return nil
	})
	return a, nil
}

var facetNames = map[string]bool{"length": true, "minLength": true, "maxLength": true, "pattern": true,
	"enumeration": true, "minInclusive": true, "maxInclusive": true, "minExclusive": true, "maxExclusive": true,
	"totalDigits": true, "fractionDigits": true}

func (c *compiler) simpleType(el *etree.Element) (*simpleType, error) {
	if err := checkAttrs(el, "name", "id"); err != nil {
		return nil, err
	}
	var r *etree.Element
	for _, ch := range el.ChildElements() {
		switch {
		case ch.NamespaceURI() == NS && ch.Tag == "annotation":
		case ch.NamespaceURI() == NS && ch.Tag == "restriction" && r == nil:
			r = ch
		default:
			return nil, unsupported(ch, "")
		}
	}
	if r == nil {
		return nil, fmt.Errorf("%w: simpleType without restriction", ErrSchema)
	}
	if err := checkAttrs(r, "base", "id"); err != nil {
		return nil, err
	}
	t := &simpleType{}
	bq, err := resolveQName(r, r.SelectAttrValue("base", ""))
	if err != nil {
		return nil, err
	}
	if bq.Space == NS {
		if _, ok := builtins[bq.Local]; !ok {
			return nil, fmt.Errorf("%w: built-in type xs:%s", ErrUnsupported, bq.Local)
		}
		t.base = bq.Local
	} else {
		t.parentName = &bq
		c.s.pending = append(c.s.pending, func() error {
			p, err := c.s.lookupType(bq)
			if err != nil {
				return err
			}
			st, ok := p.(*simpleType)
			if !ok {
				return fmt.Errorf("%w: simpleType restricts complex type %s", ErrSchema, bq)
			}
			t.parent = st
			return nil
		})
	}
	for _, f := range r.ChildElements() {
		if f.NamespaceURI() != NS || !facetNames[f.Tag] {
			if f.NamespaceURI() == NS && f.Tag == "annotation" {
				continue
			}
			return nil, unsupported(f, "")
		}
		if err := checkAttrs(f, "value", "id"); err != nil {
			return nil, err
		}
		v := f.SelectAttrValue("value", "")
		intv := func() (*int, error) {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: %s %q", ErrSchema, f.Tag, v)
			}
			return &n, nil
		}
		ratv := func() (*big.Rat, error) {
			r, ok := new(big.Rat).SetString(v)
			if !ok || !decimalRE.MatchString(v) {
				return nil, unsupported(f, "xsd:"+f.Tag+" on a non-decimal value")
			}
			return r, nil
		}
		switch f.Tag {
		case "length":
			t.length, err = intv()
		case "minLength":
			t.minLen, err = intv()
		case "maxLength":
			t.maxLen, err = intv()
		case "totalDigits":
			t.totalDig, err = intv()
		case "fractionDigits":
			t.fracDig, err = intv()
		case "enumeration":
			t.enum = append(t.enum, v)
		case "pattern":
			var re *regexp.Regexp
			re, err = compilePattern(v)
			t.patterns = append(t.patterns, re)
		case "minInclusive":
			t.minIncl, err = ratv()
		case "maxInclusive":
			t.maxIncl, err = ratv()
		case "minExclusive":
			t.minExcl, err = ratv()
		case "maxExclusive":
			t.maxExcl, err = ratv()
		}
		if err != nil {
			return nil, err
		}
	}
	if t.base != "" && !numeric(t.base) && (t.minIncl != nil || t.maxIncl != nil || t.minExcl != nil || t.maxExcl != nil) {
		return nil, unsupported(r, "range facets on xs:"+t.base)
	}
	return t, nil
}

// compilePattern translates an XSD regular expression (implicitly anchored)
// to RE2, refusing what RE2 would read differently: \i \c \I \C, character
// class subtraction, \p{Is...} blocks, \w \s, and anything RE2 does not
// compile. Outside a class, ^ and $ are literals in XSD (escaped here) and
// '.' excludes \r as well as \n.
func compilePattern(p string) (*regexp.Regexp, error) {
	for _, bad := range []string{`\i`, `\I`, `\c`, `\C`, `\p{Is`, `\P{Is`, `\w`, `\W`, `\s`, `\S`, `(?`, `\b`, `\B`, `\A`, `\z`, `\Q`} {
		if strings.Contains(p, bad) {
			return nil, fmt.Errorf("%w: pattern construct %q", ErrUnsupported, bad)
		}
	}
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			switch p[i+1] {
			case 'd':
				b.WriteString(`\p{Nd}`)
			case 'D':
				b.WriteString(`\P{Nd}`)
			default:
				b.WriteByte(c)
				b.WriteByte(p[i+1])
			}
			i++
		case inClass && c == '-' && i+1 < len(p) && p[i+1] == '[':
			return nil, fmt.Errorf("%w: pattern construct \"-[\" (class subtraction)", ErrUnsupported)
		case inClass && c == ']':
			inClass = false
			b.WriteByte(c)
		case inClass && c == '[':
			return nil, fmt.Errorf("%w: pattern construct nested class", ErrUnsupported)
		case !inClass && c == '[':
			inClass = true
			b.WriteByte(c)
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
		case !inClass && (c == '^' || c == '$'):
			b.WriteByte('\\')
			b.WriteByte(c)
		case !inClass && c == '.':
			b.WriteString(`[^\n\r]`)
		default:
			b.WriteByte(c)
		}
	}
	re, err := regexp.Compile(`^(?:` + b.String() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%w: pattern %q: %v", ErrUnsupported, p, err)
	}
	return re, nil
}

var decimalRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)

// builtins are the supported built-in simple types, each with its lexical
// check (after whitespace collapse where the type collapses).
var builtins = map[string]func(string) bool{
	"string":             func(string) bool { return true },
	"normalizedString":   func(s string) bool { return !strings.ContainsAny(s, "\t\n\r") },
	"token":              func(s string) bool { return true },
	"anyURI":             func(string) bool { return true },
	"boolean":            func(s string) bool { return s == "true" || s == "false" || s == "1" || s == "0" },
	"decimal":            func(s string) bool { return decimalRE.MatchString(s) },
	"integer":            isInteger(nil, nil),
	"long":               isInteger(big.NewInt(-1<<63), big.NewInt(1<<63-1)),
	"int":                isInteger(big.NewInt(-1<<31), big.NewInt(1<<31-1)),
	"short":              isInteger(big.NewInt(-1<<15), big.NewInt(1<<15-1)),
	"byte":               isInteger(big.NewInt(-1<<7), big.NewInt(1<<7-1)),
	"nonNegativeInteger": isInteger(big.NewInt(0), nil),
	"positiveInteger":    isInteger(big.NewInt(1), nil),
	"nonPositiveInteger": isInteger(nil, big.NewInt(0)),
	"negativeInteger":    isInteger(nil, big.NewInt(-1)),
	"unsignedLong":       isInteger(big.NewInt(0), new(big.Int).SetUint64(1<<64-1)),
	"unsignedInt":        isInteger(big.NewInt(0), big.NewInt(1<<32-1)),
	"unsignedShort":      isInteger(big.NewInt(0), big.NewInt(1<<16-1)),
	"unsignedByte":       isInteger(big.NewInt(0), big.NewInt(1<<8-1)),
	"date":               isTime(`^-?[0-9]{4,}-[0-9]{2}-[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?$`, "2006-01-02"),
	"dateTime":           isTime(`^-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$`, "2006-01-02T15:04:05"),
}

func numeric(base string) bool {
	return base == "decimal" || strings.HasSuffix(strings.ToLower(base), "integer") || base == "long" || base == "int" ||
		base == "short" || base == "byte" || strings.HasPrefix(base, "unsigned")
}

var integerRE = regexp.MustCompile(`^[+-]?[0-9]+$`)

func isInteger(min, max *big.Int) func(string) bool {
	return func(s string) bool {
		if !integerRE.MatchString(s) {
			return false
		}
		n, ok := new(big.Int).SetString(strings.TrimPrefix(s, "+"), 10)
		return ok && (min == nil || n.Cmp(min) >= 0) && (max == nil || n.Cmp(max) <= 0)
	}
}

// isTime checks the lexical form, then that the date part exists (no
// February 30th); years outside 0001-9999 are refused rather than guessed.
func isTime(lex, layout string) func(string) bool {
	re := regexp.MustCompile(lex)
	return func(s string) bool {
		if !re.MatchString(s) || strings.HasPrefix(s, "-") || len(s) < len(layout) || s[4] != '-' {
			return false
		}
		if _, err := time.Parse(layout, s[:len(layout)]); err != nil {
			// 24:00:00 is valid XSD; refuse it rather than normalize.
			return false
		}
		return s[:4] != "0000"
	}
}

// collapse applies XSD whiteSpace="collapse".
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

func (t *simpleType) root() string {
	for t.parent != nil {
		t = t.parent
	}
	return t.base
}

// check validates a lexical value against t and its ancestors.
func (t *simpleType) check(raw string) error {
	base := t.root()
	v := raw
	switch base {
	case "string":
	case "normalizedString":
		v = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(raw)
	default:
		// Stricter than XSD's whiteSpace="collapse": a backend that compares
		// or parses the raw text could read " EUR " or " 7 " differently.
		if v = collapse(raw); v != raw {
			return fmt.Errorf("%w: whitespace around or inside an xs:%s value", ErrInvalid, base)
		}
	}
	if !builtins[base](v) {
		return fmt.Errorf("%w: %.40q is not a valid xs:%s", ErrInvalid, raw, base)
	}
	for c := t; c != nil; c = c.parent {
		if err := c.facets(v, base); err != nil {
			return err
		}
	}
	return nil
}

func (t *simpleType) facets(v, base string) error {
	n := utf8.RuneCountInString(v)
	switch {
	case t.length != nil && n != *t.length, t.minLen != nil && n < *t.minLen, t.maxLen != nil && n > *t.maxLen:
		return fmt.Errorf("%w: length %d out of bounds", ErrInvalid, n)
	}
	if len(t.enum) > 0 {
		ok := false
		for _, e := range t.enum {
			ok = ok || e == v
		}
		if !ok {
			return fmt.Errorf("%w: value not in the enumeration", ErrInvalid)
		}
	}
	for _, re := range t.patterns {
		if !re.MatchString(v) {
			return fmt.Errorf("%w: value does not match the pattern", ErrInvalid)
		}
	}
	if t.minIncl != nil || t.maxIncl != nil || t.minExcl != nil || t.maxExcl != nil || t.totalDig != nil || t.fracDig != nil {
		if !numeric(base) {
			return fmt.Errorf("%w: numeric facet on xs:%s", ErrInvalid, base)
		}
		r, ok := new(big.Rat).SetString(strings.TrimPrefix(v, "+"))
		if !ok {
			return fmt.Errorf("%w: not a number", ErrInvalid)
		}
		switch {
		case t.minIncl != nil && r.Cmp(t.minIncl) < 0, t.maxIncl != nil && r.Cmp(t.maxIncl) > 0,
			t.minExcl != nil && r.Cmp(t.minExcl) <= 0, t.maxExcl != nil && r.Cmp(t.maxExcl) >= 0:
			return fmt.Errorf("%w: value out of range", ErrInvalid)
		}
		intPart, frac, _ := strings.Cut(strings.TrimLeft(v, "+-"), ".")
		intPart, frac = strings.TrimLeft(intPart, "0"), strings.TrimRight(frac, "0")
		if t.fracDig != nil && len(frac) > *t.fracDig || t.totalDig != nil && len(intPart)+len(frac) > *t.totalDig {
			return fmt.Errorf("%w: too many digits", ErrInvalid)
		}
	}
	return nil
}

// Validate checks el, which must be a global element of the schema.
func (s *Schema) Validate(el *etree.Element) error {
	q := QName{el.NamespaceURI(), el.Tag}
	d, ok := s.elements[q]
	if !ok {
		return fmt.Errorf("%w: no global element %s", ErrInvalid, q)
	}
	return s.validate(el, d, q.Local)
}

func (s *Schema) validate(el *etree.Element, d *elemDecl, path string) error {
	var kids []*etree.Element
	text := false
	var sb strings.Builder
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			kids = append(kids, t)
		case *etree.CharData:
			sb.WriteString(t.Data)
			if strings.TrimSpace(t.Data) != "" {
				text = true
			}
		}
	}
	if len(kids) > maxChildren {
		return fmt.Errorf("%w: %s: more than %d children", ErrInvalid, path, maxChildren)
	}
	// xsi:type or xsi:nil would change which type applies: not in the subset.
	for _, a := range el.Attr {
		if a.Space != "" && a.Space != "xmlns" && attrNamespace(el, a) == nsXSI {
			return fmt.Errorf("%w: %s: xsi:%s", ErrInvalid, path, a.Key)
		}
	}
	switch t := d.typ.(type) {
	case *simpleType:
		if len(kids) > 0 {
			return fmt.Errorf("%w: %s: element in simple content", ErrInvalid, path)
		}
		if err := checkNoAttrs(el, nil); err != nil {
			return fmt.Errorf("%w: %s", err, path)
		}
		if err := t.check(sb.String()); err != nil {
			return fmt.Errorf("%w (at %s)", err, path)
		}
		return nil
	case *complexType:
		if text {
			return fmt.Errorf("%w: %s: text in element-only content", ErrInvalid, path)
		}
		if err := checkNoAttrs(el, t.attrs); err != nil {
			return fmt.Errorf("%w (at %s)", err, path)
		}
		if t.content == nil {
			if len(kids) > 0 {
				return fmt.Errorf("%w: %s: content in an empty element", ErrInvalid, path)
			}
			return nil
		}
		ends := match(t.content, kids, 0, nil)
		var assign []*elemDecl
		for _, e := range ends {
			if e.pos == len(kids) {
				for c := e.decls; c != nil; c = c.next {
					assign = append(assign, c.d)
				}
				slices.Reverse(assign)
				break
			}
		}
		if len(assign) != len(kids) || !hasEnd(ends, len(kids)) {
			return fmt.Errorf("%w: %s: children do not match the content model", ErrInvalid, path)
		}
		for i, k := range kids {
			if err := s.validate(k, assign[i], path+"/"+k.Tag); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: %s: unresolved type", ErrSchema, path)
}

func hasEnd(ends []state, n int) bool {
	for _, e := range ends {
		if e.pos == n {
			return true
		}
	}
	return false
}

func attrNamespace(el *etree.Element, a etree.Attr) string {
	q, err := resolveQName(el, a.Space+":x")
	if err != nil {
		return ""
	}
	return q.Space
}

// checkNoAttrs checks el's attributes against decls: every one declared
// and valid, every required one present. Namespace declarations pass.
func checkNoAttrs(el *etree.Element, decls []*attrDecl) error {
	seen := map[QName]bool{}
	for _, a := range el.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		q := QName{"", a.Key}
		if a.Space != "" {
			q.Space = attrNamespace(el, a)
		}
		var d *attrDecl
		for _, c := range decls {
			if c.name == q {
				d = c
			}
		}
		if d == nil {
			return fmt.Errorf("%w: undeclared attribute %s", ErrInvalid, q)
		}
		if err := d.typ.check(a.Value); err != nil {
			return err
		}
		seen[q] = true
	}
	for _, d := range decls {
		if d.required && !seen[d.name] {
			return fmt.Errorf("%w: missing attribute %s", ErrInvalid, d.name)
		}
	}
	return nil
}

// state is a position reached in the children and the declarations the
// children before it were matched to.
type state struct {
	pos   int
	decls *cons
}

// cons is a persistent list of matched declarations, newest first: a
// match appends in O(1) however many children came before.
type cons struct {
	d    *elemDecl
	next *cons
}

// match returns every state reachable by matching p once-or-as-its-occurs
// allow, starting at pos.
func match(p *particle, kids []*etree.Element, pos int, decls *cons) []state {
	start := []state{{pos, decls}}
	var out []state
	cur := start
	if p.min == 0 {
		out = append(out, start...)
	}
	for n := 1; p.max == -1 || n <= p.max; n++ {
		var next []state
		for _, s := range cur {
			next = append(next, matchOnce(p, kids, s)...)
		}
		next = dedupe(next)
		// A repeat that consumes nothing ends the loop.
		progress := false
		for _, s := range next {
			for _, c := range cur {
				if s.pos > c.pos {
					progress = true
				}
			}
		}
		if len(next) == 0 {
			break
		}
		if n >= p.min {
			out = append(out, next...)
		}
		if !progress {
			break
		}
		cur = next
	}
	return dedupe(out)
}

func matchOnce(p *particle, kids []*etree.Element, s state) []state {
	switch p.kind {
	case "element":
		if s.pos < len(kids) {
			k := kids[s.pos]
			if k.Tag == p.elem.name.Local && k.NamespaceURI() == p.elem.name.Space {
				return []state{{s.pos + 1, &cons{p.elem, s.decls}}}
			}
		}
		return nil
	case "sequence":
		cur := []state{s}
		for _, c := range p.children {
			var next []state
			for _, st := range cur {
				next = append(next, match(c, kids, st.pos, st.decls)...)
			}
			cur = dedupe(next)
			if len(cur) == 0 {
				return nil
			}
		}
		return cur
	case "choice":
		var out []state
		for _, c := range p.children {
			out = append(out, match(c, kids, s.pos, s.decls)...)
		}
		return dedupe(out)
	}
	return nil
}

// dedupe keeps one state per position (the first: any assignment that
// reaches a position validates the same children the same way only when
// the schema is deterministic, which XSD's Unique Particle Attribution
// requires).
func dedupe(in []state) []state {
	seen := map[int]bool{}
	out := in[:0:0]
	for _, s := range in {
		if !seen[s.pos] {
			seen[s.pos] = true
			out = append(out, s)
		}
	}
	return out // at most one state per position: len(kids)+1
}
