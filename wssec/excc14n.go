package wssec

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// Exclusive XML Canonicalization 1.0, without comments or (for Canonicalize
// only) with them (https://www.w3.org/TR/xml-exc-c14n/), written straight from the tree:
// namespaces are resolved with two small stacks instead of a map per
// element, and the output goes into one []byte or, for digests, through a
// small pooled buffer straight into the hash, so that no copy of the
// canonical form ever exists. The tree is only read.

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

// sortedAttr is a non-namespace attribute: its index in the element's Attr
// and a scope reference to its namespace (nsNone for none). Indices rather
// than pointers: the scratch slices then hold nothing the GC must trace.
type sortedAttr struct {
	ns, i int32
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

// Canonicalize returns the exclusive canonical form of the subtree rooted at
// el as it would canonicalize in place: the namespace declarations of el's
// ancestors are in scope. prefixList is the InclusiveNamespaces PrefixList
// ("#default" names the default namespace). With comments it is the
// WithComments variant: comments inside the subtree are written as
// <!--text-->; the spec's line breaks around comments apply only outside the
// document element, which a subtree never reaches. The tree is only read.
func Canonicalize(el *etree.Element, prefixList string, comments bool) ([]byte, error) {
	return appendC14N(nil, el, prefixList, comments)
}

// appendExcC14N appends the exclusive canonical form of el to dst.
func appendExcC14N(dst []byte, el *etree.Element, prefixList string) ([]byte, error) {
	return appendC14N(dst, el, prefixList, false)
}

func appendC14N(dst []byte, el *etree.Element, prefixList string, comments bool) ([]byte, error) {
	if el == nil {
		return dst, fmt.Errorf("%w: no element", errUnsupportedNode)
	}
	w := excWriter{comments: comments}
	w.buf = slices.Grow(dst, sizeHint(el, 0))
	w.n = len(w.buf)
	w.buf = w.buf[:cap(w.buf)]
	if err := w.run(el, prefixList); err != nil {
		return dst, err
	}
	return w.buf[:w.n], nil
}

// writeExcC14N writes the exclusive canonical form of el to sink (a hash, in
// practice) in chunks of at most excChunk bytes. On error, part of the form
// may have been written.
func writeExcC14N(sink io.Writer, el *etree.Element, prefixList string) error {
	return writeExcC14NChunked(sink, el, prefixList, excChunk)
}

// excChunk is the buffer between the writer and its sink: big enough that a
// hash sees few calls, small enough to stay in L1.
const excChunk = 4096

func writeExcC14NChunked(sink io.Writer, el *etree.Element, prefixList string, chunk int) error {
	if el == nil {
		return fmt.Errorf("%w: no element", errUnsupportedNode)
	}
	w := excWriterPool.Get().(*excWriter)
	defer w.release()
	w.sink = sink
	w.buf = w.chunk[:max(1, min(chunk, len(w.chunk)))]
	if err := w.run(el, prefixList); err != nil {
		return err
	}
	w.flush()
	return w.sinkErr
}

// excWriterPool recycles writers (a few KB each, with their stacks and
// chunk buffer) across digests.
var excWriterPool = sync.Pool{New: func() any { return new(excWriter) }}

// release drops every reference into the tree and returns w to the pool.
func (w *excWriter) release() {
	w.sink, w.sinkErr, w.buf, w.n = nil, nil, nil, 0
	w.scope, w.rendered, w.listed, w.utilized, w.attrs, w.stack = nil, nil, nil, nil, nil, nil
	w.listDefault, w.comments = false, false
	clear(w.scopeArr[:])
	clear(w.renderedArr[:])
	clear(w.listedArr[:])
	clear(w.utilizedArr[:])
	clear(w.attrsArr[:])
	clear(w.stackArr[:])
	excWriterPool.Put(w)
}

// run canonicalizes el into w.
func (w *excWriter) run(el *etree.Element, prefixList string) error {
	w.scope = w.scopeArr[:0]
	w.rendered = w.renderedArr[:0]
	w.listed = w.listedArr[:0]
	for p := range strings.FieldsSeq(prefixList) {
		if p == "#default" {
			w.listDefault = true
			continue
		}
		w.listed = append(w.listed, p)
	}
	if err := w.pushAncestors(el); err != nil {
		return err
	}
	return w.write(el)
}

// excWriter holds the state of one canonicalization; the arrays give the
// stacks room for typical messages without further allocation.
type excWriter struct {
	// The output is buf[:n]. Only n moves on the hot path: storing a slice
	// into a heap object costs a GC write barrier per call.
	buf         []byte
	n           int
	sink        io.Writer // nil: buf grows; else buf is flushed into sink when full
	sinkErr     error
	scope       []nsBinding // declarations in scope in the document, innermost last
	rendered    []int32     // scope references output so far on open elements, innermost last
	listed      []string
	listDefault bool
	comments    bool         // WithComments: write comment nodes
	utilized    []int32      // scratch: scope references to consider on one element
	attrs       []sortedAttr // scratch: one element's attributes to sort
	stack       []excFrame

	scopeArr    [16]nsBinding
	renderedArr [16]int32
	listedArr   [8]string
	utilizedArr [8]int32
	attrsArr    [8]sortedAttr
	stackArr    [16]excFrame
	chunk       [excChunk]byte
}

// str writes s.
func (w *excWriter) str(s string) {
	if len(s) > len(w.buf)-w.n {
		w.slow(s)
		return
	}
	w.n += copy(w.buf[w.n:], s)
}

// byte writes c.
func (w *excWriter) byte(c byte) {
	if w.n == len(w.buf) {
		w.flush()
	}
	w.buf[w.n] = c
	w.n++
}

// slow writes s when it does not fit: through the sink in chunks, or by
// growing buf.
func (w *excWriter) slow(s string) {
	if w.sink == nil {
		w.buf = append(w.buf[:w.n], s...)
		w.n = len(w.buf)
		w.buf = w.buf[:cap(w.buf)]
		return
	}
	for {
		k := copy(w.buf[w.n:], s)
		w.n += k
		if s = s[k:]; s == "" {
			return
		}
		w.flush()
	}
}

// flush hands the buffered bytes to the sink, or makes room in buf.
func (w *excWriter) flush() {
	if w.sink == nil {
		w.buf = slices.Grow(w.buf[:w.n], 1)
		w.buf = w.buf[:cap(w.buf)]
		return
	}
	if w.n > 0 && w.sinkErr == nil {
		_, w.sinkErr = w.sink.Write(w.buf[:w.n])
	}
	w.n = 0
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

// Scope references: an index into excWriter.scope, or one of these for the
// bindings that are never declared.
const (
	nsNone = -1 // the empty default namespace (prefix "", URI "")
	nsXML  = -2 // the xml prefix, bound implicitly
)

func (w *excWriter) prefixOf(ref int32) string {
	switch ref {
	case nsNone:
		return ""
	case nsXML:
		return "xml"
	}
	return w.scope[ref].prefix
}

func (w *excWriter) uriOf(ref int32) string {
	switch ref {
	case nsNone:
		return ""
	case nsXML:
		return xmlNamespaceURI
	}
	return w.scope[ref].uri
}

// lookup resolves prefix in the document's scope. The default namespace is
// always found (nsNone when there is none).
func (w *excWriter) lookup(prefix string) (int32, bool) {
	if prefix == "xml" {
		return nsXML, true
	}
	for i := len(w.scope) - 1; i >= 0; i-- {
		if w.scope[i].prefix == prefix {
			return int32(i), true
		}
	}
	return nsNone, prefix == ""
}

// inEffect reports whether the binding ref refers to is what the nearest
// output ancestor rendered for its prefix; at the apex only the empty
// default namespace is in effect.
func (w *excWriter) inEffect(ref int32) bool {
	prefix := w.prefixOf(ref)
	for i := len(w.rendered) - 1; i >= 0; i-- {
		r := w.rendered[i]
		if r == ref {
			return true
		}
		if w.prefixOf(r) == prefix {
			return w.uriOf(r) == w.uriOf(ref)
		}
	}
	return prefix == "" && w.uriOf(ref) == ""
}

// addUtilized records that the binding ref must be in effect on the current
// element. lookup returns one ref per prefix, so refs compare as prefixes do.
func (w *excWriter) addUtilized(ref int32) {
	for _, u := range w.utilized {
		if u == ref {
			return
		}
	}
	w.utilized = append(w.utilized, ref)
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
			if err := w.escaped(t.Data, &c14nTextClass); err != nil {
				return err
			}
		case *etree.Comment:
			if !w.comments {
				continue
			}
			w.str("<!--")
			if err := w.escaped(t.Data, &c14nCommentClass); err != nil {
				return err
			}
			w.str("-->")
		case *etree.ProcInst:
			w.str("<?")
			w.str(t.Target)
			if t.Inst != "" {
				w.byte(' ')
				w.str(t.Inst)
			}
			w.str("?>")
		default:
			// Directives (<!DOCTYPE ...>) have no node in the XPath data model.
			return fmt.Errorf("%w: %T inside element", errUnsupportedNode, tok)
		}
	}
	return nil
}

