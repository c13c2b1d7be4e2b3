// Package wspolicy reads the WS-SecurityPolicy 1.2 attached to a WSDL 1.1
// port's binding and maps it to the soap: block of a wsgate route, listing
// each assertion wsgate cannot enforce (symmetric and transport bindings,
// Kerberos, secure conversation, issued tokens, signed or encrypted headers
// other than WS-Addressing, XPath parts, signature confirmation, ...). It is
// what `wsgate policy -wsdl F` prints; nothing here runs in the proxy.
package wspolicy

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/beevik/etree"

	"wsgate/contract/wsdl"
)

// Namespaces.
const (
	nsWSDL   = "http://schemas.xmlsoap.org/wsdl/"
	nsSOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
	nsSOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
	nsSP12   = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
	nsSP11   = "http://schemas.xmlsoap.org/ws/2005/07/securitypolicy"
	nsWSP15  = "http://www.w3.org/ns/ws-policy"
	nsWSP12  = "http://schemas.xmlsoap.org/ws/2004/09/policy"
	nsWSU    = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	nsWSA    = "http://www.w3.org/2005/08/addressing"
)

// Sentinels.
var (
	// ErrDocument is a WSDL that cannot be read or is not WSDL 1.1.
	ErrDocument = errors.New("wspolicy: document unusable")
	// ErrPort is a -service / -port that is missing or ambiguous.
	ErrPort = errors.New("wspolicy: service or port not found or ambiguous")
)

// Result is the mapped policy of one port.
type Result struct {
	// Service and Port name the port mapped.
	Service, Port string
	// YAML is the soap: block (placeholders CHANGE-ME for secret paths).
	YAML string
	// Unsupported names each assertion wsgate cannot enforce, sorted.
	Unsupported []string
	// Requires is what YAML says, typed: what soap.policy: from_wsdl applies.
	Requires Requirements
}

// Requirements are the policy's demands on inbound messages, each named
// with the assertion it comes from (for config errors).
type Requirements struct {
	// Signed is what the signature must cover: body, timestamp, addressing.
	Signed []string
	// SHA1 is an algorithm suite that signs with SHA-1 (Basic256, ...).
	SHA1 bool
	// RSA15 is an algorithm suite with RSA PKCS#1 v1.5 key transport.
	RSA15 bool
	// UsernameToken is an sp:UsernameToken assertion.
	UsernameToken bool
	// EncryptBody is sp:EncryptedParts/sp:Body (every suite encrypts with CBC).
	EncryptBody bool
	// SAML is an sp:SamlToken assertion.
	SAML bool
}

// policy accumulates what the assertions ask for.
type policy struct {
	asymmetric, timestamp, signBody, signAddressing, encryptBody bool
	sha1, rsa15, x509, saml, username                            bool
	unsupported                                                  map[string]bool
	ids                                                          map[string]*etree.Element
}

func (p *policy) refuse(format string, args ...any) {
	p.unsupported[fmt.Sprintf(format, args...)] = true
}

