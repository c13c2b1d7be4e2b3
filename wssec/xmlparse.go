package wssec

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// parseXMLString is a strict, single-pass XML 1.0 parser that builds the
// same etree tree as etree's encoding/xml-based reader (prefixes kept as
// written, no namespace resolution, CDATA as plain CharData, white-space
// CharData flagged) several times faster, and refuses what encoding/xml lets
// through: DTDs, processing instructions, undefined entities, references to
// illegal characters, misplaced declarations, non-QName names, and what
// Namespaces in XML 1.0 forbids (ErrNamespace), anywhere in the document:
// an undeclared prefix, xmlns:p="" (XML 1.1 only), the xml and xmlns prefixes
// or namespaces bound otherwise than the specification fixes, an element
// named with the xmlns prefix, and two attributes with the same expanded name
// (§6.3). A backend that resolves names differently from wssec must not find
// a different element than the one verified. Depth, element and attribute
// limits are enforced while reading, so a hostile message is refused before
// its tree exists. Errors wrap ErrNotXML, ErrNamespace, ErrDTD, ErrTooDeep,
// ErrTooManyElements or ErrUnsupportedEncoding.
//
// Unlike encoding/xml it applies XML 1.0 §3.3.3 to attribute values (literal
// tab, newline and carriage return become a space; characters from references
// are kept) and §2.11 to comments, as libxml2 and Java do, so that what we
// canonicalize is what the signer canonicalized.
//
// The tree keeps slices of s, and takes its nodes from a. Zero limits take
// the defaults.
func parseXMLString(s string, limits Limits, a *arena) (*etree.Document, error) {
	return parseXMLFragment(s, limits, a, nil)
}

// parseXMLFragment is parseXMLString for XML that will stand in place of
// scope's children, such as decrypted content: a prefix s does not declare
// resolves against the declarations in scope on scope and its ancestors, as
// it will once inserted. Every other namespace rule applies to s as it does
// to a document. A nil scope is parseXMLString.
func parseXMLFragment(s string, limits Limits, a *arena, scope *etree.Element) (*etree.Document, error) {
	p := xmlParser{s: s, limits: limits.withDefaults(), nodes: a}
	a.size(p.s)
	sc := xmlScratchPool.Get().(*xmlScratch)
	p.pending, p.others, p.stack, p.buf, p.ns, p.nsIndex = sc.pending, sc.others[:0], sc.stack[:0], sc.buf[:0], sc.ns[:0], sc.nsIndex
	if scope != nil {
		p.seed(scope)
	}
	doc, err := p.parse()
	sc.recycle(&p)
	return doc, err
}

// xmlScratch is a parser's working memory, which no tree keeps: pooled, so
// that a parse allocates only the tree and the copy of the message.
type xmlScratch struct {
	pending tokenQueue
	others  []etree.Token
	stack   []openElement
	buf     []byte
	ns      []nsDecl
	nsIndex map[string]int32
}

var xmlScratchPool = sync.Pool{New: func() any {
	return &xmlScratch{
		stack: make([]openElement, 0, 16),
		buf:   make([]byte, 0, 256),
		ns:    make([]nsDecl, 0, 16),
	}
}}

// maxScratch bounds what the pool keeps of a parser's scratch slices, so
// one huge message does not pin its high-water mark.
const maxScratch = 4096

// recycle takes p's scratch slices back, dropping their references into
// the tree and the message, and returns sc to the pool.
func (sc *xmlScratch) recycle(p *xmlParser) {
	if cap(p.stack) > maxScratch || cap(p.buf) > maxScratch || cap(p.ns) > maxScratch || len(p.nsIndex) > maxScratch || cap(p.others) > maxScratch {
		return // let the GC have it; the pool makes a fresh one
	}
	p.pending.reset(maxScratch / pendingBlock)
	clear(p.others[:cap(p.others)])
	clear(p.stack[:cap(p.stack)])
	clear(p.ns[:cap(p.ns)]) // prefixes and namespace names are slices of the message
	clear(p.nsIndex)
	sc.pending, sc.others, sc.stack, sc.buf, sc.ns, sc.nsIndex = p.pending, p.others[:0], p.stack[:0], p.buf[:0], p.ns[:0], p.nsIndex
	p.pending, p.others, p.stack, p.buf, p.ns, p.nsIndex = tokenQueue{}, nil, nil, nil, nil, nil
	xmlScratchPool.Put(sc)
}

type xmlParser struct {
	s      string // the message, copied once; names and most values are slices of it
	limits Limits

	stack    []openElement
	pending  tokenQueue    // children read but not yet handed to their parent
	others   []etree.Token // the tokens pending names by index (handleOther)
	buf      []byte        // scratch for values that need rewriting
	elements int
	rootSeen bool

	ns      []nsDecl         // prefix declarations in scope, innermost last
	nsIndex map[string]int32 // prefix -> its innermost binding in ns, once ns grew long

	nodes *arena // where the tree's nodes come from
}

