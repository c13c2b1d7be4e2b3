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
type idIndex struct {
	byID   map[string]*etree.Element
	idLike map[string]int // value -> elements carrying it as wsu:Id, Id, ID or AssertionID
	dupWSU string         // first wsu:Id value seen twice, if any
}

func buildIDIndex(root *etree.Element) *idIndex {
	ix := &idIndex{byID: make(map[string]*etree.Element), idLike: make(map[string]int)}
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		for i := range el.Attr {
			a := &el.Attr[i]
			switch a.Key {
			case "Id", "ID", "AssertionID":
			default:
				continue
			}
			ix.idLike[a.Value]++
			if a.Space != "" {
				if a.Key == "Id" && a.NamespaceURI() == NSWSU {
					if _, dup := ix.byID[a.Value]; dup && ix.dupWSU == "" {
						ix.dupWSU = a.Value
					}
					ix.byID[a.Value] = el
				}
				continue
			}
			if referenceableUnqualified(el, a.Key) {
				if _, taken := ix.byID[a.Value]; !taken {
					ix.byID[a.Value] = el
				}
			}
		}
		for _, child := range el.ChildElements() {
			walk(child)
		}
	}
	walk(root)
	return ix
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
	if ix.idLike[id] > 1 {
		return nil, fmt.Errorf("%w: %.64q", ErrDuplicateID, id)
	}
	el, ok := ix.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: #%.64s", ErrReferenceNotFound, id)
	}
	return el, nil
}