// start writes el's start tag and pushes its frame.
func (w *excWriter) start(el *etree.Element) error {
	if n := len(w.stack); n > 0 && w.stack[n-1].el.Space == el.Space && plainAttrs(el) {
		return w.startPlain(el)
	}
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
		ref, ok := w.lookup(el.Space)
		if !ok {
			return fmt.Errorf("%w: %q on element %s", errUndeclaredPrefix, el.Space, el.Tag)
		}
		w.addUtilized(ref)
	}
	// ... and its attributes' prefixes.
	for i := range el.Attr {
		a := &el.Attr[i]
		switch {
		case a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns"):
			continue
		case a.Space == "":
			w.attrs = append(w.attrs, sortedAttr{nsNone, int32(i)})
		case a.Space == "xml":
			w.attrs = append(w.attrs, sortedAttr{nsXML, int32(i)})
		default:
			ref, ok := w.lookup(a.Space)
			if !ok {
				return fmt.Errorf("%w: %q on attribute %s", errUndeclaredPrefix, a.Space, a.Key)
			}
			w.addUtilized(ref)
			w.attrs = append(w.attrs, sortedAttr{ref, int32(i)})
		}
	}
	// InclusiveNamespaces PrefixList: treated as by inclusive C14N, so
	// rendered whenever in scope and not already in effect.
	for _, p := range w.listed {
		if p == "xml" || p == "xmlns" {
			continue
		}
		if ref, ok := w.lookup(p); ok && p != "" {
			w.addUtilized(ref)
		}
	}
	if w.listDefault {
		ref, _ := w.lookup("")
		w.addUtilized(ref)
	}

	// Namespace declarations by prefix, default first.
	ns := w.utilized
	for i := 1; i < len(ns); i++ {
		for j := i; j > 0 && w.prefixOf(ns[j]) < w.prefixOf(ns[j-1]); j-- {
			ns[j], ns[j-1] = ns[j-1], ns[j]
		}
	}
	attrs := w.attrs
	if err := w.sortAttrs(el, attrs); err != nil {
		return err
	}

	w.byte('<')
	w.qname(el.Space, el.Tag)
	for _, ref := range ns {
		if w.inEffect(ref) {
			continue
		}
		if prefix := w.prefixOf(ref); prefix == "" {
			w.str(` xmlns="`)
		} else {
			w.str(` xmlns:`)
			w.str(prefix)
			w.str(`="`)
		}
		if err := w.escaped(w.uriOf(ref), &c14nAttrClass); err != nil {
			return err
		}
		w.byte('"')
		w.rendered = append(w.rendered, ref)
	}
	return w.endStart(el, attrs, scopeMark, renderedMark)
}

