package main

import (
	"errors"
	"fmt"

	"github.com/beevik/etree"

	"wsgate/internal/pki"
	"wsgate/wssec"
)

// Attack messages of issue 11 ("forward only what was verified"): each is a
// validly signed SOAP 1.1 or 1.2 message (valid-soap11-rsa, valid-soap12-rsa,
// valid-wsa) with something added or changed outside what the signature
// covers. Every case is written once per SOAP version, NAME-11 and NAME-12.
// wssec/golden_test.go says what each must give: a sentinel, or (the
// sanitizing cases) exactly the envelope in testdata/wssec/forwarded/.

// Namespaces the attacks use.
const (
	nsSecext200207 = "http://schemas.xmlsoap.org/ws/2002/07/secext"
	nsSecext200204 = "http://schemas.xmlsoap.org/ws/2002/04/secext"
	nsSecext200306 = "http://schemas.xmlsoap.org/ws/2003/06/secext"
	nsXMLEnc       = "http://www.w3.org/2001/04/xmlenc#"
	nsSAML2        = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsSOAPEnc      = "http://schemas.xmlsoap.org/soap/encoding/"
	actorNext11    = "http://schemas.xmlsoap.org/soap/actor/next"
	roleNext12     = "http://www.w3.org/2003/05/soap-envelope/role/next"
	roleNone12     = "http://www.w3.org/2003/05/soap-envelope/role/none"
)

// foreign returns an unsigned element x:local in urn:example:attacker.
func foreign(local, text string) *etree.Element {
	el := etree.NewElement("x:" + local)
	el.CreateAttr("xmlns:x", "urn:example:attacker")
	if text != "" {
		el.SetText(text)
	}
	return el
}

// soapEl returns an element in the envelope's namespace, under its prefix.
func soapEl(d *doc, local string) *etree.Element {
	return etree.NewElement(d.Root().Space + ":" + local)
}

// headerBlock adds an unsigned header block as the Header's first child.
func headerBlock(d *doc, el *etree.Element) {
	d.header().InsertChildAt(0, el)
}

// rootChildAt inserts tok among Envelope's children: before the Header
// ("before"), between Header and Body ("between") or after Body ("after").
func rootChildAt(d *doc, where string, tok etree.Token) {
	root := d.Root()
	switch where {
	case "before":
		root.InsertChildAt(d.header().Index(), tok)
	case "between":
		root.InsertChildAt(d.body().Index(), tok)
	default:
		root.AddChild(tok)
	}
}

// mustUnderstandBlock is an unsigned header block with mustUnderstand
// (value v) and, when role is set, the version's actor or role attribute.
func mustUnderstandBlock(d *doc, v, role string) *etree.Element {
	el := foreign("Transfer", "to account 666")
	p := d.Root().Space
	el.CreateAttr(p+":mustUnderstand", v)
	if role != "" {
		name := "role"
		if d.Root().NamespaceURI() == wssec.NSSOAP11 {
			name = "actor"
		}
		el.CreateAttr(p+":"+name, role)
	}
	return el
}

// splitText replaces el's text with the pieces, a comment between each two.
func splitText(el *etree.Element, pieces ...string) error {
	if el == nil {
		return errors.New("element not found")
	}
	el.SetText("")
	for len(el.Child) > 0 {
		el.RemoveChildAt(0)
	}
	for i, p := range pieces {
		if i > 0 {
			el.CreateComment("")
		}
		el.CreateText(p)
	}
	return nil
}

type attackCase struct {
	name string
	f    func(*doc) error
}

