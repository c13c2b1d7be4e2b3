package wssec

import (
	"fmt"
	"strings"

	"github.com/beevik/etree"
)

// Default limits. Depth and counts are generous for real SOAP payloads and
// far below what would let a message exhaust memory or the stack.
const (
	defaultMaxBytes      = 10 << 20
	defaultMaxDepth      = 64
	defaultMaxElements   = 500000
	defaultMaxAttributes = 64
	// Santuario's secure-validation caps.
	defaultMaxReferences = 30
	defaultMaxTransforms = 5
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = defaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = defaultMaxElements
	}
	if l.MaxAttributes <= 0 {
		l.MaxAttributes = defaultMaxAttributes
	}
	if l.MaxReferences <= 0 {
		l.MaxReferences = defaultMaxReferences
	}
	if l.MaxTransforms <= 0 {
		l.MaxTransforms = defaultMaxTransforms
	}
	return l
}

// Message is what ParseEnvelope reads: a string is used as it is, a byte
// slice is copied once (the tree keeps slices of the message, so it must not
// change under it). A caller that reads a body into a strings.Builder saves
// that copy.
type Message interface{ string | []byte }

// ParseEnvelope parses msg with the hardening limits and checks that it is a
// SOAP 1.1 or 1.2 envelope with at most one Header and exactly one Body.
// parseXML (xmlparse.go) refuses DOCTYPEs (and so every entity trick),
// processing instructions and non-UTF-8 encodings, and enforces the depth,
// element and attribute limits while it reads, before anything else looks
// at the tree.
func ParseEnvelope[M Message](msg M, limits Limits) (*Envelope, error) {
	limits = limits.withDefaults()
	if int64(len(msg)) > limits.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), limits.MaxBytes)
	}
	s := string(msg)
	if len(strings.TrimSpace(s)) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrNotXML)
	}
	nodes := getArena(len(s))
	doc, err := parseXMLString(s, limits, nodes)
	if err != nil {
		nodes.release()
		return nil, err
	}
	env, err := envelopeOf(doc, doc.Root())
	if err != nil {
		nodes.release()
		return nil, err
	}
	env.size = len(s)
	env.nodes = nodes
	return env, nil
}

// Release hands the memory of the parsed tree back for reuse by a later
// ParseEnvelope. The tree has one owner, whichever handle releases it: the
// Envelope and the Verified made from it are emptied together (no element,
// Bytes fails), so neither can read nodes a later parse reuses; releasing
// again does nothing. The gateway releases once it has serialized what it
// forwards. Strings and the signer taken from them stay valid; elements
// taken from them do not. Not calling Release is always safe: the garbage
// collector then takes the tree.
func (e *Envelope) Release() {
	if e == nil {
		return
	}
	if v := e.verified; v != nil {
		v.Security, v.headers, v.securityKept = nil, nil, nil
		v.headersBuf, v.keptBuf = [6]*etree.Element{}, [6]*etree.Element{}
	}
	if e.nodes == nil {
		return
	}
	nodes := e.nodes
	*e = Envelope{Version: e.Version}
	nodes.release()
}

// Release releases the verified tree; see Envelope.Release.
func (v *Verified) Release() {
	if v == nil {
		return
	}
	v.Security, v.headers, v.securityKept = nil, nil, nil
	v.headersBuf, v.keptBuf = [6]*etree.Element{}, [6]*etree.Element{}
	v.Envelope.Release()
}

// envelopeOf checks the SOAP envelope shape: the root is Envelope in the
// SOAP 1.1 or 1.2 namespace and holds at most one Header, then exactly one
// Body, both in its own namespace, and nothing else: no other element before,
// between or after them (WS-I BP R1011, the SOAP 1.2 envelope schema), no
// text but white space, no soap:encodingStyle (it would change how the
// Body, which it does not sign, is decoded). Header holds no text but white
// space either. Comments are allowed here: nothing forwarded keeps them.
func envelopeOf(doc *etree.Document, root *etree.Element) (*Envelope, error) {
	env := &Envelope{Doc: doc}
	if err := env.shape(root); err != nil {
		return nil, err
	}
	return env, nil
}

