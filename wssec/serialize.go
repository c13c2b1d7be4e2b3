package wssec

import (
	"bytes"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// serializeDoc writes doc exactly as etree's Document.WriteTo does with
// WriteSettings{CanonicalAttrVal: true, CanonicalText: true} (the
// differential test in serialize_test.go holds it to that), several times
// faster and without an allocation per element: names are written in parts
// instead of joined, ASCII runs are copied without decoding runes, and the
// output is one buffer grown once. Tokens other than elements and plain
// text (comments, processing instructions, CDATA, directives) are rare and
// go through etree's own WriteTo.
func serializeDoc(doc *etree.Document, sizeHint int) []byte {
	s := serializer{settings: etree.WriteSettings{CanonicalAttrVal: true, CanonicalText: true}}
	s.buf.Grow(sizeHint + sizeHint/16 + 64)
	for _, tok := range doc.Child {
		s.token(tok)
	}
	return s.buf.Bytes()
}

type serializer struct {
	buf      bytes.Buffer
	settings etree.WriteSettings
	// clean writes what is forwarded (Verified.Bytes): comments dropped,
	// CDATA as escaped text, so adjacent text comes out as one text node;
	// any other token (our parser makes none) sets bad.
	clean bool
	bad   bool
}

func (s *serializer) token(tok etree.Token) {
	switch t := tok.(type) {
	case *etree.Element:
		s.element(t)
	case *etree.CharData:
		if t.IsCData() && !s.clean {
			t.WriteTo(&s.buf, &s.settings)
			return
		}
		s.escaped(t.Data, &serTextClass)
	case *etree.Comment:
		if !s.clean {
			tok.WriteTo(&s.buf, &s.settings)
		}
	default:
		if s.clean {
			s.bad = true
			return
		}
		tok.WriteTo(&s.buf, &s.settings)
	}
}

func (s *serializer) element(e *etree.Element) {
	s.buf.WriteByte('<')
	s.name(e.Space, e.Tag)
	s.attrs(e, false)
	if len(e.Child) == 0 {
		s.buf.WriteString("/>")
		return
	}
	s.buf.WriteByte('>')
	for _, c := range e.Child {
		s.token(c)
	}
	s.endTag(e)
}

// startTag writes e's start tag, with only its namespace declarations when
// nsOnly is set.
func (s *serializer) startTag(e *etree.Element, nsOnly bool) {
	s.buf.WriteByte('<')
	s.name(e.Space, e.Tag)
	s.attrs(e, nsOnly)
	s.buf.WriteByte('>')
}

func (s *serializer) attrs(e *etree.Element, nsOnly bool) {
	for i := range e.Attr {
		a := &e.Attr[i]
		if nsOnly && a.Space != "xmlns" && !(a.Space == "" && a.Key == "xmlns") {
			continue
		}
		s.buf.WriteByte(' ')
		s.name(a.Space, a.Key)
		s.buf.WriteString(`="`)
		s.escaped(a.Value, &serAttrClass)
		s.buf.WriteByte('"')
	}
}

func (s *serializer) endTag(e *etree.Element) {
	s.buf.WriteString("</")
	s.name(e.Space, e.Tag)
	s.buf.WriteByte('>')
}

// name writes prefix:local, or local alone, as etree's FullTag and FullKey do.
func (s *serializer) name(prefix, local string) {
	if prefix != "" {
		s.buf.WriteString(prefix)
		s.buf.WriteByte(':')
	}
	s.buf.WriteString(local)
}

// Escape classes of ASCII bytes for etree's canonical text and attribute
// modes: 0 copied, 1 escaped, 2 not an XML character (written as U+FFFD).
var (
	serTextClass = serClasses("&<>\r")
	serAttrClass = serClasses("&<\"\t\n\r")
)

func serClasses(escaped string) (t [128]uint8) {
	for c := 0; c < 0x20; c++ {
		if c != '\t' && c != '\n' && c != '\r' {
			t[c] = 2
		}
	}
	for i := 0; i < len(escaped); i++ {
		t[escaped[i]] = 1
	}
	return t
}

// escaped writes str as etree's escapeString does in the canonical modes.
func (s *serializer) escaped(str string, class *[128]uint8) {
	last := 0
	for i := 0; i < len(str); {
		c := str[i]
		if c < utf8.RuneSelf {
			switch class[c] {
			case 0:
				i++
				continue
			case 2:
				s.buf.WriteString(str[last:i])
				s.buf.WriteString("\uFFFD")
				i++
				last = i
				continue
			}
			s.buf.WriteString(str[last:i])
			switch c {
			case '&':
				s.buf.WriteString("&amp;")
			case '<':
				s.buf.WriteString("&lt;")
			case '>':
				s.buf.WriteString("&gt;")
			case '"':
				s.buf.WriteString("&quot;")
			case '\t':
				s.buf.WriteString("&#x9;")
			case '\n':
				s.buf.WriteString("&#xA;")
			case '\r':
				s.buf.WriteString("&#xD;")
			}
			i++
			last = i
			continue
		}
		r, width := utf8.DecodeRuneInString(str[i:])
		if isSerChar(r) && !(r == utf8.RuneError && width == 1) {
			i += width
			continue
		}
		s.buf.WriteString(str[last:i])
		s.buf.WriteString("\uFFFD")
		i += width
		last = i
	}
	s.buf.WriteString(str[last:])
}

// isSerChar is etree's isInCharacterRange for runes from 0x80 up.
func isSerChar(r rune) bool {
	return r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
