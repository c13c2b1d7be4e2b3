package wssec

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// Exclusive XML Canonicalization 1.0 without comments
// (https://www.w3.org/TR/xml-exc-c14n/), written straight from the tree:
// namespaces are resolved with two small stacks instead of a map per
// element, and the output goes into one []byte. The tree is only read.

const (
	xmlNamespaceURI   = "http://www.w3.org/XML/1998/namespace"
	xmlnsNamespaceURI = "http://www.w3.org/2000/xmlns/"
)

var (
	errUndeclaredPrefix = errors.New("exc-c14n: undeclared namespace prefix")
	errNamespaceDecl    = errors.New("exc-c14n: namespace declaration or prefix not allowed by Namespaces in XML 1.0")
	errDuplicateAttr    = errors.New("exc-c14n: duplicate attribute or namespace declaration")
	errInvalidChar      = errors.New("exc-c14n: character not allowed in XML")
	errUnsupportedNode  = errors.New("exc-c14n: node has no canonical form")
)

// nsBinding is one namespace declaration: prefix ("" for the default) to URI.
type nsBinding struct {
	prefix, uri string
}

// sortedAttr is a non-namespace attribute with its resolved namespace URI.
type sortedAttr struct {
	uri string
	a   *etree.Attr
}

// excFrame is an element being written, with the stack heights to restore
// when it is closed.
type excFrame struct {
	el           *etree.Element
	next         int // index of the next child token to write
	scopeMark    int
	renderedMark int
}

// excC14N returns the exclusive canonical form of the subtree rooted at el,
// with the namespace declarations of el's ancestors in scope.
// prefixList is the InclusiveNamespaces PrefixList ("#default" names the
// default namespace).
func excC14N(el *etree.Element, prefixList string) ([]byte, error) {
	return appendExcC14N(nil, el, prefixList)
}

// appendExcC14N appends the exclusive canonical form of el to dst.
func appendExcC14N(dst []byte, el *etree.Element, prefixList string) ([]byte, error) {
	if el == nil {
		return dst, fmt.Errorf("%w: no element", errUnsupportedNode)
	}
	var w excWriter
	w.buf = slices.Grow(dst, sizeHint(el, 0))
	w.scope = w.scopeArr[:0]
	w.rendered = w.renderedArr[:0]
	w.listed = w.listedArr[:0]
	for _, p := range strings.Fields(prefixList) {
		if p == "#default" {
			w.listDefault = true
			continue
		}
		w.listed = append(w.listed, p)
	}
	if err := w.pushAncestors(el); err != nil {
		return dst, err
	}
	if err := w.write(el); err != nil {
		return dst, err
	}
	return w.buf, nil
}

// excWriter holds the state of one canonicalization; the arrays give the
// stacks room for typical messages without further allocation.
type excWriter struct {
	buf         []byte
	scope       []nsBinding // declarations in scope in the document, innermost last
	rendered    []nsBinding // declarations output so far on open elements, innermost last
	listed      []string
	listDefault bool
	utilized    []nsBinding  // scratch: declarations to consider on one element
	attrs       []sortedAttr // scratch: one element's attributes to sort
	stack       []excFrame

	scopeArr    [16]nsBinding
	renderedArr [16]nsBinding
	listedArr   [8]string
	utilizedArr [8]nsBinding
	attrsArr    [8]sortedAttr
	stackArr    [16]excFrame
}

// pushAncestors puts the declarations of el's ancestors in scope, outermost
// first so that lookups from the top find the nearest.
func (w *excWriter) pushAncestors(el *etree.Element) error {
	var arr [16]*etree.Element
	anc := arr[:0]
	for p := el.Parent(); p != nil; p = p.Parent() {
		anc = append(anc, p)
	}
	for i := len(anc) - 1; i >= 0; i-- {
		if err := w.pushDecls(anc[i]); err != nil {
			return err
		}
	}
	return nil
}

// pushDecls puts el's own namespace declarations in scope.
func (w *excWriter) pushDecls(el *etree.Element) error {
	mark := len(w.scope)
	for i := range el.Attr {
		a := &el.Attr[i]
		var prefix string
		switch {
		case a.Space == "xmlns" && a.Key != "":
			prefix = a.Key
		case a.Space == "xmlns":
			return fmt.Errorf("%w: empty prefix in xmlns:", errNamespaceDecl)
		case a.Space == "" && a.Key == "xmlns":
			prefix = ""
		default:
			continue
		}
		// Namespaces in XML 1.0, section 3: the reserved names.
		switch {
		case prefix == "xml":
			if a.Value != xmlNamespaceURI {
				return fmt.Errorf("%w: xmlns:xml=%q", errNamespaceDecl, a.Value)
			}
			continue // bound implicitly, never output
		case prefix == "xmlns":
			return fmt.Errorf("%w: xmlns:xmlns declared", errNamespaceDecl)
		case a.Value == xmlNamespaceURI || a.Value == xmlnsNamespaceURI:
			return fmt.Errorf("%w: %q bound to %q", errNamespaceDecl, prefix, a.Value)
		case prefix != "" && a.Value == "":
			// Only Namespaces in XML 1.1 can undeclare a prefix.
			return fmt.Errorf("%w: xmlns:%s=\"\"", errNamespaceDecl, prefix)
		}
		for _, b := range w.scope[mark:] {
			if b.prefix == prefix {
				return fmt.Errorf("%w: namespace prefix %q declared twice", errDuplicateAttr, prefix)
			}
		}
		w.scope = append(w.scope, nsBinding{prefix, a.Value})
	}
	return nil
}

