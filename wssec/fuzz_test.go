package wssec

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

func addGoldenSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "wssec", "*.xml"))
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil && len(data) < 64<<10 {
			f.Add(data)
		}
	}
}

// FuzzParseEnvelope looks for panics and hangs in the hardened parser, and
// checks that a recycled arena builds the same tree as a fresh one.
func FuzzParseEnvelope(f *testing.F) {
	addGoldenSeeds(f)
	f.Add([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`))
	reused := new(arena)
	f.Fuzz(func(t *testing.T, msg []byte) {
		env, err := ParseEnvelope(msg, Limits{})
		if err == nil && (env.Body == nil || env.Version == SOAPUnknown) {
			t.Fatal("accepted an envelope without a Body or version")
		}
		env.Release()
		sameTree(t, string(msg), reused)
		reused.reset()
	})
}

// FuzzVerify looks for panics in verification, and checks the invariant
// that anything accepted has its real Body covered by the signature.
func FuzzVerify(f *testing.F) {
	addGoldenSeeds(f)
	trust := readPEMCerts(f, "trust.pem", "partner-rsa.pem")
	f.Fuzz(func(t *testing.T, msg []byte) {
		v := &Verifier{
			Policy: Policy{RequireSigned: []Part{PartBody, PartTimestamp}},
			Trust:  trust,
			Now:    fixedNow,
		}
		res, err := v.Verify(context.Background(), msg)
		if err != nil {
			return
		}
		if res.Signer == nil || res.Body == nil || res.Body.Parent() != res.Envelope.Envelope {
			t.Fatal("accepted a message without a signer or with a detached Body")
		}
	})
}

// forwardBases are validly signed golden messages FuzzForwardedDifferential
// injects fragments into; users marks those carrying a UsernameToken.
var forwardBases = []struct {
	file  string
	users bool
}{
	{"valid-soap11-rsa", false},
	{"valid-soap12-rsa", false},
	{"valid-wsa", false},
	{"valid-wsa-200408-12", false},
	{"valid-usernametoken-text", true},
	{"valid-soap11-ecdsa", false},
}

// forwardFragments seed the fragments injected: look-alikes, comments,
// CDATA, text, headers (allowed, unknown, mustUnderstand), Security content.
var forwardFragments = []string{
	"",
	" \n\t",
	"<!-- c -->",
	"<![CDATA[4]]>",
	"<![CDATA[]]>",
	"text",
	`<x:Body xmlns:x="urn:example:attacker"><x:DeleteAllOrders/></x:Body>`,
	`<Body><DeleteAllOrders/></Body>`,
	`<a:Allowed xmlns:a="urn:example:allowed">ok</a:Allowed>`,
	`<a:Allowed xmlns:a="urn:example:allowed"><b:Body xmlns:b="urn:b">x</b:Body></a:Allowed>`,
	`<a:Allowed xmlns:a="urn:example:allowed"><!--x-->y<![CDATA[z]]></a:Allowed>`,
	`<x:Role xmlns:x="urn:example:attacker">admin</x:Role>`,
	`<wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">urn:evil</wsa:Action>`,
	`<w:Action xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing">urn:evil</w:Action>`,
	`<a:Allowed xmlns:a="urn:example:allowed"><a:Action>urn:evil</a:Action></a:Allowed>`,
	`<s:Security xmlns:s="http://schemas.xmlsoap.org/ws/2002/07/secext"><s:UsernameToken/></s:Security>`,
	`<wsse:UsernameToken xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:Username>admin</wsse:Username></wsse:UsernameToken>`,
	`<xenc:EncryptedKey xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"/>`,
	`<x:Transfer xmlns:x="urn:example:attacker" soapenv:mustUnderstand="1">666</x:Transfer>`,
	`<x:Transfer xmlns:x="urn:example:attacker" env:mustUnderstand="true" env:role="http://www.w3.org/2003/05/soap-envelope/role/none">666</x:Transfer>`,
	`<a:Allowed xmlns:a="urn:example:allowed" xml:id="id-0004"/>`,
	`<wsse:BinarySecurityToken xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">AAAA</wsse:BinarySecurityToken>`,
	"&#x9;&amp;\r\n",
}

// injectionPoints are byte offsets in msg outside what its signature
// covers, or in signed text where only comments and CDATA keep the digest:
// after the Envelope start tag, inside the Header at both ends, between
// Header and Body, after Body, inside Security at both ends, before the
// Timestamp, inside the ID's and the wsa:Action's text, at the end of the
// Body.
func injectionPoints(msg string) []int {
	var pts []int
	add := func(i int) {
		if i >= 0 && i <= len(msg) {
			pts = append(pts, i)
		}
	}
	after := func(sub string) int {
		if i := strings.Index(msg, sub); i >= 0 {
			if j := strings.IndexByte(msg[i:], '>'); j >= 0 {
				return i + j + 1
			}
		}
		return -1
	}
	before := func(sub string) int { return strings.Index(msg, sub) }
	prefix := ""
	if i := strings.Index(msg, ":Envelope"); i > 1 {
		prefix = msg[1:i]
	}
	add(after("<" + prefix + ":Envelope"))
	add(after("<" + prefix + ":Header"))
	add(before("</" + prefix + ":Header>"))
	if i := before("</" + prefix + ":Header>"); i >= 0 {
		add(i + len("</"+prefix+":Header>"))
	}
	add(after("<wsse:Security "))
	add(before("</wsse:Security>"))
	add(before("<wsu:Timestamp"))
	if i := strings.Index(msg, ">42<"); i >= 0 {
		add(i + 2)
	}
	if i := strings.Index(msg, "orders:GetOrder<"); i >= 0 { // the signed wsa:Action's text
		add(i + len("orders:"))
	}
	add(before("</" + prefix + ":Body>"))
	add(before("</" + prefix + ":Envelope>"))
	return pts
}

// FuzzForwardedDifferential holds the rule of issue 11: for any message that
// verifies, a strict SOAP reader and a sloppy one (the first element named
// Body, the first text node of its first child, the first element named
// Action, the first element named Security) read the same from what
// Verified.Bytes forwards. It starts from validly signed messages and
// injects two fragments at structural places, so that many inputs still
// verify; the sloppy reader is encoding/xml, a parser other than ours.
func FuzzForwardedDifferential(f *testing.F) {
	// Seeds that verify: blank fragments and comments at every place,
	// headers in the Header, an empty CDATA inside signed text; then every
	// fragment at every place of one message.
	blank := []string{"", " \n", "<!-- c -->", "<![CDATA[]]>"}
	headers := []string{
		`<a:Allowed xmlns:a="urn:example:allowed">ok</a:Allowed>`,
		`<a:Allowed xmlns:a="urn:example:allowed"><!--x-->y<![CDATA[z]]></a:Allowed>`,
		`<x:Role xmlns:x="urn:example:attacker">admin</x:Role>`,
		`<x:Transfer xmlns:x="urn:example:attacker" soapenv:mustUnderstand="0">666</x:Transfer>`,
		`<x:Transfer xmlns:x="urn:example:attacker" env:mustUnderstand="true" env:role="http://www.w3.org/2003/05/soap-envelope/role/none">666</x:Transfer>`,
	}
	for b := range forwardBases {
		for p := range 10 {
			for i, frag := range blank {
				f.Add(uint8(b), uint8(p), frag, uint8(p+3+i), blank[(i+1)%len(blank)])
			}
		}
		for _, h := range headers {
			f.Add(uint8(b), uint8(1), h, uint8(7), "<!---->")
			f.Add(uint8(b), uint8(2), h, uint8(1), h)
		}
	}
	for p := range 10 {
		for _, frag := range forwardFragments {
			f.Add(uint8(0), uint8(p), frag, uint8(0), "")
		}
	}
	bases := make([]string, len(forwardBases))
	for i, b := range forwardBases {
		bases[i] = string(goldenMessage(f, b.file))
	}
	ca := goldenCert(f, "ca")
	f.Fuzz(func(t *testing.T, base, pos1 uint8, frag1 string, pos2 uint8, frag2 string) {
		b := int(base) % len(bases)
		msg := bases[b]
		pts := injectionPoints(msg)
		p1, p2 := pts[int(pos1)%len(pts)], pts[int(pos2)%len(pts)]
		if p1 > p2 {
			p1, p2 = p2, p1
			frag1, frag2 = frag2, frag1
		}
		msg = msg[:p1] + frag1 + msg[p1:p2] + frag2 + msg[p2:]
		v := &Verifier{
			Policy: Policy{
				RequireSigned:          []Part{PartBody, PartTimestamp},
				ForwardUnsignedHeaders: []HeaderName{{Namespace: "urn:example:allowed"}},
			},
			Trust: goldenCerts{ca},
			Now:   func() time.Time { return goldenNow },
		}
		if forwardBases[b].users {
			v.Users = goldenUsers{"alice": "secret"}
		}
		res, err := v.Verify(context.Background(), []byte(msg))
		if err != nil {
			return
		}
		defer res.Release()
		wantText := firstChildText(res.Body)
		for _, strip := range []bool{true, false} {
			out, err := res.Bytes(strip)
			if err != nil {
				t.Fatalf("Bytes(%t): %v", strip, err)
			}
			fwd, err := ParseEnvelope(out, Limits{})
			if err != nil {
				t.Fatalf("the forwarded envelope does not parse: %v\n%s", err, out)
			}
			c1, _ := excC14N(res.Body, "")
			c2, _ := excC14N(fwd.Body, "")
			fwd.Release()
			if !bytes.Equal(c1, c2) {
				t.Fatalf("the forwarded Body is not the verified one:\n%s", out)
			}
			s := readSloppy(t, out)
			if s.bodyDepth != 1 || s.bodySpace != res.Envelope.Envelope.NamespaceURI() {
				t.Fatalf("a sloppy reader's first Body is not the envelope's (depth %d, %q):\n%s", s.bodyDepth, s.bodySpace, out)
			}
			if s.firstText != wantText {
				t.Fatalf("a sloppy reader reads %q, the verified Body says %q:\n%s", s.firstText, wantText, out)
			}
			switch {
			case res.Action != "" && strings.TrimSpace(s.action) != res.Action:
				t.Fatalf("a sloppy reader's Action is %q, the signed one %q:\n%s", s.action, res.Action, out)
			case res.Action == "" && s.actionInHeader:
				t.Fatalf("an unsigned Action is forwarded:\n%s", out)
			case strip && s.securityInHeader:
				t.Fatalf("a Security element is forwarded after strip:\n%s", out)
			case !strip && s.securityChildren != nil && !processedOnly(s.securityChildren):
				t.Fatalf("the forwarded Security holds %v:\n%s", s.securityChildren, out)
			}
			if !strip {
				if _, err := v.Verify(context.Background(), out); err != nil {
					t.Fatalf("the forwarded envelope does not verify again: %v\n%s", err, out)
				}
			}
		}
	})
}

// firstChildText is what a strict reader takes as the text of the Body's
// first child: the first non-blank text in it, all of one text, comments
// skipped and CDATA included, as a reader of the forwarded bytes sees it.
func firstChildText(body *etree.Element) string {
	first := firstChildElement(body)
	if first == nil {
		return ""
	}
	var walk func(*etree.Element) (string, bool)
	walk = func(el *etree.Element) (string, bool) {
		var run strings.Builder
		for _, t := range el.Child {
			switch t := t.(type) {
			case *etree.CharData:
				run.WriteString(t.Data)
			case *etree.Comment:
			case *etree.Element:
				if strings.TrimSpace(run.String()) != "" {
					return run.String(), true
				}
				run.Reset()
				if s, ok := walk(t); ok {
					return s, true
				}
			}
		}
		if strings.TrimSpace(run.String()) != "" {
			return run.String(), true
		}
		return "", false
	}
	s, _ := walk(first)
	return s
}

// sloppyRead is what a careless backend reads, by local names only.
type sloppyRead struct {
	bodyDepth        int
	bodySpace        string
	firstText        string
	action           string
	actionInHeader   bool
	securityInHeader bool
	securityChildren []string // local names of the first Security's children
}

func readSloppy(t *testing.T, out []byte) sloppyRead {
	t.Helper()
	var r sloppyRead
	d := xml.NewDecoder(bytes.NewReader(out))
	depth := 0
	bodyAt, childAt, secAt, actionAt := -1, -1, -1, -1
	inBody := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("encoding/xml cannot read the forwarded envelope: %v\n%s", err, out)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case tok.Name.Local == "Body" && bodyAt < 0:
				bodyAt, inBody = depth, true
				r.bodyDepth, r.bodySpace = depth-1, tok.Name.Space
			case inBody && childAt < 0 && depth == bodyAt+1:
				childAt = depth
			case tok.Name.Local == "Action" && actionAt == -1 && !inBody:
				actionAt, r.actionInHeader = depth, true
			case tok.Name.Local == "Security" && secAt < 0 && !inBody:
				secAt, r.securityInHeader = depth, true
				r.securityChildren = []string{}
			case secAt >= 0 && depth == secAt+1:
				r.securityChildren = append(r.securityChildren, tok.Name.Local)
			}
		case xml.EndElement:
			// Only the first of each counts.
			switch depth {
			case secAt:
				secAt = -2
			case actionAt:
				actionAt = -2
			case childAt:
				childAt = -2
			}
			depth--
		case xml.CharData:
			if depth == actionAt && r.action == "" {
				r.action = string(tok)
			}
			if childAt > 0 && r.firstText == "" && strings.TrimSpace(string(tok)) != "" {
				r.firstText = string(tok)
			}
		}
	}
	return r
}

func processedOnly(children []string) bool {
	for _, c := range children {
		switch c {
		case "Signature", "Timestamp", "BinarySecurityToken", "UsernameToken":
		default:
			return false
		}
	}
	return true
}