type openElement struct {
	el                 *etree.Element
	nameStart, nameEnd int // its name as written, to match the end tag byte for byte
	first              int // index in pending of its first child
	nsMark             int // len(ns) before its declarations
}

func (p *xmlParser) errorf(sentinel error, i int, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", sentinel, fmt.Sprintf(format, args...), i)
}

func (p *xmlParser) parse() (*etree.Document, error) {
	s := p.s
	i := 0
	switch {
	case strings.HasPrefix(s, "\xef\xbb\xbf"):
		i = 3
	case strings.HasPrefix(s, "\xfe\xff"), strings.HasPrefix(s, "\xff\xfe"):
		return nil, fmt.Errorf("%w: UTF-16", ErrUnsupportedEncoding)
	}
	if strings.HasPrefix(s[i:], "<?xml") && len(s) > i+5 && (isSpace(s[i+5]) || s[i+5] == '?') {
		var err error
		if i, err = p.xmlDecl(i); err != nil {
			return nil, err
		}
	}
	for i < len(s) {
		var err error
		if s[i] != '<' {
			if len(p.stack) == 0 {
				i, err = p.misc(i)
			} else {
				i, err = p.content(i)
			}
		} else if i+1 >= len(s) {
			return nil, p.errorf(ErrNotXML, i, "unexpected end of input")
		} else {
			switch s[i+1] {
			case '/':
				i, err = p.endTag(i)
			case '!':
				i, err = p.bang(i)
			case '?':
				err = p.procInst(i)
			default:
				i, err = p.startTag(i)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if len(p.stack) != 0 {
		return nil, p.errorf(ErrNotXML, len(s), "unclosed element")
	}
	if !p.rootSeen {
		return nil, p.errorf(ErrNotXML, len(s), "no root element")
	}
	doc := etree.NewDocument()
	p.adopt(&doc.Element, 0)
	return doc, nil
}

// xmlDecl reads the XML declaration at s[i:] ("<?xml" followed by a space or
// '?'), strictly: version 1.0, an optional UTF-8 or ASCII encoding and an
// optional standalone, in that order.
func (p *xmlParser) xmlDecl(i int) (int, error) {
	s := p.s
	start := i + len("<?xml")
	end := strings.Index(s[start:], "?>")
	if end < 0 {
		return 0, p.errorf(ErrNotXML, i, "unterminated XML declaration")
	}
	end += start
	decl := s[start:end]
	name, value, rest, ok := pseudoAttr(decl)
	if !ok || name != "version" {
		return 0, p.errorf(ErrNotXML, i, "XML declaration without version")
	}
	if value != "1.0" {
		return 0, p.errorf(ErrNotXML, i, "XML version other than 1.0")
	}
	ascii := false
	if name, value, r, ok := pseudoAttr(rest); ok && name == "encoding" {
		if !isEncName(value) {
			return 0, p.errorf(ErrNotXML, i, "malformed encoding name")
		}
		switch strings.ToLower(value) {
		case "utf-8", "utf8":
		case "us-ascii", "ascii":
			ascii = true
		default:
			return 0, fmt.Errorf("%w: %q", ErrUnsupportedEncoding, value)
		}
		rest = r
	}
	if name, value, r, ok := pseudoAttr(rest); ok && name == "standalone" {
		if value != "yes" && value != "no" {
			return 0, p.errorf(ErrNotXML, i, "malformed standalone declaration")
		}
		rest = r
	}
	for k := 0; k < len(rest); k++ {
		if !isSpace(rest[k]) {
			return 0, p.errorf(ErrNotXML, i, "malformed XML declaration")
		}
	}
	if ascii {
		// A document that claims ASCII but is not would be read differently
		// by a backend that honours the declaration.
		for k := 0; k < len(s); k++ {
			if s[k] >= utf8.RuneSelf {
				return 0, p.errorf(ErrNotXML, k, "non-ASCII byte in a document declared ASCII")
			}
		}
	}
	// encoding/xml's ProcInst.Inst: the text after the target and its spaces.
	k := 0
	for k < len(decl) && isSpace(decl[k]) {
		k++
	}
	p.pushOther(&etree.ProcInst{Target: "xml", Inst: decl[k:]})
	return end + 2, nil
}

// pseudoAttr reads S name S? = S? quoted-value from the start of d.
func pseudoAttr(d string) (name, value, rest string, ok bool) {
	i := 0
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	if i == 0 {
		return "", "", d, false
	}
	n := i
	for i < len(d) && 'a' <= d[i] && d[i] <= 'z' {
		i++
	}
	name = d[n:i]
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	if name == "" || i >= len(d) || d[i] != '=' {
		return "", "", d, false
	}
	i++
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	if i >= len(d) || (d[i] != '"' && d[i] != '\'') {
		return "", "", d, false
	}
	q := d[i]
	i++
	j := strings.IndexByte(d[i:], q)
	if j < 0 {
		return "", "", d, false
	}
	return name, d[i : i+j], d[i+j+1:], true
}

// isEncName reports whether v matches EncName: [A-Za-z] ([A-Za-z0-9._] | '-')*.
func isEncName(v string) bool {
	if v == "" || !('a' <= v[0]|0x20 && v[0]|0x20 <= 'z') {
		return false
	}
	for i := 1; i < len(v); i++ {
		c := v[i]
		if !('a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// misc reads the white space between top-level markup; any other text there
// (including references) is refused.
func (p *xmlParser) misc(i int) (int, error) {
	s := p.s
	start := i
	cr := false
	for i < len(s) && s[i] != '<' {
		switch s[i] {
		case ' ', '\t', '\n':
		case '\r':
			cr = true
		default:
			return 0, p.errorf(ErrNotXML, i, "text outside the root element")
		}
		i++
	}
	text := s[start:i]
	if cr {
		text = string(p.normalizeEOL(text))
	}
	p.addText(text)
	return i, nil
}

// content reads character data inside an element, up to the next '<'.
func (p *xmlParser) content(i int) (int, error) {
	text, end, err := p.chars(i, 0)
	if err != nil {
		return 0, err
	}
	p.addText(text)
	return end, nil
}

// chars reads character data from s[i:] up to '<' (quote == 0) or up to the
// closing quote of an attribute value, resolving references, normalizing line
// ends and, in attribute values, white space (XML 1.0 §3.3.3). It returns the
// value and the index of the terminator.
func (p *xmlParser) chars(i int, quote byte) (string, int, error) {
	s := p.s
	table := &textPlain
	if quote != 0 {
		table = &attrPlain
	}
	start := i
	b := p.buf[:0]
	building := false
	begin := func() {
		if !building {
			b = append(b[:0], s[start:i]...)
			building = true
		}
	}
	for {
		run := i
		for i < len(s) && table[s[i]] {
			i++
		}
		if building {
			b = append(b, s[run:i]...)
		}
		if i >= len(s) {
			if quote != 0 {
				return "", 0, p.errorf(ErrNotXML, i, "unterminated attribute value")
			}
			break
		}
		c := s[i]
		if quote == 0 && c == '<' || quote != 0 && c == quote {
			break
		}
		switch {
		case c == '<':
			return "", 0, p.errorf(ErrNotXML, i, "'<' in an attribute value")
		case c == ']':
			if strings.HasPrefix(s[i:], "]]>") {
				return "", 0, p.errorf(ErrNotXML, i, "']]>' in text")
			}
			if building {
				b = append(b, c)
			}
			i++
		case c == '&':
			begin()
			r, n, err := p.reference(i)
			if err != nil {
				return "", 0, err
			}
			b = utf8.AppendRune(b, r)
			i += n
		case c == '\r':
			begin()
			if quote != 0 {
				b = append(b, ' ')
			} else {
				b = append(b, '\n')
			}
			i++
			if i < len(s) && s[i] == '\n' {
				i++
			}
		case c == '\t' || c == '\n': // only in attribute values: §3.3.3
			begin()
			b = append(b, ' ')
			i++
		case c == '"' || c == '\'': // the other quote
			if building {
				b = append(b, c)
			}
			i++
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
				return "", 0, p.errorf(ErrNotXML, i, "invalid UTF-8 or illegal character")
			}
			if building {
				b = append(b, s[i:i+n]...)
			}
			i += n
		default:
			return "", 0, p.errorf(ErrNotXML, i, "illegal character %#x", c)
		}
	}
	if !building {
		return s[start:i], i, nil
	}
	p.buf = b
	return string(b), i, nil
}

// reference decodes the entity or character reference at s[i] == '&' and
// returns the character and the length of the reference.
func (p *xmlParser) reference(i int) (rune, int, error) {
	s := p.s[i+1:]
	if strings.HasPrefix(s, "#") {
		j, base := 1, rune(10)
		if strings.HasPrefix(s[1:], "x") {
			j, base = 2, 16
		}
		digits := j
		var v rune
		for ; j < len(s); j++ {
			d := digitValue(s[j])
			if d >= base {
				break
			}
			if v <= utf8.MaxRune { // saturate: anything larger is refused below
				v = v*base + d
			}
		}
		if j == digits || j >= len(s) || s[j] != ';' {
			return 0, 0, p.errorf(ErrNotXML, i, "malformed character reference")
		}
		if !isXMLChar(v) {
			return 0, 0, p.errorf(ErrNotXML, i, "character reference to an illegal character")
		}
		return v, j + 2, nil
	}
	switch {
	case strings.HasPrefix(s, "lt;"):
		return '<', 4, nil
	case strings.HasPrefix(s, "gt;"):
		return '>', 4, nil
	case strings.HasPrefix(s, "amp;"):
		return '&', 5, nil
	case strings.HasPrefix(s, "apos;"):
		return '\'', 6, nil
	case strings.HasPrefix(s, "quot;"):
		return '"', 6, nil
	}
	return 0, 0, p.errorf(ErrNotXML, i, "undefined entity or bare '&'")
}

func digitValue(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return 99
}

// isXMLChar reports whether r is a Char of XML 1.0.
func isXMLChar(r rune) bool {
	switch {
	case r < 0x20:
		return r == 0x9 || r == 0xA || r == 0xD
	case r <= 0xD7FF:
		return true
	case r < 0xE000:
		return false
	case r <= 0xFFFD:
		return true
	}
	return 0x10000 <= r && r <= utf8.MaxRune
}

// segment validates the characters of a comment or CDATA section s[a:b] and
// normalizes its line ends.
func (p *xmlParser) segment(a, b int) (string, error) {
	s := p.s[:b]
	cr := false
	for i := a; i < b; {
		c := s[i]
		if segmentPlain[c] {
			i++
			continue
		}
		switch {
		case c == '\r':
			cr = true
			i++
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
				return "", p.errorf(ErrNotXML, i, "invalid UTF-8 or illegal character")
			}
			i += n
		default:
			return "", p.errorf(ErrNotXML, i, "illegal character %#x", c)
		}
	}
	if cr {
		return string(p.normalizeEOL(s[a:b])), nil
	}
	return s[a:b], nil
}

// normalizeEOL rewrites \r\n and lone \r to \n (XML 1.0 §2.11) into p.buf.
func (p *xmlParser) normalizeEOL(t string) []byte {
	b := p.buf[:0]
	for i := 0; i < len(t); i++ {
		if t[i] != '\r' {
			b = append(b, t[i])
			continue
		}
		b = append(b, '\n')
		if i+1 < len(t) && t[i+1] == '\n' {
			i++
		}
	}
	p.buf = b
	return b
}

// qname reads a QName (NCName or NCName:NCName) at s[i:] and returns its end
// and the index of its colon, or -1. A Name of XML 1.0 that is not a QName
// (":a", "a:", "a:b:c", "a:1") is well-formed XML but not namespace-well-
// formed: ErrNamespace, like the other violations of Namespaces in XML.
func (p *xmlParser) qname(i int) (end, colon int, err error) {
	if end, colon, ok := p.asciiQName(i); ok {
		return end, colon, nil
	}
	s := p.s
	start := i
	colon = -1
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if !nameChar[c] {
				break
			}
			if c == ':' {
				if colon >= 0 || i == start {
					return 0, 0, p.errorf(ErrNamespace, i, "name with an empty prefix or more than one colon")
				}
				colon = i
			} else if i == start && !nameStartChar[c] {
				return 0, 0, p.errorf(ErrNotXML, i, "invalid name start character")
			} else if i == colon+1 && !nameStartChar[c] {
				return 0, 0, p.errorf(ErrNamespace, i, "local name does not start with a name start character")
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return 0, 0, p.errorf(ErrNotXML, i, "invalid UTF-8")
		}
		if !isNameRune(r, i == start || i == colon+1) {
			if i == colon+1 && isNameRune(r, false) {
				return 0, 0, p.errorf(ErrNamespace, i, "local name does not start with a name start character")
			}
			return 0, 0, p.errorf(ErrNotXML, i, "invalid name character")
		}
		i += n
	}
	if i == start {
		return 0, 0, p.errorf(ErrNotXML, i, "expected a name")
	}
	if colon == i-1 {
		return 0, 0, p.errorf(ErrNamespace, i, "name with an empty local part")
	}
	return i, colon, nil
}

// asciiQName reads the usual QName, ASCII NCName or NCName:NCName ended by
// an ASCII byte that cannot continue it, with one table lookup per byte.
// Anything else (not ok) is left to qname's general loop, which reads it
// from the start again and reports its errors.
func (p *xmlParser) asciiQName(i int) (end, colon int, ok bool) {
	s := p.s
	colon = -1
	if i >= len(s) || !nameStartChar[s[i]] {
		return 0, 0, false
	}
	i++
	for i < len(s) && ncNameChar[s[i]] {
		i++
	}
	if i < len(s) && s[i] == ':' {
		colon = i
		i++
		if i >= len(s) || !nameStartChar[s[i]] {
			return 0, 0, false
		}
		i++
		for i < len(s) && ncNameChar[s[i]] {
			i++
		}
	}
	if i >= len(s) || s[i] >= utf8.RuneSelf || s[i] == ':' {
		return 0, 0, false
	}
	return i, colon, true
}

// isNameRune reports whether a non-ASCII r is a NameStartChar (first) or a
// NameChar of XML 1.0 fifth edition.
func isNameRune(r rune, first bool) bool {
	switch {
	case 0xC0 <= r && r <= 0xD6, 0xD8 <= r && r <= 0xF6, 0xF8 <= r && r <= 0x2FF,
		0x370 <= r && r <= 0x37D, 0x37F <= r && r <= 0x1FFF, 0x200C <= r && r <= 0x200D,
		0x2070 <= r && r <= 0x218F, 0x2C00 <= r && r <= 0x2FEF, 0x3001 <= r && r <= 0xD7FF,
		0xF900 <= r && r <= 0xFDCF, 0xFDF0 <= r && r <= 0xFFFD, 0x10000 <= r && r <= 0xEFFFF:
		return true
	case first:
		return false
	}
	return r == 0xB7 || 0x300 <= r && r <= 0x36F || 0x203F <= r && r <= 0x2040
}

func (p *xmlParser) startTag(i int) (int, error) {
	s := p.s
	if len(p.stack) == 0 && p.rootSeen {
		return 0, p.errorf(ErrNotXML, i, "more than one root element")
	}
	if len(p.stack) >= p.limits.MaxDepth {
		return 0, fmt.Errorf("%w: limit %d", ErrTooDeep, p.limits.MaxDepth)
	}
	p.elements++
	if p.elements > p.limits.MaxElements {
		return 0, fmt.Errorf("%w: more than %d elements", ErrTooManyElements, p.limits.MaxElements)
	}
	nameStart := i + 1
	end, colon, err := p.qname(nameStart)
	if err != nil {
		return 0, err
	}
	// The element exists before its attributes are read, so that they go
	// straight into it: no scratch copy, no extra pointer writes.
	el := p.nodes.elems.one()
	h := makeHandle(handleElement, p.nodes.elems.next-1, p.nodes.elems.used-1)
	if colon >= 0 {
		el.Space, el.Tag = s[nameStart:colon], s[colon+1:end]
	} else {
		el.Tag = s[nameStart:end]
	}
	// Most elements of a message declare nothing and have no prefixed
	// attributes: those need no namespace checks when unprefixed, or when
	// their prefix is their parent's, resolved already in the same scope.
	namespaced := colon >= 0 && (len(p.stack) == 0 || p.stack[len(p.stack)-1].el.Space != el.Space)
	empty := false
	i = end
	for {
		ws := i
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return 0, p.errorf(ErrNotXML, i, "unexpected end of input in a start tag")
		}
		if c := s[i]; c == '>' {
			i++
			break
		} else if c == '/' {
			if i+1 < len(s) && s[i+1] == '>' {
				i += 2
				empty = true
				break
			}
			return 0, p.errorf(ErrNotXML, i, "expected '/>'")
		}
		if i == ws {
			return 0, p.errorf(ErrNotXML, i, "attributes must be separated by white space")
		}
		aEnd, aColon, err := p.qname(i)
		if err != nil {
			return 0, err
		}
		aname := s[i:aEnd]
		namespaced = namespaced || aColon >= 0 || aname == "xmlns"
		i = aEnd
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			return 0, p.errorf(ErrNotXML, i, "expected '=' after an attribute name")
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) || (s[i] != '"' && s[i] != '\'') {
			return 0, p.errorf(ErrNotXML, i, "attribute value not quoted")
		}
		value, vEnd, err := p.chars(i+1, s[i])
		if err != nil {
			return 0, err
		}
		i = vEnd + 1
		n := len(el.Attr)
		if n >= p.limits.MaxAttributes {
			return 0, fmt.Errorf("%w: more than %d attributes on one element", ErrTooManyElements, p.limits.MaxAttributes)
		}
		if el.Attr == nil {
			el.Attr = p.attrRun()
		}
		// CreateAttr sets the attribute's element (for NamespaceURI) and
		// replaces a duplicate instead of appending: that is how we see one.
		el.CreateAttr(aname, value)
		if len(el.Attr) == n {
			return 0, p.errorf(ErrNotXML, i, "duplicate attribute")
		}
	}
	if n := len(el.Attr); n > 0 {
		p.takeAttrs(el.Attr)
		// Capped so that later appends by callers cannot reach a
		// neighbour; a self-slice stores no pointer, so no write barrier.
		el.Attr = el.Attr[:n:n]
	}
	nsMark := len(p.ns)
	if namespaced {
		if err := p.namespaces(el, nameStart-1); err != nil {
			return 0, err
		}
	}
	p.pending.push(h)
	if empty {
		if len(p.ns) != nsMark {
			p.popNamespaces(nsMark)
		}
		if len(p.stack) == 0 {
			p.rootSeen = true
		}
	} else {
		p.stack = append(p.stack, openElement{el: el, nameStart: nameStart, nameEnd: end, first: p.pending.n, nsMark: nsMark})
	}
	return i, nil
}

func (p *xmlParser) endTag(i int) (int, error) {
	s := p.s
	if len(p.stack) == 0 {
		return 0, p.errorf(ErrNotXML, i, "end tag outside the root element")
	}
	top := p.stack[len(p.stack)-1]
	j := i + 2
	if !strings.HasPrefix(s[j:], s[top.nameStart:top.nameEnd]) {
		return 0, p.errorf(ErrNotXML, i, "end tag does not match the start tag")
	}
	j += top.nameEnd - top.nameStart
	for j < len(s) && isSpace(s[j]) {
		j++
	}
	if j >= len(s) || s[j] != '>' {
		return 0, p.errorf(ErrNotXML, i, "end tag does not match the start tag")
	}
	p.adopt(top.el, top.first)
	if len(p.ns) != top.nsMark {
		p.popNamespaces(top.nsMark)
	}
	p.stack = p.stack[:len(p.stack)-1]
	if len(p.stack) == 0 {
		p.rootSeen = true
	}
	return j + 1, nil
}

// bang reads a comment or CDATA section; DOCTYPE and other declarations are refused.
func (p *xmlParser) bang(i int) (int, error) {
	s := p.s
	rest := s[i:]
	switch {
	case strings.HasPrefix(rest, "<!--"):
		a := i + 4
		k := strings.Index(s[a:], "--")
		if k < 0 {
			return 0, p.errorf(ErrNotXML, i, "unterminated comment")
		}
		b := a + k
		if b+2 >= len(s) || s[b+2] != '>' {
			return 0, p.errorf(ErrNotXML, b, "'--' in a comment")
		}
		text, err := p.segment(a, b)
		if err != nil {
			return 0, err
		}
		p.pushOther(&etree.Comment{Data: text})
		return b + 3, nil
	case strings.HasPrefix(rest, "<![CDATA["):
		if len(p.stack) == 0 {
			return 0, p.errorf(ErrNotXML, i, "CDATA section outside the root element")
		}
		a := i + 9
		k := strings.Index(s[a:], "]]>")
		if k < 0 {
			return 0, p.errorf(ErrNotXML, i, "unterminated CDATA section")
		}
		text, err := p.segment(a, a+k)
		if err != nil {
			return 0, err
		}
		p.addText(text)
		return a + k + 3, nil
	case strings.HasPrefix(rest, "<!DOCTYPE"):
		return 0, fmt.Errorf("%w: DOCTYPE", ErrDTD)
	}
	return 0, p.errorf(ErrNotXML, i, "markup declaration outside a DTD")
}

// procInst refuses a processing instruction; an XML declaration anywhere but
// at the very start is malformed rather than a processing instruction.
func (p *xmlParser) procInst(i int) error {
	s := p.s
	j := i + 2
	for j < len(s) && j < i+6 && nameChar[s[j]] {
		j++
	}
	if strings.EqualFold(s[i+2:j], "xml") && (j >= len(s) || isSpace(s[j]) || s[j] == '?') {
		return p.errorf(ErrNotXML, i, "XML declaration not at the start")
	}
	return p.errorf(ErrDTD, i, "processing instruction")
}

// addText appends a CharData token; SetData sets the white-space flag as
// etree's reader does.
func (p *xmlParser) addText(text string) {
	cd := p.nodes.texts.one()
	cd.SetData(text)
	p.pending.push(makeHandle(handleText, p.nodes.texts.next-1, p.nodes.texts.used-1))
}

// pushOther queues a token that is not from the arena (the XML declaration,
// a comment).
func (p *xmlParser) pushOther(t etree.Token) {
	p.others = append(p.others, t)
	p.pending.push(makeHandle(handleOther, 0, len(p.others)-1))
}

// handle names a token read but not yet adopted without a pointer, so that
// the queue of them costs no write barrier and holds nothing the collector
// must trace: an element or text by its chunk and index in the arena,
// anything else by its index in xmlParser.others.
type handle uint64

const (
	handleElement handle = iota
	handleText
	handleOther
)

func makeHandle(kind handle, chunk, i int) handle {
	return kind | handle(chunk)<<2 | handle(i)<<32
}

// token is the token h names.
func (p *xmlParser) token(h handle) etree.Token {
	chunk, i := int(h>>2&(1<<30-1)), int(h>>32)
	switch h & 3 {
	case handleElement:
		return p.nodes.elems.at(chunk, i)
	case handleText:
		return p.nodes.texts.at(chunk, i)
	}
	return p.others[i]
}

// attrRun returns an empty slice over the rest of the attribute slab, for
// one start tag's attributes to be appended to; takeAttrs then carves them
// off. An element with more attributes than the slab has left simply gets
// its own array from append.
func (p *xmlParser) attrRun() []etree.Attr {
	a := &p.nodes.attrs
	if a.used == len(a.cur) {
		a.refill(1)
	}
	return a.cur[a.used:a.used]
}

// takeAttrs advances the slab past a start tag's attributes if they are
// still in it.
func (p *xmlParser) takeAttrs(attrs []etree.Attr) {
	n := len(attrs)
	if a := &p.nodes.attrs; len(a.cur)-a.used >= n && &a.cur[a.used] == &attrs[0] {
		a.used += n
	} else {
		// append filled the rest of the slab before it moved out: zero it
		// again, since reset clears only what the slab handed out.
		clear(a.cur[a.used:][:min(n, len(a.cur)-a.used)])
	}
}

// adopt hands the pending tokens from index first on to parent. AddChild sets
// their parent and index; the exact-size block avoids regrowing Child.
func (p *xmlParser) adopt(parent *etree.Element, first int) {
	if n := p.pending.n - first; n > 0 {
		parent.Child = p.nodes.toks.take(n)[:0]
		for i := first; i < p.pending.n; i++ {
			parent.AddChild(p.token(p.pending.at(i)))
		}
	}
	p.pending.n = first
}

// tokenQueue holds the handles of the tokens read but not yet adopted, in
// fixed blocks, so that a long run of siblings (a 1 MB Body of small
// elements) grows it without copying: a doubling slice would leave as much
// again as garbage.
type tokenQueue struct {
	blocks [][]handle // each pendingBlock long
	n      int        // handles held
}

const pendingBlock = 512

func (q *tokenQueue) push(h handle) {
	b := q.n / pendingBlock
	if b == len(q.blocks) {
		q.blocks = append(q.blocks, make([]handle, pendingBlock))
	}
	q.blocks[b][q.n%pendingBlock] = h
	q.n++
}

func (q *tokenQueue) at(i int) handle {
	return q.blocks[i/pendingBlock][i%pendingBlock]
}

// reset empties q and keeps at most keep blocks. Handles are not
// references: nothing needs clearing.
func (q *tokenQueue) reset(keep int) {
	if len(q.blocks) > keep {
		clear(q.blocks[keep:])
		q.blocks = q.blocks[:keep]
	}
	q.n = 0
}

// nsDecl is one prefix declaration in scope.
type nsDecl struct {
	prefix, uri string
	prev        int32 // index in ns of the binding it shadows, or -1; kept while indexed
}

// nsIndexFrom is how many declarations in scope are looked up by scanning;
// beyond, nsIndex takes over. A real message has a handful in scope, a
// hostile one up to MaxDepth*MaxAttributes, which a scan per name would make
// quadratic.
const nsIndexFrom = 16

// namespaces applies Namespaces in XML 1.0 to a start tag that declares or
// uses prefixes: it pushes the element's declarations, which apply to its own
// names, then resolves every prefix it uses.
func (p *xmlParser) namespaces(el *etree.Element, at int) error {
	for k := range el.Attr {
		a := &el.Attr[k]
		switch {
		case a.Space == "xmlns":
			if err := p.declare(a.Key, a.Value, at); err != nil {
				return err
			}
		case a.Space == "" && a.Key == "xmlns":
			// xmlns="" (no default namespace) is XML 1.0; the reserved
			// namespaces are never the default (Namespaces §3).
			if a.Value == xmlNamespaceURI || a.Value == xmlnsNamespaceURI {
				return p.errorf(ErrNamespace, at, "reserved namespace %q as the default namespace", a.Value)
			}
		}
	}
	switch el.Space {
	case "":
	case "xmlns":
		return p.errorf(ErrNamespace, at, "element with the xmlns prefix")
	default:
		if _, ok := p.resolve(el.Space); !ok {
			return p.errorf(ErrNamespace, at, "undeclared element prefix %.64q", el.Space)
		}
	}
	for k := range el.Attr {
		a := &el.Attr[k]
		if a.Space == "" || a.Space == "xmlns" {
			continue
		}
		uri, ok := p.resolve(a.Space)
		if !ok {
			return p.errorf(ErrNamespace, at, "undeclared attribute prefix %.64q", a.Space)
		}
		// §6.3: a:x and b:x are one attribute when a and b are bound to one
		// namespace (one prefix twice was refused as a plain duplicate).
		for m := 0; m < k; m++ {
			b := &el.Attr[m]
			if b.Key == a.Key && b.Space != a.Space && b.Space != "" && b.Space != "xmlns" {
				if other, _ := p.resolve(b.Space); other == uri {
					return p.errorf(ErrNamespace, at, "attributes %.64s:%.64s and %.64s:%.64s have one expanded name", b.Space, b.Key, a.Space, a.Key)
				}
			}
		}
	}
	return nil
}

// declare checks the declaration xmlns:prefix="uri" and brings it in scope.
func (p *xmlParser) declare(prefix, uri string, at int) error {
	switch {
	case prefix == "xmlns":
		return p.errorf(ErrNamespace, at, "declaration of the xmlns prefix")
	case prefix == "xml":
		if uri != xmlNamespaceURI {
			return p.errorf(ErrNamespace, at, "the xml prefix bound to another namespace")
		}
		return nil // bound by definition
	case uri == "":
		return p.errorf(ErrNamespace, at, "prefix %.64q undeclared (XML 1.1 only)", prefix)
	case uri == xmlNamespaceURI || uri == xmlnsNamespaceURI:
		return p.errorf(ErrNamespace, at, "prefix %.64q bound to the reserved namespace %q", prefix, uri)
	}
	p.push(prefix, uri)
	return nil
}

func (p *xmlParser) push(prefix, uri string) {
	b := nsDecl{prefix: prefix, uri: uri, prev: -1}
	if len(p.nsIndex) > 0 || len(p.ns) >= nsIndexFrom {
		if p.nsIndex == nil {
			p.nsIndex = make(map[string]int32, 2*nsIndexFrom)
		}
		if len(p.nsIndex) == 0 { // build: the scope grew past the scan
			for k := range p.ns {
				q := &p.ns[k]
				q.prev = -1
				if prev, ok := p.nsIndex[q.prefix]; ok {
					q.prev = prev
				}
				p.nsIndex[q.prefix] = int32(k)
			}
		}
		if prev, ok := p.nsIndex[prefix]; ok {
			b.prev = prev
		}
		p.nsIndex[prefix] = int32(len(p.ns))
	}
	p.ns = append(p.ns, b)
}

// popNamespaces takes the declarations from ns[mark:] out of scope.
func (p *xmlParser) popNamespaces(mark int) {
	if len(p.nsIndex) > 0 {
		for k := len(p.ns) - 1; k >= mark; k-- {
			if b := &p.ns[k]; b.prev >= 0 {
				p.nsIndex[b.prefix] = b.prev
			} else {
				delete(p.nsIndex, b.prefix)
			}
		}
	}
	p.ns = p.ns[:mark]
}

// resolve returns the namespace prefix is bound to in scope.
func (p *xmlParser) resolve(prefix string) (string, bool) {
	if prefix == "xml" {
		return xmlNamespaceURI, true
	}
	if len(p.nsIndex) > 0 {
		k, ok := p.nsIndex[prefix]
		return p.ns[k].uri, ok
	}
	for k := len(p.ns) - 1; k >= 0; k-- {
		if p.ns[k].prefix == prefix {
			return p.ns[k].uri, true
		}
	}
	return "", false
}

// seed brings the declarations in scope at scope into scope, outermost
// first, for a fragment that will be inserted there.
func (p *xmlParser) seed(scope *etree.Element) {
	var chain []*etree.Element
	for e := scope; e != nil; e = e.Parent() {
		chain = append(chain, e)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		for _, a := range chain[i].Attr {
			if a.Space == "xmlns" && a.Key != "xml" && a.Key != "xmlns" && a.Value != "" {
				p.push(a.Key, a.Value)
			}
		}
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r'
}

// Byte classes for the ASCII fast paths; anything not "plain" takes the slow
// path, which handles markup, references, line ends and UTF-8. Read-only.
var (
	textPlain = byteTable(func(c byte) bool {
		return c >= 0x20 && c < 0x80 && c != '<' && c != '&' && c != ']' || c == '\t' || c == '\n'
	})
	attrPlain = byteTable(func(c byte) bool {
		return c >= 0x20 && c < 0x80 && c != '<' && c != '&' && c != '"' && c != '\''
	})
	segmentPlain = byteTable(func(c byte) bool {
		return c >= 0x20 && c < 0x80 || c == '\t' || c == '\n'
	})
	nameStartChar = byteTable(func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
	})
	nameChar = byteTable(func(c byte) bool {
		return nameStartChar[c] || '0' <= c && c <= '9' || c == '-' || c == '.' || c == ':'
	})
	ncNameChar = byteTable(func(c byte) bool { return nameChar[c] && c != ':' })
	spaceByte  = byteTable(isSpace)
)

func byteTable(f func(byte) bool) (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = f(byte(c))
	}
	return t
}
