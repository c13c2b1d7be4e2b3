package bridge

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/beevik/etree"

	"wsgate/wssec"
)

// Object is a JSON object that keeps its keys in document order (a Go map
// would sort them).
type Object []Member

// Member is one key of an Object.
type Member struct {
	Key   string
	Value any
}

// MarshalJSON writes the members in order.
func (o Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.Key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(m.Value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Get returns the value of key and whether it is present.
func (o Object) Get(key string) (any, bool) {
	for _, m := range o {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

// BodyJSON maps the children of a SOAP Body to JSON; the Body's own
// attributes and text are dropped. See ElementJSON for the mapping.
func BodyJSON(body *etree.Element) Object {
	return children(body, nil)
}

// ElementJSON maps one element's content to JSON:
//
//   - an element becomes a key named by its local name (prefix and
//     namespace dropped);
//   - sibling elements with the same local name become one key whose value
//     is an array, in document order (a single element is never an array);
//   - an element with neither attributes nor child elements is its text,
//     exactly as sent (a string, never a number; "" when empty);
//   - any other element is an object: "@name" for each attribute (local
//     name; namespace declarations dropped), its child elements as keys, and
//     "#text" holding its character data when that is not only whitespace;
//   - comments are dropped; CDATA is text. (A response with a processing
//     instruction or a DOCTYPE never gets here: wssec.ParseEnvelope refuses it.)
//
// Keys keep their first-appearance order. What is lost: namespaces (two
// elements with the same local name in different namespaces merge like
// repeated ones), the interleaving of differently named siblings, and the
// position of text among child elements.
func ElementJSON(el *etree.Element) any {
	var attrs Object
	repeated := map[string]bool{}
	for _, a := range el.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		attrs = add(attrs, repeated, "@"+a.Key, a.Value)
	}
	text := textOf(el)
	if len(attrs) == 0 && len(el.ChildElements()) == 0 {
		return text
	}
	obj := children(el, attrs)
	if strings.TrimSpace(text) != "" {
		obj = append(obj, Member{Key: "#text", Value: text})
	}
	return obj
}

// children appends el's child elements to obj.
func children(el *etree.Element, obj Object) Object {
	repeated := map[string]bool{}
	for _, c := range el.ChildElements() {
		obj = add(obj, repeated, c.Tag, ElementJSON(c))
	}
	if obj == nil {
		obj = Object{} // {} rather than null
	}
	return obj
}

// add sets key to v, turning a repeated key into an array.
func add(obj Object, repeated map[string]bool, key string, v any) Object {
	for i := range obj {
		if obj[i].Key != key {
			continue
		}
		if repeated[key] {
			obj[i].Value = append(obj[i].Value.([]any), v)
		} else {
			obj[i].Value = []any{obj[i].Value, v}
			repeated[key] = true
		}
		return obj
	}
	return append(obj, Member{Key: key, Value: v})
}

// textOf concatenates el's character data (CDATA included), in order.
func textOf(el *etree.Element) string {
	var b strings.Builder
	for _, t := range el.Child {
		if cd, ok := t.(*etree.CharData); ok {
			b.WriteString(cd.Data)
		}
	}
	return b.String()
}

// Fault is a SOAP Fault as the bridge reports it.
type Fault struct {
	// Code is the 1.1 faultcode or the 1.2 Code/Value, as written (a QName).
	Code string
	// Subcodes are the 1.2 Subcode/Value chain, outermost first.
	Subcodes []string
	// String is the 1.1 faultstring or the first 1.2 Reason/Text.
	String string
	// Detail is the 1.1 detail or 1.2 Detail mapped by ElementJSON; nil when absent.
	Detail any
}

// JSON is the fault's JSON object: code, string, detail (and subcode when the
// SOAP 1.2 fault has any).
func (f *Fault) JSON() Object {
	o := Object{{"code", f.Code}}
	if len(f.Subcodes) > 0 {
		o = append(o, Member{"subcode", f.Subcodes})
	}
	return append(o, Member{"string", f.String}, Member{"detail", f.Detail})
}

// FaultOf returns the Fault when env's Body holds one, else nil.
func FaultOf(env *wssec.Envelope) *Fault {
	// A Fault is the Body's first (and only) child element.
	kids := env.Body.ChildElements()
	if len(kids) == 0 || kids[0].Tag != "Fault" || kids[0].NamespaceURI() != env.Envelope.NamespaceURI() {
		return nil
	}
	fe := kids[0]
	f := &Fault{}
	if env.Version == wssec.SOAP12 {
		ns := wssec.NSSOAP12
		if code := child(fe, ns, "Code"); code != nil {
			f.Code = strings.TrimSpace(textOf(child(code, ns, "Value")))
			for sc := child(code, ns, "Subcode"); sc != nil; sc = child(sc, ns, "Subcode") {
				f.Subcodes = append(f.Subcodes, strings.TrimSpace(textOf(child(sc, ns, "Value"))))
			}
		}
		if reason := child(fe, ns, "Reason"); reason != nil {
			f.String = textOf(child(reason, ns, "Text"))
		}
		if d := child(fe, ns, "Detail"); d != nil {
			f.Detail = detailJSON(d)
		}
		return f
	}
	// SOAP 1.1: faultcode, faultstring and detail are unqualified, though
	// some stacks qualify them; match the local name.
	f.Code = strings.TrimSpace(textOf(child(fe, "*", "faultcode")))
	f.String = textOf(child(fe, "*", "faultstring"))
	if d := child(fe, "*", "detail"); d != nil {
		f.Detail = detailJSON(d)
	}
	return f
}

// detailJSON maps a detail element: its children as an object, or its text
// when it has none.
func detailJSON(d *etree.Element) any {
	if len(d.ChildElements()) == 0 {
		return textOf(d)
	}
	return children(d, nil)
}

// child returns el's first child element {ns}local ("*" matches any
// namespace); nil when el is nil or has none.
func child(el *etree.Element, ns, local string) *etree.Element {
	if el == nil {
		return nil
	}
	for _, c := range el.ChildElements() {
		if c.Tag == local && (ns == "*" || c.NamespaceURI() == ns) {
			return c
		}
	}
	return nil
}
