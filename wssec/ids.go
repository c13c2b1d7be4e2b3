package wssec

import (
	"fmt"

	"github.com/beevik/etree"
)

// Namespaces whose elements carry an unqualified Id that XML Signature may
// reference (ds:Signature, ds:Object, xenc:EncryptedData, ...).
const (
	nsXMLEnc = "http://www.w3.org/2001/04/xmlenc#"
	nsSAML2  = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsSAML1  = "urn:oasis:names:tc:SAML:1.0:assertion"
)

// idIndex maps the IDs a Reference may name to their elements. It is built
// over the whole document in one pass, so an ID cannot hide in an unexpected
// place, and it also records every ID-like attribute value, so that a
// referenced ID that appears twice, in any spelling, fails the message.
//
// A message has a handful of IDs: they are kept in a slice searched
// linearly, with a map over it once there are more than maxLinearIDs.
type idIndex struct {
	ids    []idEntry
	byVal  map[string]int // value -> index in ids, once ids is long
	dupWSU string         // first wsu:Id value seen twice, if any
	arr    [8]idEntry
}

// idEntry is one ID-like attribute value.
type idEntry struct {
	value string
	el    *etree.Element // the element a reference to it resolves to; nil if none may
	count int            // elements carrying it as wsu:Id, Id, ID or AssertionID
}

const maxLinearIDs = 16

func buildIDIndex(root *etree.Element) *idIndex {
	ix := &idIndex{}
	ix.ids = ix.arr[:0]
	ix.index(root)
	_ = ix.walk(root, nil)
	return ix
}

// indexEnvelope builds the ID index of env and, in the same walk, refuses
// every element a backend that finds things by name could take for the
// real one (see place).
func indexEnvelope(env *Envelope, security *etree.Element) (*idIndex, error) {
	ix := &idIndex{}
	if err := ix.indexEnvelope(env, security); err != nil {
		return nil, err
	}
	return ix, nil
}

// indexEnvelope is indexEnvelope into the zero idIndex ix.
func (ix *idIndex) indexEnvelope(env *Envelope, security *etree.Element) error {
	ix.ids = ix.arr[:0]
	ix.index(env.Envelope)
	if env.Header != nil {
		ix.index(env.Header)
		if err := ix.walk(env.Header, &placement{header: env.Header, security: security}); err != nil {
			return err
		}
	}
	ix.index(env.Body)
	return ix.walk(env.Body, &placement{})
}

// placement is where a walk is: in the Header (header set) or the Body.
type placement struct {
	header, security *etree.Element
}

// place refuses el if it is a look-alike outside its place:
//   - anywhere: an Envelope, Header or Body in a SOAP envelope namespace
//     (both versions) other than the envelope's own;
//   - in the Header: any element named Body, whatever its namespace (a
//     backend taking the first element named Body takes it); any Security
//     other than the processed one (another actor's, a pre-OASIS or other
//     namespace, nested); a UsernameToken, Timestamp or BinarySecurityToken,
//     in any namespace, that is not a child of the processed Security; an
//     Action that is not a WS-Addressing header block.
//
// Payload elements in the Body may carry these names in their own
// namespaces: the Body is signed, and found by its place, not its name.
func (pl *placement) place(el *etree.Element) error {
	switch el.Tag {
	case "Envelope", "Header", "Body":
		if pl.header != nil && el.Tag == "Body" {
			return fmt.Errorf("%w: an element named Body in the Header", ErrLookAlike)
		}
		if ns := el.NamespaceURI(); ns == NSSOAP11 || ns == NSSOAP12 {
			return fmt.Errorf("%w: soap:%s inside the envelope", ErrLookAlike, el.Tag)
		}
	case "Security":
		if pl.header != nil && el != pl.security {
			return fmt.Errorf("%w: a second Security element in the Header", ErrLookAlike)
		}
	case "UsernameToken", "Timestamp", "BinarySecurityToken":
		if pl.header != nil && (pl.security == nil || el.Parent() != pl.security) {
			return fmt.Errorf("%w: %s outside the Security header", ErrLookAlike, el.Tag)
		}
	case "Action":
		if pl.header != nil && (el.Parent() != pl.header || !isAddressing(el.NamespaceURI())) {
			return fmt.Errorf("%w: an Action element that is not a WS-Addressing header", ErrLookAlike)
		}
	}
	return nil
}