// sortAttrs orders attrs by (namespace URI, local name), no namespace
// first; a pair that compares equal is one attribute twice.
func (w *excWriter) sortAttrs(el *etree.Element, attrs []sortedAttr) error {
	if len(attrs) > 16 {
		slices.SortFunc(attrs, func(x, y sortedAttr) int { return w.compareAttrs(el, x, y) })
	} else {
		for i := 1; i < len(attrs); i++ {
			for j := i; j > 0 && w.compareAttrs(el, attrs[j], attrs[j-1]) < 0; j-- {
				attrs[j], attrs[j-1] = attrs[j-1], attrs[j]
			}
		}
	}
	for i := 1; i < len(attrs); i++ {
		if w.compareAttrs(el, attrs[i], attrs[i-1]) == 0 {
			return fmt.Errorf("%w: %s on element %s", errDuplicateAttr, el.Attr[attrs[i].i].Key, el.Tag)
		}
	}
	return nil
}

// endStart writes el's sorted attributes, closes its start tag and opens
// its frame.
func (w *excWriter) endStart(el *etree.Element, attrs []sortedAttr, scopeMark, renderedMark int) error {
	for _, sa := range attrs {
		if err := w.attr(&el.Attr[sa.i]); err != nil {
			return err
		}
	}
	w.byte('>')
	w.stack = append(w.stack, excFrame{el: el, scopeMark: scopeMark, renderedMark: renderedMark})
	return nil
}