// FromWSDL maps the policy of the port named port of the service named
// service (each may be empty when the WSDL has only one) in the WSDL file
// at path. Policies are looked up in that file only (wsp:PolicyReference
// to a local #Id, or inline).
func FromWSDL(path, service, port string) (*Result, error) {
	doc, err := wsdl.ReadDocument(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDocument, err)
	}
	def := doc.Root()
	if def.NamespaceURI() != nsWSDL || def.Tag != "definitions" {
		return nil, fmt.Errorf("%w: %s: root is not wsdl:definitions", ErrDocument, path)
	}
	svc, prt, err := pickPort(def, service, port)
	if err != nil {
		return nil, err
	}
	_, bname, _ := strings.Cut(prt.SelectAttrValue("binding", ""), ":")
	if bname == "" {
		bname = prt.SelectAttrValue("binding", "")
	}
	var binding *etree.Element
	for _, el := range def.ChildElements() {
		if el.NamespaceURI() == nsWSDL && el.Tag == "binding" && el.SelectAttrValue("name", "") == bname {
			binding = el
		}
	}
	if binding == nil {
		return nil, fmt.Errorf("%w: binding %q not in %s", ErrDocument, bname, path)
	}
	p := &policy{unsupported: map[string]bool{}, ids: map[string]*etree.Element{}}
	for _, el := range def.FindElements("//*") {
		if isWSP(el) && el.Tag == "Policy" {
			for _, a := range el.Attr {
				if a.Key == "Id" || (a.Key == "Name" && a.Space == "") {
					p.ids[a.Value] = el
				}
			}
		}
	}
	p.attached(binding, 0)
	for _, op := range binding.ChildElements() {
		if op.NamespaceURI() != nsWSDL || op.Tag != "operation" {
			continue
		}
		p.attached(op, 0)
		for _, msg := range op.ChildElements() {
			if msg.NamespaceURI() == nsWSDL && (msg.Tag == "input" || msg.Tag == "output" || msg.Tag == "fault") {
				p.attached(msg, 0)
			}
		}
	}
	r := &Result{Service: svc.SelectAttrValue("name", ""), Port: prt.SelectAttrValue("name", ""), YAML: p.yaml()}
	r.Requires = Requirements{Signed: []string{"body"}, SHA1: p.sha1, RSA15: p.rsa15,
		UsernameToken: p.username, EncryptBody: p.encryptBody, SAML: p.saml}
	if p.timestamp {
		r.Requires.Signed = append(r.Requires.Signed, "timestamp")
	}
	if p.signAddressing {
		r.Requires.Signed = append(r.Requires.Signed, "addressing")
	}
	for u := range p.unsupported {
		r.Unsupported = append(r.Unsupported, u)
	}
	sort.Strings(r.Unsupported)
	return r, nil
}

func pickPort(def *etree.Element, service, port string) (*etree.Element, *etree.Element, error) {
	type cand struct{ svc, port *etree.Element }
	var all []cand
	for _, svc := range def.ChildElements() {
		if svc.NamespaceURI() != nsWSDL || svc.Tag != "service" || (service != "" && svc.SelectAttrValue("name", "") != service) {
			continue
		}
		for _, p := range svc.ChildElements() {
			if p.NamespaceURI() != nsWSDL || p.Tag != "port" || (port != "" && p.SelectAttrValue("name", "") != port) {
				continue
			}
			for _, a := range p.ChildElements() {
				if a.Tag == "address" && (a.NamespaceURI() == nsSOAP11 || a.NamespaceURI() == nsSOAP12) {
					all = append(all, cand{svc, p})
				}
			}
		}
	}
	switch len(all) {
	case 1:
		return all[0].svc, all[0].port, nil
	case 0:
		return nil, nil, fmt.Errorf("%w: no SOAP port matches -service %q -port %q", ErrPort, service, port)
	}
	var names []string
	for _, c := range all {
		names = append(names, c.svc.SelectAttrValue("name", "")+"/"+c.port.SelectAttrValue("name", ""))
	}
	return nil, nil, fmt.Errorf("%w: several SOAP ports (%s): choose with -service and -port", ErrPort, strings.Join(names, ", "))
}

func isWSP(el *etree.Element) bool {
	ns := el.NamespaceURI()
	return ns == nsWSP15 || ns == nsWSP12
}

func isSP(el *etree.Element) bool {
	ns := el.NamespaceURI()
	return ns == nsSP12 || ns == nsSP11
}

// attached walks the policies attached to a WSDL element: inline
// wsp:Policy children and wsp:PolicyReference to a local #Id.
func (p *policy) attached(el *etree.Element, depth int) {
	for _, c := range el.ChildElements() {
		if !isWSP(c) {
			continue
		}
		switch c.Tag {
		case "Policy":
			p.walk(c, depth)
		case "PolicyReference":
			p.reference(c, depth)
		}
	}
}

func (p *policy) reference(c *etree.Element, depth int) {
	uri := c.SelectAttrValue("URI", "")
	target, ok := p.ids[strings.TrimPrefix(uri, "#")]
	if !strings.HasPrefix(uri, "#") || !ok {
		p.refuse("wsp:PolicyReference %q (only references to a policy in the same file are read)", uri)
		return
	}
	if depth > 16 {
		p.refuse("wsp:PolicyReference %q nested too deeply", uri)
		return
	}
	p.walk(target, depth+1)
}