func attackCases() []attackCase {
	return []attackCase{
		// Class 1: the envelope's shape.
		{"shape-element-before-header", func(d *doc) error {
			rootChildAt(d, "before", foreign("Order", "delete all"))
			return nil
		}},
		{"shape-element-between", func(d *doc) error {
			rootChildAt(d, "between", foreign("Order", "delete all"))
			return nil
		}},
		{"shape-element-after-body", func(d *doc) error {
			rootChildAt(d, "after", foreign("Order", "delete all"))
			return nil
		}},
		{"shape-nonamespace-body", func(d *doc) error {
			b := etree.NewElement("Body")
			b.CreateElement("DeleteAllOrders")
			rootChildAt(d, "between", b)
			return nil
		}},
		{"shape-foreign-body", func(d *doc) error {
			b := foreign("Body", "")
			b.CreateElement("x:DeleteAllOrders")
			rootChildAt(d, "between", b)
			return nil
		}},
		{"shape-multiref", func(d *doc) error {
			m := etree.NewElement("multiRef")
			m.CreateAttr("xmlns:soapenc", nsSOAPEnc)
			m.CreateAttr("id", "id0")
			m.CreateAttr("soapenc:root", "0")
			m.CreateElement("ID").SetText("43")
			rootChildAt(d, "after", m)
			return nil
		}},
		{"shape-text-in-envelope", func(d *doc) error {
			rootChildAt(d, "between", etree.NewText("DeleteAllOrders"))
			return nil
		}},
		{"shape-text-in-header", func(d *doc) error {
			d.header().InsertChildAt(0, etree.NewText("DeleteAllOrders"))
			return nil
		}},
		{"shape-second-header", func(d *doc) error {
			h := soapEl(d, "Header")
			h.AddChild(foreign("Role", "admin"))
			rootChildAt(d, "between", h)
			return nil
		}},
		{"shape-encodingstyle", func(d *doc) error {
			d.Root().CreateAttr(d.Root().Space+":encodingStyle", nsSOAPEnc)
			return nil
		}},

		// Class 3: look-alikes in unsigned headers.
		{"lookalike-soap-body-in-header", func(d *doc) error {
			w := foreign("Audit", "")
			b := w.CreateElement(d.Root().Space + ":Body")
			b.AddChild(foreign("DeleteAllOrders", ""))
			headerBlock(d, w)
			return nil
		}},
		{"lookalike-any-body-in-header", func(d *doc) error {
			w := foreign("Audit", "")
			w.CreateElement("x:Body").CreateElement("x:DeleteAllOrders")
			headerBlock(d, w)
			return nil
		}},
		{"lookalike-security-200207", securityIn(nsSecext200207)},
		{"lookalike-security-200204", securityIn(nsSecext200204)},
		{"lookalike-security-200306", securityIn(nsSecext200306)},
		{"lookalike-security-wsse11", securityIn(wssec.NSWSSE11)},
		{"lookalike-security-nested", func(d *doc) error {
			w := foreign("Audit", "")
			w.AddChild(lookalikeSecurity(wssec.NSWSSE))
			headerBlock(d, w)
			return nil
		}},
		{"lookalike-usernametoken-outside", func(d *doc) error {
			ut := etree.NewElement("wsse:UsernameToken")
			ut.CreateAttr("xmlns:wsse", wssec.NSWSSE)
			ut.CreateElement("wsse:Username").SetText("admin")
			headerBlock(d, ut)
			return nil
		}},
		{"lookalike-timestamp-outside", func(d *doc) error {
			ts := etree.NewElement("wsu:Timestamp")
			ts.CreateAttr("xmlns:wsu", wssec.NSWSU)
			ts.CreateElement("wsu:Created").SetText("2030-01-01T00:00:00.000Z")
			headerBlock(d, ts)
			return nil
		}},
		{"lookalike-timestamp-foreign-ns", func(d *doc) error {
			w := foreign("Audit", "")
			w.CreateElement("x:Timestamp").SetText("2030-01-01T00:00:00Z")
			headerBlock(d, w)
			return nil
		}},
		{"lookalike-action-nested", func(d *doc) error {
			w := foreign("Routing", "")
			w.CreateElement("x:Action").SetText("urn:example:orders:DeleteAllOrders")
			headerBlock(d, w)
			return nil
		}},
		{"lookalike-action-foreign-ns", func(d *doc) error {
			headerBlock(d, foreign("Action", "urn:example:orders:DeleteAllOrders"))
			return nil
		}},
		{"mustunderstand-unknown", func(d *doc) error {
			headerBlock(d, mustUnderstandBlock(d, "1", ""))
			return nil
		}},
		{"mustunderstand-true", func(d *doc) error {
			headerBlock(d, mustUnderstandBlock(d, "true", ""))
			return nil
		}},
		{"mustunderstand-next", func(d *doc) error {
			role := roleNext12
			if d.Root().NamespaceURI() == wssec.NSSOAP11 {
				role = actorNext11
			}
			headerBlock(d, mustUnderstandBlock(d, "1", role))
			return nil
		}},
		{"mustunderstand-other-role", func(d *doc) error {
			headerBlock(d, mustUnderstandBlock(d, "1", "urn:example:audit"))
			return nil
		}},
		// SOAP 1.2's role none is processed by no node: it may be dropped.
		// SOAP 1.1 has no such role: there it is just another actor.
		{"mustunderstand-role-none", func(d *doc) error {
			headerBlock(d, mustUnderstandBlock(d, "1", roleNone12))
			return nil
		}},
		{"duplicate-xml-id", func(d *doc) error {
			a := foreign("Audit", "copy")
			a.CreateAttr("xml:id", wsuID(d.body()))
			headerBlock(d, a)
			return nil
		}},
		{"duplicate-lowercase-id", func(d *doc) error {
			a := foreign("Audit", "copy")
			a.CreateAttr("id", wsuID(d.body()))
			headerBlock(d, a)
			return nil
		}},
		{"duplicate-id-in-body", func(d *doc) error {
			a := foreign("Note", "copy")
			a.CreateAttr("x:ID", wsuID(d.body()))
			d.body().AddChild(a) // breaks the Body digest too; the ID check comes first
			return nil
		}},

		// Class 6: Security content wssec does not process.
		{"security-encryptedkey", securityChild(func() *etree.Element {
			ek := etree.NewElement("xenc:EncryptedKey")
			ek.CreateAttr("xmlns:xenc", nsXMLEnc)
			ek.CreateElement("xenc:EncryptionMethod").CreateAttr("Algorithm", nsXMLEnc+"rsa-oaep-mgf1p")
			ek.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText("AAAA")
			return ek
		})},
		{"security-referencelist", securityChild(func() *etree.Element {
			rl := etree.NewElement("xenc:ReferenceList")
			rl.CreateAttr("xmlns:xenc", nsXMLEnc)
			rl.CreateElement("xenc:DataReference").CreateAttr("URI", "#ED-1")
			return rl
		})},
		{"security-encrypteddata", securityChild(func() *etree.Element {
			ed := etree.NewElement("xenc:EncryptedData")
			ed.CreateAttr("xmlns:xenc", nsXMLEnc)
			ed.CreateAttr("Id", "ED-1")
			ed.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText("AAAA")
			return ed
		})},
		{"security-saml-assertion", securityChild(func() *etree.Element {
			a := etree.NewElement("saml2:Assertion")
			a.CreateAttr("xmlns:saml2", nsSAML2)
			a.CreateAttr("ID", "_a1")
			a.CreateAttr("Version", "2.0")
			a.CreateElement("saml2:Subject").CreateElement("saml2:NameID").SetText("admin")
			return a
		})},
		{"security-signatureconfirmation", securityChild(func() *etree.Element {
			sc := etree.NewElement("wsse11:SignatureConfirmation")
			sc.CreateAttr("xmlns:wsse11", wssec.NSWSSE11)
			sc.CreateAttr("Value", "AAAA")
			return sc
		})},
		{"security-unknown-element", securityChild(func() *etree.Element {
			return foreign("Role", "admin")
		})},
		{"security-timestamp-foreign-ns", securityChild(func() *etree.Element {
			return foreign("Timestamp", "2030-01-01T00:00:00Z")
		})},

		{"security-signature-object", func(d *doc) error {
			obj := d.find("Signature").CreateElement("ds:Object")
			obj.AddChild(foreign("Role", "admin"))
			return nil
		}},

		// Sanitized: verified, and forwarded without what was not verified.
		{"sanitize-comment-in-text", func(d *doc) error {
			return splitText(d.find("ID"), "4", "2")
		}},
		{"sanitize-cdata", func(d *doc) error {
			id := d.find("ID")
			if id == nil {
				return errors.New("no ID")
			}
			id.SetText("")
			for len(id.Child) > 0 {
				id.RemoveChildAt(0)
			}
			id.CreateCData("4")
			id.CreateText("2")
			return nil
		}},
		{"sanitize-comments-everywhere", func(d *doc) error {
			d.InsertChildAt(0, etree.NewComment(" before "))
			rootChildAt(d, "before", etree.NewComment(" in Envelope "))
			d.header().InsertChildAt(0, etree.NewComment(" in Header "))
			security(d).InsertChildAt(0, etree.NewComment(" in Security "))
			d.body().InsertChildAt(0, etree.NewComment(" in Body "))
			d.AddChild(etree.NewComment(" after "))
			return nil
		}},
		{"sanitize-unsigned-header", func(d *doc) error {
			headerBlock(d, foreign("Role", "admin"))
			headerBlock(d, mustUnderstandBlock(d, "0", ""))
			return nil
		}},
		{"sanitize-envelope-attributes", func(d *doc) error {
			d.Root().CreateAttr("xmlns:x", "urn:example:attacker")
			d.Root().CreateAttr("x:role", "admin")
			d.header().CreateAttr("x:role", "admin")
			return nil
		}},
		{"sanitize-unreferenced-bst", func(d *doc) error {
			bst := d.find("BinarySecurityToken")
			if bst == nil {
				return errors.New("no BinarySecurityToken")
			}
			extra := bst.Copy()
			for i := range extra.Attr {
				if extra.Attr[i].Key == "Id" {
					extra.Attr[i].Value = "X509-attacker"
				}
			}
			security(d).InsertChildAt(0, extra)
			return nil
		}},
	}
}

