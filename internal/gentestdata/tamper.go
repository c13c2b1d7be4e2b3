package main

import (
	"crypto"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/beevik/etree"

	"wsgate/internal/pki"
	"wsgate/wssec"
)

// Algorithm URIs the generator writes, some of them deliberately outside
// wsgate's allow-list.
const (
	algRSASHA1         = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	algRSASHA256       = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	algHMACSHA256      = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
	algSHA1            = "http://www.w3.org/2000/09/xmldsig#sha1"
	algSHA256          = "http://www.w3.org/2001/04/xmlenc#sha256"
	algMD5             = "http://www.w3.org/2001/04/xmldsig-more#md5"
	algExcC14N         = "http://www.w3.org/2001/10/xml-exc-c14n#"
	algExcC14NComments = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
)

// hmacKey signs the hmac golden file; it only has to be well-formed.
var hmacKey = []byte("wsgate golden hmac key")

func asSigner(key any) (crypto.Signer, error) {
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", key)
	}
	return s, nil
}

// parseLoose parses an envelope without wssec's limits, so the generator
// can sign messages (deep, large) that the verifier is meant to refuse.
func parseLoose(msg string) (*wssec.Envelope, error) {
	d := etree.NewDocument()
	if err := d.ReadFromString(msg); err != nil {
		return nil, err
	}
	root := d.Root()
	env := &wssec.Envelope{Doc: d, Envelope: root}
	for _, c := range root.ChildElements() {
		switch c.Tag {
		case "Header":
			env.Header = c
		case "Body":
			env.Body = c
		}
	}
	if env.Body == nil {
		return nil, errors.New("no Body")
	}
	return env, nil
}

// doc is a signed message opened for tampering.
type doc struct{ *etree.Document }

func edit(signed []byte, f func(*doc) error) ([]byte, error) {
	d := etree.NewDocument()
	if err := d.ReadFromBytes(signed); err != nil {
		return nil, err
	}
	if err := f(&doc{d}); err != nil {
		return nil, err
	}
	d.WriteSettings = etree.WriteSettings{CanonicalAttrVal: true, CanonicalText: true}
	return d.WriteToBytes()
}

func (d *doc) root() *etree.Element { return d.Root() }

func (d *doc) child(local string) *etree.Element {
	for _, c := range d.Root().ChildElements() {
		if c.Tag == local {
			return c
		}
	}
	return nil
}

func (d *doc) header() *etree.Element { return d.child("Header") }
func (d *doc) body() *etree.Element   { return d.child("Body") }

// find returns the first element, in document order, with this local name.
func (d *doc) find(local string) *etree.Element {
	var walk func(*etree.Element) *etree.Element
	walk = func(e *etree.Element) *etree.Element {
		if e.Tag == local {
			return e
		}
		for _, c := range e.ChildElements() {
			if r := walk(c); r != nil {
				return r
			}
		}
		return nil
	}
	return walk(d.Root())
}

// byID returns the first element whose Id attribute (any prefix) is id.
func (d *doc) byID(id string) *etree.Element {
	var walk func(*etree.Element) *etree.Element
	walk = func(e *etree.Element) *etree.Element {
		for _, a := range e.Attr {
			if a.Key == "Id" && a.Value == id {
				return e
			}
		}
		for _, c := range e.ChildElements() {
			if r := walk(c); r != nil {
				return r
			}
		}
		return nil
	}
	return walk(d.Root())
}

func wsuID(el *etree.Element) string {
	if el == nil {
		return ""
	}
	for _, a := range el.Attr {
		if a.Key == "Id" && a.Space != "" {
			return a.Value
		}
	}
	return ""
}

func setText(el *etree.Element, text string) error {
	if el == nil {
		return errors.New("element not found")
	}
	el.SetText(text)
	return nil
}

// flipBase64 flips one bit of the element's base64 content.
func flipBase64(el *etree.Element) error {
	if el == nil {
		return errors.New("element not found")
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text()))
	if err != nil {
		return err
	}
	b[len(b)/2] ^= 0x01
	el.SetText(base64.StdEncoding.EncodeToString(b))
	return nil
}

// dropReference removes the ds:Reference that points at el.
func (d *doc) dropReference(el *etree.Element) error {
	id := wsuID(el)
	si := d.find("SignedInfo")
	for _, r := range si.ChildElements() {
		if r.Tag == "Reference" && r.SelectAttrValue("URI", "") == "#"+id {
			si.RemoveChild(r)
			return nil
		}
	}
	return fmt.Errorf("no reference to %q", id)
}

// resign recomputes every reference digest and the SignatureValue with
// whatever algorithms SignedInfo now names (including ones wssec refuses).
func (d *doc) resign(id *pki.Identity) error {
	si := d.find("SignedInfo")
	for _, r := range si.ChildElements() {
		if r.Tag != "Reference" {
			continue
		}
		uri := r.SelectAttrValue("URI", "")
		target := d.byID(strings.TrimPrefix(uri, "#"))
		if target == nil {
			return fmt.Errorf("reference %q does not resolve", uri)
		}
		tr := r.FindElement("./Transforms/Transform")
		canon, err := wssec.Canonicalize(target, prefixList(tr), false)
		if err != nil {
			return err
		}
		var h hash.Hash
		switch alg := r.SelectElement("DigestMethod").SelectAttrValue("Algorithm", ""); alg {
		case algSHA1:
			h = sha1.New()
		case algSHA256:
			h = sha256.New()
		case algMD5:
			h = md5.New()
		default:
			return fmt.Errorf("digest %q", alg)
		}
		h.Write(canon)
		r.SelectElement("DigestValue").SetText(base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	cm := si.SelectElement("CanonicalizationMethod")
	canon, err := wssec.Canonicalize(si, prefixList(cm), cm.SelectAttrValue("Algorithm", "") == algExcC14NComments)
	if err != nil {
		return err
	}
	var value []byte
	switch alg := si.SelectElement("SignatureMethod").SelectAttrValue("Algorithm", ""); alg {
	case algHMACSHA256:
		m := hmac.New(sha256.New, hmacKey)
		m.Write(canon)
		value = m.Sum(nil)
	case algRSASHA256:
		sum := sha256.Sum256(canon)
		value, err = id.Key.Sign(rand.Reader, sum[:], crypto.SHA256)
	case algRSASHA1:
		sum := sha1.Sum(canon)
		value, err = id.Key.Sign(rand.Reader, sum[:], crypto.SHA1)
	default:
		return fmt.Errorf("signature method %q", alg)
	}
	if err != nil {
		return err
	}
	d.find("SignatureValue").SetText(base64.StdEncoding.EncodeToString(value))
	return nil
}

func prefixList(method *etree.Element) string {
	if method == nil {
		return ""
	}
	if in := method.SelectElement("InclusiveNamespaces"); in != nil {
		return in.SelectAttrValue("PrefixList", "")
	}
	return ""
}