// walk reads the assertions of a policy expression.
func (p *policy) walk(el *etree.Element, depth int) {
	for _, c := range el.ChildElements() {
		switch {
		case isWSP(c) && (c.Tag == "Policy" || c.Tag == "All"):
			p.walk(c, depth)
		case isWSP(c) && c.Tag == "ExactlyOne":
			alts := c.ChildElements()
			if len(alts) > 1 {
				p.refuse("wsp:ExactlyOne with %d alternatives (wsgate enforces one policy)", len(alts))
			}
			if len(alts) > 0 {
				p.walk(&etree.Element{Child: []etree.Token{alts[0]}}, depth)
			}
		case isWSP(c) && c.Tag == "PolicyReference":
			p.reference(c, depth)
		case isSP(c):
			p.assertion(c, depth)
		case c.SelectAttrValue("wsp:Optional", "") == "true" || c.SelectAttrValue("wsp:Ignorable", "") == "true":
			// An optional or ignorable assertion of another vocabulary.
		case c.NamespaceURI() == "http://www.w3.org/2006/05/addressing/wsdl" || c.NamespaceURI() == "http://www.w3.org/2007/05/addressing/metadata":
			// WS-Addressing in use: wsgate forwards the signed wsa:Action.
		default:
			p.refuse("{%s}%s", c.NamespaceURI(), c.Tag)
		}
	}
}

// nested is an assertion's nested wsp:Policy, or nil.
func nested(el *etree.Element) *etree.Element {
	for _, c := range el.ChildElements() {
		if isWSP(c) && c.Tag == "Policy" {
			return c
		}
	}
	return nil
}

func (p *policy) assertion(a *etree.Element, depth int) {
	switch a.Tag {
	case "AsymmetricBinding":
		p.asymmetric = true
		if n := nested(a); n != nil {
			p.walk(n, depth)
		}
	case "InitiatorToken", "RecipientToken", "InitiatorSignatureToken", "RecipientSignatureToken",
		"InitiatorEncryptionToken", "RecipientEncryptionToken":
		if n := nested(a); n != nil {
			p.walk(n, depth)
		}
	case "X509Token":
		p.x509 = true
		p.tokenOptions(a)
	case "SamlToken":
		p.saml = true
		p.tokenOptions(a)
	case "UsernameToken":
		p.username = true
		if n := nested(a); n != nil {
			for _, c := range n.ChildElements() {
				if c.Tag != "WssUsernameToken10" && c.Tag != "WssUsernameToken11" {
					p.refuse("sp:UsernameToken/sp:%s", c.Tag)
				}
			}
		}
	case "AlgorithmSuite":
		if n := nested(a); n != nil {
			for _, s := range n.ChildElements() {
				p.suite(s)
			}
		}
	case "IncludeTimestamp":
		p.timestamp = true
	case "Layout", "OnlySignEntireHeadersAndBody", "EncryptBeforeSigning", "SignBeforeEncrypting":
		// Any layout is accepted; the signature must cover whole parts; both orders are processed.
	case "Wss10", "Wss11":
		if n := nested(a); n != nil {
			for _, c := range n.ChildElements() {
				switch c.Tag {
				case "RequireSignatureConfirmation":
					p.refuse("sp:%s/sp:%s", a.Tag, c.Tag)
				}
			}
		}
	case "SignedParts":
		for _, c := range a.ChildElements() {
			switch {
			case c.Tag == "Body":
				p.signBody = true
			case c.Tag == "Header" && c.SelectAttrValue("Namespace", "") == nsWSA:
				p.signAddressing = true
			case c.Tag == "Header":
				p.refuse("sp:SignedParts/sp:Header {%s}%s (only WS-Addressing headers)", c.SelectAttrValue("Namespace", ""), c.SelectAttrValue("Name", "*"))
			default:
				p.refuse("sp:SignedParts/sp:%s", c.Tag)
			}
		}
	case "EncryptedParts":
		for _, c := range a.ChildElements() {
			if c.Tag == "Body" {
				p.encryptBody = true
			} else {
				p.refuse("sp:EncryptedParts/sp:%s", c.Tag)
			}
		}
	case "SupportingTokens", "SignedSupportingTokens":
		if n := nested(a); n != nil {
			p.walk(n, depth)
		}
	default:
		// SymmetricBinding, TransportBinding, KerberosToken,
		// SecureConversationToken, IssuedToken, SpnegoContextToken,
		// ProtectTokens, EncryptSignature, SignedElements, Trust13, ...
		p.refuse("sp:%s", a.Tag)
	}
}