// lookup resolves prefix in the document's scope. The default namespace is
// always found ("" when there is none).
func (w *excWriter) lookup(prefix string) (string, bool) {
	if prefix == "xml" {
		return xmlNamespaceURI, true
	}
	for i := len(w.scope) - 1; i >= 0; i-- {
		if w.scope[i].prefix == prefix {
			return w.scope[i].uri, true
		}
	}
	return "", prefix == ""
}

// inEffect is the value of prefix as output by the nearest output ancestor;
// at the apex only the empty default namespace is in effect.
func (w *excWriter) inEffect(prefix string) (string, bool) {
	for i := len(w.rendered) - 1; i >= 0; i-- {
		if w.rendered[i].prefix == prefix {
			return w.rendered[i].uri, true
		}
	}
	return "", prefix == ""
}

// addUtilized records that prefix (bound to uri) must be in effect on the
// current element.
func (w *excWriter) addUtilized(prefix, uri string) {
	for _, b := range w.utilized {
		if b.prefix == prefix {
			return
		}
	}
	w.utilized = append(w.utilized, nsBinding{prefix, uri})
}

func (w *excWriter) write(root *etree.Element) error {
	w.utilized = w.utilizedArr[:0]
	w.attrs = w.attrsArr[:0]
	w.stack = w.stackArr[:0]
	if err := w.start(root); err != nil {
		return err
	}
	for len(w.stack) > 0 {
		f := &w.stack[len(w.stack)-1]
		if f.next == len(f.el.Child) {
			w.end(f.el)
			w.scope = w.scope[:f.scopeMark]
			w.rendered = w.rendered[:f.renderedMark]
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		tok := f.el.Child[f.next]
		f.next++
		switch t := tok.(type) {
		case *etree.Element:
			if err := w.start(t); err != nil { // may grow w.stack: f is stale after this
				return err
			}
		case *etree.CharData:
			var err error
			if w.buf, err = appendC14NText(w.buf, t.Data); err != nil {
				return err
			}
		case *etree.Comment:
			// Without comments.
		case *etree.ProcInst:
			w.buf = append(w.buf, "<?"...)
			w.buf = append(w.buf, t.Target...)
			if t.Inst != "" {
				w.buf = append(w.buf, ' ')
				w.buf = append(w.buf, t.Inst...)
			}
			w.buf = append(w.buf, "?>"...)
		default:
			// Directives (<!DOCTYPE ...>) have no node in the XPath data model.
			return fmt.Errorf("%w: %T inside element", errUnsupportedNode, tok)
		}
	}
	return nil
}

// start writes el's start tag and pushes its frame.
func (w *excWriter) start(el *etree.Element) error {
	scopeMark, renderedMark := len(w.scope), len(w.rendered)
	if err := w.pushDecls(el); err != nil {
		return err
	}

	// Visibly utilized namespaces: the element's own prefix...
	w.utilized = w.utilized[:0]
	w.attrs = w.attrs[:0]
	switch el.Space {
	case "xml":
	case "xmlns":
		return fmt.Errorf("%w: element %s:%s", errNamespaceDecl, el.Space, el.Tag)
	default:
		uri, ok := w.lookup(el.Space)
		if !ok {
			return fmt.Errorf("%w: %q on element %s", errUndeclaredPrefix, el.Space, el.Tag)
		}
		w.addUtilized(el.Space, uri)
	}
	// ... and its attributes' prefixes.
	for i := range el.Attr {
		a := &el.Attr[i]
		switch {
		case a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns"):
			continue
		case a.Space == "":
			w.attrs = append(w.attrs, sortedAttr{"", a})
		case a.Space == "xml":
			w.attrs = append(w.attrs, sortedAttr{xmlNamespaceURI, a})
		default:
			uri, ok := w.lookup(a.Space)
			if !ok {
				return fmt.Errorf("%w: %q on attribute %s", errUndeclaredPrefix, a.Space, a.Key)
			}
			w.addUtilized(a.Space, uri)
			w.attrs = append(w.attrs, sortedAttr{uri, a})
		}
	}
	// InclusiveNamespaces PrefixList: treated as by inclusive C14N, so
	// rendered whenever in scope and not already in effect.
	for _, p := range w.listed {
		if p == "xml" || p == "xmlns" {
			continue
		}
		if uri, ok := w.lookup(p); ok && p != "" {
			w.addUtilized(p, uri)
		}
	}
	if w.listDefault {
		uri, _ := w.lookup("")
		w.addUtilized("", uri)
	}

	// Namespace declarations by prefix, default first.
	ns := w.utilized
	for i := 1; i < len(ns); i++ {
		for j := i; j > 0 && ns[j].prefix < ns[j-1].prefix; j-- {
			ns[j], ns[j-1] = ns[j-1], ns[j]
		}
	}
	// Attributes by (namespace URI, local name), no namespace first.
	if len(w.attrs) > 1 {
		slices.SortFunc(w.attrs, func(x, y sortedAttr) int {
			if c := strings.Compare(x.uri, y.uri); c != 0 {
				return c
			}
			return strings.Compare(x.a.Key, y.a.Key)
		})
		for i := 1; i < len(w.attrs); i++ {
			if w.attrs[i].uri == w.attrs[i-1].uri && w.attrs[i].a.Key == w.attrs[i-1].a.Key {
				return fmt.Errorf("%w: %s on element %s", errDuplicateAttr, w.attrs[i].a.Key, el.Tag)
			}
		}
	}

	w.buf = append(w.buf, '<')
	w.buf = appendQName(w.buf, el.Space, el.Tag)
	for _, b := range ns {
		if cur, ok := w.inEffect(b.prefix); ok && cur == b.uri {
			continue
		}
		if b.prefix == "" {
			w.buf = append(w.buf, ` xmlns="`...)
		} else {
			w.buf = append(w.buf, ` xmlns:`...)
			w.buf = append(w.buf, b.prefix...)
			w.buf = append(w.buf, `="`...)
		}
		var err error
		if w.buf, err = appendC14NAttrValue(w.buf, b.uri); err != nil {
			return err
		}
		w.buf = append(w.buf, '"')
		w.rendered = append(w.rendered, b)
	}
	for _, sa := range w.attrs {
		w.buf = append(w.buf, ' ')
		w.buf = appendQName(w.buf, sa.a.Space, sa.a.Key)
		w.buf = append(w.buf, `="`...)
		var err error
		if w.buf, err = appendC14NAttrValue(w.buf, sa.a.Value); err != nil {
			return err
		}
		w.buf = append(w.buf, '"')
	}
	w.buf = append(w.buf, '>')
	w.stack = append(w.stack, excFrame{el: el, scopeMark: scopeMark, renderedMark: renderedMark})
	return nil
}

func (w *excWriter) end(el *etree.Element) {
	w.buf = append(w.buf, "</"...)
	w.buf = appendQName(w.buf, el.Space, el.Tag)
	w.buf = append(w.buf, '>')
}

// sizeHint estimates the canonical size of el, so that the output is
// allocated once: names and values plus a little for escapes and
// declarations. Past a depth no parser allows it stops counting.
func sizeHint(el *etree.Element, depth int) int {
	n := 2*(len(el.Space)+len(el.Tag)) + 6
	for i := range el.Attr {
		n += len(el.Attr[i].Space) + len(el.Attr[i].Key) + len(el.Attr[i].Value) + 5
	}
	for _, tok := range el.Child {
		switch t := tok.(type) {
		case *etree.CharData:
			n += len(t.Data)
		case *etree.Element:
			if depth < 256 {
				n += sizeHint(t, depth+1)
			}
		}
	}
	return n + n/16
}

func appendQName(dst []byte, prefix, local string) []byte {
	if prefix != "" {
		dst = append(dst, prefix...)
		dst = append(dst, ':')
	}
	return append(dst, local...)
}

// Escape classes of ASCII bytes: 0 copied as is, 1 escaped, 2 not allowed
// in XML. Bytes from 0x80 up are checked as UTF-8.
var (
	c14nTextClass = escClasses("&<>\r")
	c14nAttrClass = escClasses("&<\"\t\n\r")
)

func escClasses(escaped string) (t [128]uint8) {
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

func appendC14NText(dst []byte, s string) ([]byte, error) {
	return appendEscaped(dst, s, &c14nTextClass)
}

func appendC14NAttrValue(dst []byte, s string) ([]byte, error) {
	return appendEscaped(dst, s, &c14nAttrClass)
}

// appendEscaped appends s with the C14N escapes. Characters XML cannot carry
// (invalid UTF-8, control characters, U+FFFE, U+FFFF) are an error rather
// than silently replaced: the signed bytes must be exactly what was read.
func appendEscaped(dst []byte, s string, class *[128]uint8) ([]byte, error) {
	last := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if (r == utf8.RuneError && n == 1) || r == 0xFFFE || r == 0xFFFF {
				return dst, fmt.Errorf("%w: byte offset %d", errInvalidChar, i)
			}
			i += n - 1
			continue
		}
		switch class[c] {
		case 0:
			continue
		case 2:
			return dst, fmt.Errorf("%w: %#x", errInvalidChar, c)
		}
		dst = append(dst, s[last:i]...)
		switch c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		case '\t':
			dst = append(dst, "&#x9;"...)
		case '\n':
			dst = append(dst, "&#xA;"...)
		case '\r':
			dst = append(dst, "&#xD;"...)
		}
		last = i + 1
	}
	return append(dst, s[last:]...), nil
}
