package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/beevik/etree"
)

// Unsigned envelopes the golden files start from.
const (
	envelope11 = `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Body><ord:GetOrder><ord:ID>42</ord:ID><ord:Note xml:lang="en">rush &amp; "gift" &lt;wrap&gt;</ord:Note></ord:GetOrder></soapenv:Body></soapenv:Envelope>`

	envelope12 = `<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header/><env:Body><GetOrder xmlns="urn:example:orders"><ID>42</ID></GetOrder></env:Body></env:Envelope>`

	envelopeWSA = `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:ord="urn:example:orders"><soapenv:Header><wsa:To>https://orders.example.com/ws</wsa:To><wsa:Action>urn:example:orders:GetOrder</wsa:Action><wsa:MessageID>urn:uuid:6f1b3c2e-8d0a-4c1e-9b7f-0d3c1a2b4e5f</wsa:MessageID><wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo></soapenv:Header><soapenv:Body><ord:GetOrder><ord:ID>42</ord:ID></ord:GetOrder></soapenv:Body></soapenv:Envelope>`

	billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><lolz>&lol9;</lolz></soapenv:Body></soapenv:Envelope>
`
)

// largeEnvelope has a Body of about 1 MB with more than 100,000 elements.
func largeEnvelope() string {
	var b strings.Builder
	b.WriteString(`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Body><Batch xmlns="urn:example:orders">`)
	for i := 0; i < 11000; i++ {
		b.WriteString(`<L>`)
		for j := 0; j < 9; j++ {
			fmt.Fprintf(&b, "<v>%d</v>", (i*9+j)%97)
		}
		b.WriteString(`</L>`)
	}
	b.WriteString(`</Batch></soapenv:Body></soapenv:Envelope>`)
	return b.String()
}

// deepEnvelope nests n elements inside the Body.
func deepEnvelope(n int) string {
	return `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Body>` +
		strings.Repeat("<ord:n>", n) + "x" + strings.Repeat("</ord:n>", n) +
		`</soapenv:Body></soapenv:Envelope>`
}

const wssecNSWSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"

// attackerBody is the content an XSW attacker wants processed instead.
func attackerBody(d *doc) *etree.Element {
	b := etree.NewElement(d.Root().Space + ":Body")
	b.CreateElement("ord:DeleteAllOrders")
	return b
}

// swapBody puts attacker in the original Body's place and returns the original, detached.
func swapBody(d *doc, attacker *etree.Element) *etree.Element {
	orig := d.body()
	root := d.Root()
	idx := orig.Index()
	root.RemoveChildAt(idx)
	root.InsertChildAt(idx, attacker)
	return orig
}

func wrapper(parent *etree.Element) *etree.Element {
	return parent.CreateElement("ord:Wrapper")
}

func security(d *doc) *etree.Element { return d.find("Security") }

// xswVariants are XML Signature Wrapping attacks on the valid SOAP 1.1
// message: each leaves every digest and the signature intact.
func xswVariants(base []byte) ([]message, error) {
	cases := []struct {
		name string
		f    func(*doc) error
	}{
		{"xsw-body-in-header", func(d *doc) error {
			orig := swapBody(d, attackerBody(d))
			w := etree.NewElement("ord:Wrapper")
			d.header().InsertChildAt(0, w)
			w.AddChild(orig)
			return nil
		}},
		{"xsw-body-in-security", func(d *doc) error {
			orig := swapBody(d, attackerBody(d))
			wrapper(security(d)).AddChild(orig)
			return nil
		}},
		{"xsw-body-new-id", func(d *doc) error {
			a := attackerBody(d)
			a.CreateAttr("xmlns:wsu", wssecNSWSU)
			a.CreateAttr("wsu:Id", "id-attacker")
			orig := swapBody(d, a)
			wrapper(d.header()).AddChild(orig)
			return nil
		}},
		{"xsw-body-in-signature-object", func(d *doc) error {
			orig := swapBody(d, attackerBody(d))
			d.find("Signature").CreateElement("ds:Object").AddChild(orig)
			return nil
		}},
		{"xsw-body-in-body", func(d *doc) error {
			a := attackerBody(d)
			orig := swapBody(d, a)
			a.AddChild(orig)
			return nil
		}},
		{"xsw-timestamp", func(d *doc) error {
			ts := d.find("Timestamp")
			sec := ts.Parent()
			idx := ts.Index()
			sec.RemoveChildAt(idx)
			fresh := etree.NewElement("wsu:Timestamp")
			fresh.CreateElement("wsu:Created").SetText("2026-01-01T00:00:30.000Z")
			fresh.CreateElement("wsu:Expires").SetText("2026-01-01T00:05:30.000Z")
			sec.InsertChildAt(idx, fresh)
			// The attacker keeps the moved Timestamp namespace-well-formed.
			w := wrapper(d.header())
			w.CreateAttr("xmlns:wsu", wssecNSWSU)
			w.AddChild(ts)
			return nil
		}},
		{"xsw-id-attr", func(d *doc) error {
			id := wsuID(d.body())
			if id == "" {
				return errors.New("body has no wsu:Id")
			}
			a := attackerBody(d)
			a.CreateAttr("Id", id)
			orig := swapBody(d, a)
			wrapper(d.header()).AddChild(orig)
			return nil
		}},
	}
	var out []message
	for _, c := range cases {
		b, err := edit(base, c.f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		out = append(out, message{c.name, b})
	}
	return out, nil
}