// shape fills env's Envelope, Version, Header and Body from root, or says
// what is wrong with its shape (see envelopeOf).
func (env *Envelope) shape(root *etree.Element) error {
	env.Envelope = root
	if root.Tag != "Envelope" {
		return fmt.Errorf("%w: root element is %s", ErrNotEnvelope, root.Tag)
	}
	var ns string
	switch ns = root.NamespaceURI(); ns {
	case NSSOAP11:
		env.Version = SOAP11
	case NSSOAP12:
		env.Version = SOAP12
	default:
		return fmt.Errorf("%w: unknown envelope namespace", ErrNotEnvelope)
	}
	if err := checkEnvelopeAttrs(root, ns); err != nil {
		return err
	}
	for _, tok := range root.Child {
		child, ok := tok.(*etree.Element)
		if !ok {
			if !blankToken(tok) {
				return fmt.Errorf("%w: text in Envelope", ErrEnvelopeShape)
			}
			continue
		}
		switch {
		case env.Body != nil:
			if child.Tag == "Body" && child.NamespaceURI() == ns {
				return ErrMultipleBodies
			}
			return fmt.Errorf("%w: element %.64s after Body", ErrEnvelopeShape, child.Tag)
		case child.Tag == "Header" && env.Header == nil && child.NamespaceURI() == ns:
			env.Header = child
		case child.Tag == "Body" && child.NamespaceURI() == ns:
			env.Body = child
		default:
			return fmt.Errorf("%w: unexpected element %.64s in Envelope", ErrEnvelopeShape, child.Tag)
		}
	}
	if env.Body == nil {
		return fmt.Errorf("%w: no Body", ErrNotEnvelope)
	}
	if env.Header != nil {
		if err := checkEnvelopeAttrs(env.Header, ns); err != nil {
			return err
		}
		for _, tok := range env.Header.Child {
			if _, ok := tok.(*etree.Element); !ok && !blankToken(tok) {
				return fmt.Errorf("%w: text in Header", ErrEnvelopeShape)
			}
		}
	}
	return nil
}

// checkShape re-checks the shape of an Envelope that may have been built by
// hand: Header and Body must be what envelopeOf finds in the tree.
func (e *Envelope) checkShape() error {
	var got Envelope
	if err := got.shape(e.Envelope); err != nil {
		return err
	}
	if got.Header != e.Header || got.Body != e.Body || got.Version != e.Version {
		return fmt.Errorf("%w: Header or Body is not the envelope's own", ErrEnvelopeShape)
	}
	return nil
}

// checkEnvelopeAttrs refuses soap:encodingStyle on Envelope or Header. Their
// other attributes are never forwarded (see Verified.Bytes).
func checkEnvelopeAttrs(el *etree.Element, ns string) error {
	for i := range el.Attr {
		a := &el.Attr[i]
		if a.Key == "encodingStyle" && a.Space != "" && a.Space != "xmlns" && a.NamespaceURI() == ns {
			return fmt.Errorf("%w: encodingStyle on %s", ErrEnvelopeShape, el.Tag)
		}
	}
	return nil
}

// blankToken reports whether tok is a comment or white-space character data.
func blankToken(tok etree.Token) bool {
	switch t := tok.(type) {
	case *etree.Comment:
		return true
	case *etree.CharData:
		for i := 0; i < len(t.Data); i++ {
			switch t.Data[i] {
			case ' ', '\t', '\n', '\r':
			default:
				return false
			}
		}
		return true
	}
	return false
}

// is reports whether el is the element {ns}local.
func is(el *etree.Element, ns, local string) bool {
	return el != nil && el.Tag == local && el.NamespaceURI() == ns
}

// DetectVersion reports the SOAP version of an envelope that failed to parse
// fully, from its root element alone, so a fault can be sent in the client's
// version. It returns SOAPUnknown when the message does not tell.
func DetectVersion[M Message](msg M) SOAPVersion {
	i11 := strings.Index(string(msg), NSSOAP11)
	i12 := strings.Index(string(msg), NSSOAP12)
	switch {
	case i11 < 0 && i12 < 0:
		return SOAPUnknown
	case i12 < 0 || (i11 >= 0 && i11 < i12):
		return SOAP11
	}
	return SOAP12
}

// childElements returns el's child elements. It inlines, so the first eight
// land in the caller's stack frame: etree's ChildElements allocates a slice
// per call, which was half of all allocations of a verification.
func childElements(el *etree.Element) []*etree.Element {
	return appendChildElements(make([]*etree.Element, 0, 8), el)
}

func appendChildElements(dst []*etree.Element, el *etree.Element) []*etree.Element {
	for _, t := range el.Child {
		if c, ok := t.(*etree.Element); ok {
			dst = append(dst, c)
		}
	}
	return dst
}

// hasChildElement reports whether el has an element child.
func hasChildElement(el *etree.Element) bool {
	for _, t := range el.Child {
		if _, ok := t.(*etree.Element); ok {
			return true
		}
	}
	return false
}
