package wssec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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

// ParseEnvelope parses msg with the hardening limits and checks that it is a
// SOAP 1.1 or 1.2 envelope with at most one Header and exactly one Body.
// DOCTYPEs (and so every entity trick), processing instructions and non-UTF-8
// encodings are refused before anything else looks at the tree.
func ParseEnvelope(msg []byte, limits Limits) (*Envelope, error) {
	limits = limits.withDefaults()
	if int64(len(msg)) > limits.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), limits.MaxBytes)
	}
	if len(bytes.TrimSpace(msg)) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrNotXML)
	}
	var badCharset string
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{
		MaxDepth:               limits.MaxDepth,
		PreserveDuplicateAttrs: true, // so that duplicates are refused, not silently merged
		CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
			switch strings.ToLower(charset) {
			case "utf-8", "utf8", "us-ascii", "ascii":
				return input, nil
			}
			badCharset = charset
			return nil, ErrUnsupportedEncoding
		},
	}
	if err := doc.ReadFromBytes(msg); err != nil {
		switch {
		case badCharset != "":
			return nil, fmt.Errorf("%w: %q", ErrUnsupportedEncoding, badCharset)
		case errors.Is(err, etree.ErrMaxDepth):
			return nil, fmt.Errorf("%w: limit %d", ErrTooDeep, limits.MaxDepth)
		case hasDoctype(msg):
			// Entity references defined by an internal subset fail to parse;
			// report the DOCTYPE, which is the real reason.
			return nil, fmt.Errorf("%w: DOCTYPE", ErrDTD)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotXML, err)
	}
	root, err := checkDocument(doc, limits)
	if err != nil {
		return nil, err
	}
	return envelopeOf(doc, root)
}

// hasDoctype reports whether a DOCTYPE declaration appears in the prolog.
func hasDoctype(msg []byte) bool {
	end := bytes.IndexByte(msg, '>')
	for end >= 0 {
		prolog := msg[:end]
		if bytes.Contains(prolog, []byte("<!DOCTYPE")) {
			return true
		}
		// Continue past PIs and comments, which may precede the DOCTYPE.
		start := bytes.LastIndexByte(prolog, '<')
		if start >= 0 && len(prolog) > start+1 && prolog[start+1] != '?' && prolog[start+1] != '!' {
			return false // reached the root element
		}
		next := bytes.IndexByte(msg[end+1:], '>')
		if next < 0 {
			return false
		}
		end += next + 1
	}
	return false
}

// checkDocument enforces the document-level rules and the element and
// attribute limits, and returns the single root element.
func checkDocument(doc *etree.Document, limits Limits) (*etree.Element, error) {
	var root *etree.Element
	for _, tok := range doc.Child {
		switch t := tok.(type) {
		case *etree.Element:
			if root != nil {
				return nil, fmt.Errorf("%w: more than one root element", ErrNotXML)
			}
			root = t
		case *etree.CharData:
			if !t.IsWhitespace() {
				return nil, fmt.Errorf("%w: text outside the root element", ErrNotXML)
			}
		case *etree.Directive:
			return nil, fmt.Errorf("%w: <!%.20s", ErrDTD, t.Data)
		case *etree.ProcInst:
			if t.Target != "xml" || root != nil {
				return nil, fmt.Errorf("%w: <?%.20s", ErrDTD, t.Target)
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: no root element", ErrNotXML)
	}
	count := 0
	if err := checkElement(root, limits, &count); err != nil {
		return nil, err
	}
	return root, nil
}

func checkElement(el *etree.Element, limits Limits, count *int) error {
	*count++
	if *count > limits.MaxElements {
		return fmt.Errorf("%w: more than %d elements", ErrTooManyElements, limits.MaxElements)
	}
	if len(el.Attr) > limits.MaxAttributes {
		return fmt.Errorf("%w: %d attributes on one element", ErrTooManyElements, len(el.Attr))
	}
	for i := range el.Attr {
		for j := i + 1; j < len(el.Attr); j++ {
			if el.Attr[i].Space == el.Attr[j].Space && el.Attr[i].Key == el.Attr[j].Key {
				return fmt.Errorf("%w: duplicate attribute %s", ErrNotXML, el.Attr[i].FullKey())
			}
		}
	}
	for _, tok := range el.Child {
		switch t := tok.(type) {
		case *etree.Element:
			if err := checkElement(t, limits, count); err != nil {
				return err
			}
		case *etree.Directive:
			return fmt.Errorf("%w: <!%.20s", ErrDTD, t.Data)
		case *etree.ProcInst:
			return fmt.Errorf("%w: <?%.20s", ErrDTD, t.Target)
		}
	}
	return nil
}

// envelopeOf checks the SOAP envelope shape.
func envelopeOf(doc *etree.Document, root *etree.Element) (*Envelope, error) {
	env := &Envelope{Doc: doc, Envelope: root}
	if root.Tag != "Envelope" {
		return nil, fmt.Errorf("%w: root element is %s", ErrNotEnvelope, root.Tag)
	}
	var ns string
	switch ns = root.NamespaceURI(); ns {
	case NSSOAP11:
		env.Version = SOAP11
	case NSSOAP12:
		env.Version = SOAP12
	default:
		return nil, fmt.Errorf("%w: unknown envelope namespace", ErrNotEnvelope)
	}
	for _, child := range root.ChildElements() {
		if child.NamespaceURI() != ns {
			if env.Version == SOAP12 {
				return nil, fmt.Errorf("%w: unexpected element %s in Envelope", ErrNotEnvelope, child.Tag)
			}
			continue // SOAP 1.1 allows trailing elements after Body
		}
		switch child.Tag {
		case "Header":
			if env.Header != nil || env.Body != nil {
				return nil, fmt.Errorf("%w: misplaced or repeated Header", ErrNotEnvelope)
			}
			env.Header = child
		case "Body":
			if env.Body != nil {
				return nil, ErrMultipleBodies
			}
			env.Body = child
		default:
			return nil, fmt.Errorf("%w: unexpected element %s in Envelope", ErrNotEnvelope, child.Tag)
		}
	}
	if env.Body == nil {
		return nil, fmt.Errorf("%w: no Body", ErrNotEnvelope)
	}
	return env, nil
}

// is reports whether el is the element {ns}local.
func is(el *etree.Element, ns, local string) bool {
	return el != nil && el.Tag == local && el.NamespaceURI() == ns
}

// DetectVersion reports the SOAP version of an envelope that failed to parse
// fully, from its root element alone, so a fault can be sent in the client's
// version. It returns SOAPUnknown when the message does not tell.
func DetectVersion(msg []byte) SOAPVersion {
	switch {
	case bytes.Contains(msg, []byte(NSSOAP12)):
		return SOAP12
	case bytes.Contains(msg, []byte(NSSOAP11)):
		return SOAP11
	}
	return SOAPUnknown
}