// securityIn adds a Security header block in namespace ns, with a
// UsernameToken, before the processed one.
func securityIn(ns string) func(*doc) error {
	return func(d *doc) error {
		headerBlock(d, lookalikeSecurity(ns))
		return nil
	}
}

func lookalikeSecurity(ns string) *etree.Element {
	sec := etree.NewElement("sx:Security")
	sec.CreateAttr("xmlns:sx", ns)
	ut := sec.CreateElement("sx:UsernameToken")
	ut.CreateElement("sx:Username").SetText("admin")
	ut.CreateElement("sx:Password").SetText("admin")
	return sec
}

// securityChild adds the element as the processed Security's first child.
func securityChild(mk func() *etree.Element) func(*doc) error {
	return func(d *doc) error {
		security(d).InsertChildAt(0, mk())
		return nil
	}
}

// addressingCases are built from valid-wsa (SOAP 1.1, W3C 2005/08) and
// its copy in SOAP 1.2.
func addressingCases(id *pki.Identity) []attackCase {
	return []attackCase{
		// A second Action in the member-submission namespace, unsigned.
		{"wsa-200408-unsigned", func(d *doc) error {
			a := etree.NewElement("wsa04:Action")
			a.CreateAttr("xmlns:wsa04", wssec.NSWSA200408)
			a.SetText("urn:example:orders:DeleteAllOrders")
			headerBlock(d, a)
			return nil
		}},
		{"wsa-second-action", func(d *doc) error {
			a := etree.NewElement("wsa:Action")
			a.SetText("urn:example:orders:DeleteAllOrders")
			d.header().AddChild(a)
			return nil
		}},
		// Every header in the member-submission namespace, signed.
		{"valid-wsa-200408", func(d *doc) error {
			return rebindAddressing(d, wssec.NSWSA200408, id)
		}},
		{"valid-wsa-200403", func(d *doc) error {
			return rebindAddressing(d, wssec.NSWSA200403, id)
		}},
		// The same with its Action left unsigned.
		{"wsa-200408-action-unsigned", func(d *doc) error {
			if err := d.dropReference(d.find("Action")); err != nil {
				return err
			}
			return rebindAddressing(d, wssec.NSWSA200408, id)
		}},
	}
}

// rebindAddressing moves the wsa prefix to namespace ns and signs again.
func rebindAddressing(d *doc, ns string, id *pki.Identity) error {
	for i := range d.Root().Attr {
		if a := &d.Root().Attr[i]; a.Space == "xmlns" && a.Key == "wsa" {
			a.Value = ns
			return d.resign(id)
		}
	}
	return errors.New("no xmlns:wsa on Envelope")
}

// attackMessages applies every case to each base message, NAME-11 and NAME-12.
func attackMessages(bases map[string][]byte, cases []attackCase) ([]message, error) {
	var out []message
	for _, c := range cases {
		for _, v := range []string{"11", "12"} {
			b, err := edit(bases[v], c.f)
			if err != nil {
				return nil, fmt.Errorf("%s-%s: %w", c.name, v, err)
			}
			out = append(out, message{c.name + "-" + v, b})
		}
	}
	return out, nil
}