// plainAttrs reports whether el declares no namespace and has no prefixed
// attribute.
func plainAttrs(el *etree.Element) bool {
	for i := range el.Attr {
		if a := &el.Attr[i]; a.Space != "" || a.Key == "xmlns" {
			return false
		}
	}
	return true
}

// startPlain is start for the usual element of a payload: it declares
// nothing, its attributes are unprefixed and its prefix is its parent's.
// Then every namespace it visibly utilizes (its prefix, the PrefixList's,
// the default for #default) resolves in the same scope as on its parent,
// which rendered or found in effect each of them, so it renders none; and
// its attributes, all in no namespace, sort by local name alone.
func (w *excWriter) startPlain(el *etree.Element) error {
	scopeMark, renderedMark := len(w.scope), len(w.rendered)
	w.byte('<')
	w.qname(el.Space, el.Tag)
	w.attrs = w.attrs[:0]
	for i := range el.Attr {
		w.attrs = append(w.attrs, sortedAttr{nsNone, int32(i)})
	}
	if err := w.sortAttrs(el, w.attrs); err != nil {
		return err
	}
	return w.endStart(el, w.attrs, scopeMark, renderedMark)
}

// attr writes one attribute, with its leading space.
func (w *excWriter) attr(a *etree.Attr) error {
	w.byte(' ')
	w.qname(a.Space, a.Key)
	w.str(`="`)
	if err := w.escaped(a.Value, &c14nAttrClass); err != nil {
		return err
	}
	w.byte('"')
	return nil
}

// compareAttrs orders attributes by namespace URI, then local name.
func (w *excWriter) compareAttrs(el *etree.Element, x, y sortedAttr) int {
	if x.ns != y.ns {
		if c := strings.Compare(w.uriOf(x.ns), w.uriOf(y.ns)); c != 0 {
			return c
		}
	}
	return strings.Compare(el.Attr[x.i].Key, el.Attr[y.i].Key)
}

func (w *excWriter) end(el *etree.Element) {
	w.str("</")
	w.qname(el.Space, el.Tag)
	w.byte('>')
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

func (w *excWriter) qname(prefix, local string) {
	if prefix != "" && len(prefix)+1+len(local) <= len(w.buf)-w.n {
		n := w.n + copy(w.buf[w.n:], prefix)
		w.buf[n] = ':'
		w.n = n + 1 + copy(w.buf[n+1:], local)
		return
	}
	if prefix != "" {
		w.str(prefix)
		w.byte(':')
	}
	w.str(local)
}

// Escape classes of ASCII bytes: 0 copied as is, 1 escaped, 2 not allowed
// in XML. Bytes from 0x80 up are checked as UTF-8.
var (
	c14nTextClass = escClasses("&<>\r")
	c14nAttrClass = escClasses("&<\"\t\n\r")
	// Comments are written as they are; only characters XML cannot carry fail.
	c14nCommentClass = escClasses("")
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

// escaped writes s with the C14N escapes of class. Characters XML cannot
// carry (invalid UTF-8, control characters, U+FFFE, U+FFFF) are an error
// rather than silently replaced: the signed bytes must be exactly what was read.
func (w *excWriter) escaped(s string, class *[128]uint8) error {
	last := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if (r == utf8.RuneError && n == 1) || r == 0xFFFE || r == 0xFFFF {
				return fmt.Errorf("%w: byte offset %d", errInvalidChar, i)
			}
			i += n - 1
			continue
		}
		switch class[c] {
		case 0:
			continue
		case 2:
			return fmt.Errorf("%w: %#x", errInvalidChar, c)
		}
		w.str(s[last:i])
		switch c {
		case '&':
			w.str("&amp;")
		case '<':
			w.str("&lt;")
		case '>':
			w.str("&gt;")
		case '"':
			w.str("&quot;")
		case '\t':
			w.str("&#x9;")
		case '\n':
			w.str("&#xA;")
		case '\r':
			w.str("&#xD;")
		}
		last = i + 1
	}
	w.str(s[last:])
	return nil
}