// find returns the index of value in ix.ids, or -1.
func (ix *idIndex) find(value string) int {
	if ix.byVal != nil {
		if i, ok := ix.byVal[value]; ok {
			return i
		}
		return -1
	}
	for i := range ix.ids {
		if ix.ids[i].value == value {
			return i
		}
	}
	return -1
}

// entry returns the index of value's entry, adding one if needed.
func (ix *idIndex) entry(value string) int {
	if i := ix.find(value); i >= 0 {
		return i
	}
	ix.ids = append(ix.ids, idEntry{value: value})
	i := len(ix.ids) - 1
	switch {
	case ix.byVal != nil:
		ix.byVal[value] = i
	case len(ix.ids) > maxLinearIDs:
		ix.byVal = make(map[string]int, 2*len(ix.ids))
		for j := range ix.ids {
			ix.byVal[ix.ids[j].value] = j
		}
	}
	return i
}

// walk indexes el's descendants, checking each one's place when pl is set.
// It reads el.Child directly rather than through etree's ChildElements,
// which allocates a slice per element.
func (ix *idIndex) walk(el *etree.Element, pl *placement) error {
	for _, t := range el.Child {
		if child, ok := t.(*etree.Element); ok {
			if pl != nil {
				if err := pl.place(child); err != nil {
					return err
				}
			}
			ix.index(child)
			if err := ix.walk(child, pl); err != nil {
				return err
			}
		}
	}
	return nil
}

// index records el's ID-like attributes: wsu:Id, Id, ID, id and AssertionID
// in any namespace (xml:id included), so that a referenced value that any
// of them repeats is refused.
func (ix *idIndex) index(el *etree.Element) {
	for i := range el.Attr {
		a := &el.Attr[i]
		switch a.Key {
		case "Id", "ID", "id", "AssertionID":
		default:
			continue
		}
		if a.Space == "xmlns" {
			continue
		}
		e := ix.entry(a.Value)
		ix.ids[e].count++
		if a.Space != "" {
			if a.Key == "Id" && a.NamespaceURI() == NSWSU {
				if ix.ids[e].el != nil && ix.dupWSU == "" {
					ix.dupWSU = a.Value
				}
				ix.ids[e].el = el
			}
			continue
		}
		if referenceableUnqualified(el, a.Key) && ix.ids[e].el == nil {
			ix.ids[e].el = el
		}
	}
}

// referenceableUnqualified reports whether an unqualified ID attribute on el
// is an ID by its schema. Plain "Id" on arbitrary payload elements is not.
func referenceableUnqualified(el *etree.Element, key string) bool {
	ns := el.NamespaceURI()
	switch {
	case key == "Id" && (ns == NSDSig || ns == nsXMLEnc):
		return true
	case key == "ID" && ns == nsSAML2 && el.Tag == "Assertion":
		return true
	case key == "AssertionID" && ns == nsSAML1 && el.Tag == "Assertion":
		return true
	}
	return false
}

// lookup resolves a same-document reference, refusing IDs that are not
// unique across every ID-like attribute of the document.
func (ix *idIndex) lookup(id string) (*etree.Element, error) {
	if ix.dupWSU != "" {
		return nil, fmt.Errorf("%w: %.64q", ErrDuplicateID, ix.dupWSU)
	}
	i := ix.find(id)
	if i >= 0 && ix.ids[i].count > 1 {
		return nil, fmt.Errorf("%w: %.64q", ErrDuplicateID, id)
	}
	if i < 0 || ix.ids[i].el == nil {
		return nil, fmt.Errorf("%w: #%.64s", ErrReferenceNotFound, id)
	}
	return ix.ids[i].el, nil
}