// tokenOptions refuses token options wsgate does not check.
func (p *policy) tokenOptions(tok *etree.Element) {
	n := nested(tok)
	if n == nil {
		return
	}
	for _, c := range n.ChildElements() {
		switch c.Tag {
		case "WssX509V3Token10", "WssX509V3Token11", "WssX509Pkcs7Token10", "WssX509PkiPathV1Token10",
			"WssX509PkiPathV1Token11", "RequireThumbprintReference", "RequireIssuerSerialReference",
			"RequireKeyIdentifierReference", "WssSamlV20Token11", "WssSamlV11Token11", "WssSamlV11Token10":
		default:
			p.refuse("sp:%s/sp:%s", tok.Tag, c.Tag)
		}
	}
}

// suite maps an algorithm suite: the SHA-256 suites are wsgate's default;
// the SHA-1 ones need allow_sha1, the Rsa15 ones allow_rsa15; TripleDes is refused.
func (p *policy) suite(s *etree.Element) {
	name := s.Tag
	switch {
	case strings.Contains(name, "TripleDes"):
		p.refuse("sp:AlgorithmSuite sp:%s (3DES)", name)
		return
	case strings.HasSuffix(name, "Sha256Rsa15"):
		p.rsa15 = true
	case strings.HasSuffix(name, "Sha256"):
	case strings.HasSuffix(name, "Rsa15"):
		p.sha1, p.rsa15 = true, true
	case name == "Basic256" || name == "Basic192" || name == "Basic128":
		p.sha1 = true
	default:
		p.refuse("sp:AlgorithmSuite sp:%s", name)
	}
}

// yaml renders the soap: block.
func (p *policy) yaml() string {
	var b strings.Builder
	b.WriteString("soap:\n")
	if !p.asymmetric {
		p.refuse("no sp:AsymmetricBinding (wsgate verifies X.509 signatures of the initiator)")
	}
	b.WriteString("  trust: wsgate/trust/CHANGE-ME        # the partners' CA or pinned certificates (sp:X509Token)\n")
	parts := []string{}
	if p.signBody || !p.asymmetric {
		parts = append(parts, "body")
	} else {
		p.refuse("sp:SignedParts without sp:Body (wsgate always requires a signed Body)")
		parts = append(parts, "body")
	}
	if p.timestamp {
		parts = append(parts, "timestamp")
	}
	if p.signAddressing {
		parts = append(parts, "addressing")
	}
	fmt.Fprintf(&b, "  require_signed: [%s]\n", strings.Join(parts, ", "))
	if p.sha1 {
		b.WriteString("  algorithms: {allow_sha1: true}        # the policy's suite signs with SHA-1\n")
	}
	if p.username {
		b.WriteString("  username_token: wsgate/users/CHANGE-ME   # username -> password\n")
	}
	if p.encryptBody {
		b.WriteString("  decrypt:\n")
		b.WriteString("    identity: wsgate/encryption/CHANGE-ME   # the gateway's RSA encryption certificate and key\n")
		b.WriteString("    require_encrypted: [body]\n")
		algs := []string{"allow_cbc: true"} // every WS-SecurityPolicy suite encrypts with CBC
		if p.rsa15 {
			algs = append(algs, "allow_rsa15: true")
		}
		fmt.Fprintf(&b, "    algorithms: {%s}\n", strings.Join(algs, ", "))
	}
	if p.saml {
		b.WriteString("  saml:\n")
		b.WriteString("    trust: wsgate/trust/CHANGE-ME-idp\n")
		b.WriteString("    audience: [CHANGE-ME]\n")
		b.WriteString("    required: true\n")
	}
	return b.String()
}
