// Package wsdl holds SOAP routes to their WSDL 1.1 contract: it loads a
// document/literal WSDL (wsdl:import followed relative to the file, never
// over the network), maps each operation of its SOAP ports to the input
// element its Body must carry and the actions that name it, checks a
// verified Body against that map, and serves the WSDL with its endpoint
// addresses pointing at the gateway.
//
// The WSDL is trusted configuration, but it is still read with bounds
// (size, import depth and count) and without DTDs. Anything outside
// document/literal (rpc style, encoded use, a body of several parts or of a
// type= part) is refused at load time, naming the construct, rather than
// checked loosely.
package wsdl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/beevik/etree"

	"wsgate/contract/xsd"
)

// Namespaces of WSDL 1.1 and its SOAP bindings, and the WS-Addressing
// namespaces whose Action attribute names an input's action.
const (
	NSWSDL   = "http://schemas.xmlsoap.org/wsdl/"
	NSSOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
	NSSOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
	nsWSAW   = "http://www.w3.org/2006/05/addressing/wsdl"
	nsWSAM   = "http://www.w3.org/2007/05/addressing/metadata"
	nsWSAM2  = "http://www.w3.org/2007/02/addressing/metadata"
)

// Sentinels, one per distinguishable failure.
var (
	// ErrDocument is a WSDL that cannot be read or is not well-formed WSDL 1.1.
	ErrDocument = errors.New("wsdl: document unusable")
	// ErrUnsupported is a WSDL construct the gateway does not check (rpc
	// style, encoded use, ...); the error names it.
	ErrUnsupported = errors.New("wsdl: unsupported construct")
	// ErrBodyShape is a Body that is not exactly one element (document/literal).
	ErrBodyShape = errors.New("wsdl: Body must hold exactly one element")
	// ErrUnknownOperation is a Body element that is no operation's input.
	ErrUnknownOperation = errors.New("wsdl: Body element is not an operation's input")
	// ErrActionMismatch is a SOAPAction, action parameter or signed
	// wsa:Action that is not the Body's operation's.
	ErrActionMismatch = errors.New("wsdl: action names another operation")
	// ErrInvalidBody is a Body element that its schema refuses (with
	// ValidateBodies); it wraps xsd.ErrInvalid.
	ErrInvalidBody = errors.New("wsdl: Body does not match the schema")
)

const (
	maxFileBytes = 4 << 20
	maxFiles     = 32
	maxDepth     = 8
	// placeholder stands for the endpoint address in the served WSDL.
	placeholder = "urn:wsgate:endpoint-address"
)

// QName is a namespace-qualified name.
type QName struct{ Space, Local string }

func (q QName) String() string { return "{" + q.Space + "}" + q.Local }

// Operation is one operation of a SOAP port.
type Operation struct {
	Name string
	// Input is the element the request Body must carry.
	Input QName
	// Actions are the actions that name it: its soapAction, its input's
	// wsam:Action (or the WS-Addressing default action when none).
	Actions []string
}

// Service is a loaded WSDL.
type Service struct {
	ops     []Operation
	served  [][]byte // the root document, split at the address placeholder
	schemas []schemaDoc
	schema  *xsd.Schema // set by ValidateBodies
}

// schemaDoc is an xsd:schema found in the WSDL (wsdl:types) or read from a
// schemaLocation, with the directory its relative locations resolve against.
type schemaDoc struct {
	el  *etree.Element
	dir string
}

// Operations lists the operations, for diagnostics and tests.
func (s *Service) Operations() []Operation { return append([]Operation(nil), s.ops...) }

// set collects the named components of a WSDL and the files it imports.
type set struct {
	messages  map[QName]*etree.Element
	portTypes map[QName]*etree.Element
	bindings  map[QName]*etree.Element
	services  []*etree.Element
	schemas   []schemaDoc
	files     int
}

// Load reads the WSDL at path and the WSDLs it imports (relative paths
// only) and maps its SOAP ports' operations.
func Load(path string) (*Service, error) {
	s := &set{messages: map[QName]*etree.Element{}, portTypes: map[QName]*etree.Element{}, bindings: map[QName]*etree.Element{}}
	root, err := s.load(path, 0)
	if err != nil {
		return nil, err
	}
	ops, err := s.operations()
	if err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("%w: %s: no SOAP port with operations", ErrDocument, path)
	}
	served, err := servedDocument(root)
	if err != nil {
		return nil, err
	}
	return &Service{ops: ops, served: served, schemas: s.schemas}, nil
}

// ValidateBodies compiles the WSDL's schemas (wsdl:types, and the files
// their xsd:import / xsd:include schemaLocations name, relative and local
// only) with package xsd, so that Check also validates the Body element.
// A schema outside xsd's subset is refused here, naming the construct; so
// is an operation whose input element no schema declares.
func (s *Service) ValidateBodies() error {
	sch := xsd.New()
	seen := map[string]bool{}
	files := 0
	var add func(d schemaDoc, depth int) error
	add = func(d schemaDoc, depth int) error {
		for _, ch := range d.el.ChildElements() {
			if ch.NamespaceURI() != xsd.NS || (ch.Tag != "import" && ch.Tag != "include") {
				continue
			}
			loc := ch.SelectAttrValue("schemaLocation", "")
			if loc == "" {
				continue // a namespace given by another schema of the set
			}
			if !isLocal(loc) {
				return fmt.Errorf("%w: schemaLocation %q: only relative local files are read", ErrDocument, loc)
			}
			path := filepath.Join(d.dir, filepath.FromSlash(loc))
			if seen[path] {
				continue
			}
			seen[path] = true
			if files++; files > maxFiles || depth > maxDepth {
				return fmt.Errorf("%w: too many or too deeply nested schema files", ErrDocument)
			}
			doc, err := ReadDocument(path)
			if err != nil {
				return err
			}
			if err := add(schemaDoc{el: doc.Root(), dir: filepath.Dir(path)}, depth+1); err != nil {
				return err
			}
		}
		if err := sch.Add(d.el); err != nil {
			return fmt.Errorf("%w (schema in %s)", err, d.dir)
		}
		return nil
	}
	for _, d := range s.schemas {
		if err := add(d, 0); err != nil {
			return err
		}
	}
	if err := sch.Resolve(); err != nil {
		return err
	}
	for _, op := range s.ops {
		if !sch.Element(xsd.QName(op.Input)) {
			return fmt.Errorf("%w: operation %q: input element %s is not declared by the schemas", ErrDocument, op.Name, op.Input)
		}
	}
	s.schema = sch
	return nil
}

// ReadDocument reads the XML file at path as every contract reader must:
// at most 4 MiB, well-formed, no DTD, a root element. Errors wrap
// ErrDocument. wspolicy reads its WSDL with it too.
func ReadDocument(path string) (*etree.Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDocument, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDocument, path, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrDocument, path, maxFileBytes)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDocument, path, err)
	}
	for _, t := range doc.Child {
		if _, ok := t.(*etree.Directive); ok {
			return nil, fmt.Errorf("%w: %s: DTDs are refused", ErrDocument, path)
		}
	}
	if doc.Root() == nil {
		return nil, fmt.Errorf("%w: %s: no root element", ErrDocument, path)
	}
	return doc, nil
}

// load reads one WSDL file and, first, the files it imports.
func (s *set) load(path string, depth int) (*etree.Document, error) {
	if s.files++; s.files > maxFiles {
		return nil, fmt.Errorf("%w: more than %d imported files", ErrDocument, maxFiles)
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: imports nested deeper than %d", ErrDocument, maxDepth)
	}
	doc, err := ReadDocument(path)
	if err != nil {
		return nil, err
	}
	def := doc.Root()
	if def.NamespaceURI() != NSWSDL || def.Tag != "definitions" {
		return nil, fmt.Errorf("%w: %s: root is not wsdl:definitions (WSDL 1.1)", ErrDocument, path)
	}
	tns := def.SelectAttrValue("targetNamespace", "")
	for _, el := range def.ChildElements() {
		if el.NamespaceURI() != NSWSDL {
			continue
		}
		name := QName{tns, el.SelectAttrValue("name", "")}
		switch el.Tag {
		case "import":
			loc := el.SelectAttrValue("location", "")
			if !isLocal(loc) {
				return nil, fmt.Errorf("%w: %s: wsdl:import location %q: only relative local files are read", ErrDocument, path, loc)
			}
			if strings.HasSuffix(strings.ToLower(loc), ".xsd") {
				// A schema, for ValidateBodies.
				p := filepath.Join(filepath.Dir(path), filepath.FromSlash(loc))
				sd, err := ReadDocument(p)
				if err != nil {
					return nil, err
				}
				s.schemas = append(s.schemas, schemaDoc{el: sd.Root(), dir: filepath.Dir(p)})
				continue
			}
			if _, err := s.load(filepath.Join(filepath.Dir(path), filepath.FromSlash(loc)), depth+1); err != nil {
				return nil, err
			}
		case "message":
			s.messages[name] = el
		case "portType":
			s.portTypes[name] = el
		case "binding":
			s.bindings[name] = el
		case "service":
			s.services = append(s.services, el)
		case "types":
			for _, sc := range el.ChildElements() {
				if sc.NamespaceURI() == xsd.NS && sc.Tag == "schema" {
					s.schemas = append(s.schemas, schemaDoc{el: sc, dir: filepath.Dir(path)})
				}
			}
		}
	}
	return doc, nil
}

// isLocal reports whether loc is a relative path with no scheme or host.
func isLocal(loc string) bool {
	if loc == "" || filepath.IsAbs(loc) || strings.HasPrefix(loc, "/") || strings.Contains(loc, `\`) {
		return false
	}
	u, err := url.Parse(loc)
	return err == nil && u.Scheme == "" && u.Host == "" && u.RawQuery == ""
}

// resolve turns a QName attribute value (prefix:local) into a QName, with
// the prefixes declared on el or its ancestors.
func resolve(el *etree.Element, v string) (QName, error) {
	q, ok := xsd.ResolveQName(el, v)
	if !ok {
		prefix, _, _ := strings.Cut(v, ":")
		return QName{}, fmt.Errorf("%w: prefix %q of %q is not declared", ErrDocument, prefix, v)
	}
	return QName(q), nil
}

// soapChild is el's first child in the SOAP 1.1 or 1.2 WSDL binding namespace named tag.
func soapChild(el *etree.Element, tag string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag && (c.NamespaceURI() == NSSOAP11 || c.NamespaceURI() == NSSOAP12) {
			return c
		}
	}
	return nil
}

func wsdlChild(el *etree.Element, tag, name string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == NSWSDL && (name == "" || c.SelectAttrValue("name", "") == name) {
			return c
		}
	}
	return nil
}

// operations maps every operation of every SOAP port of every service.
func (s *set) operations() ([]Operation, error) {
	var out []Operation
	seen := map[string]bool{}
	for _, svc := range s.services {
		for _, port := range svc.ChildElements() {
			if port.Tag != "port" || port.NamespaceURI() != NSWSDL || soapChild(port, "address") == nil {
				continue // an HTTP or other non-SOAP port
			}
			bq, err := resolve(port, port.SelectAttrValue("binding", ""))
			if err != nil {
				return nil, err
			}
			if seen[bq.String()] {
				continue
			}
			seen[bq.String()] = true
			ops, err := s.bindingOps(bq)
			if err != nil {
				return nil, err
			}
			out = append(out, ops...)
		}
	}
	return out, nil
}

func (s *set) bindingOps(bq QName) ([]Operation, error) {
	b := s.bindings[bq]
	if b == nil {
		return nil, fmt.Errorf("%w: binding %s not found", ErrDocument, bq)
	}
	sb := soapChild(b, "binding")
	if sb == nil {
		return nil, fmt.Errorf("%w: binding %s is not a SOAP binding", ErrUnsupported, bq)
	}
	style := sb.SelectAttrValue("style", "document")
	if t := sb.SelectAttrValue("transport", ""); t != "" && t != "http://schemas.xmlsoap.org/soap/http" && t != "http://www.w3.org/2003/05/soap/bindings/HTTP/" {
		return nil, fmt.Errorf("%w: binding %s: transport %q", ErrUnsupported, bq, t)
	}
	ptq, err := resolve(b, b.SelectAttrValue("type", ""))
	if err != nil {
		return nil, err
	}
	pt := s.portTypes[ptq]
	if pt == nil {
		return nil, fmt.Errorf("%w: portType %s not found", ErrDocument, ptq)
	}
	var out []Operation
	for _, bop := range b.ChildElements() {
		if bop.Tag != "operation" || bop.NamespaceURI() != NSWSDL {
			continue
		}
		name := bop.SelectAttrValue("name", "")
		where := fmt.Sprintf("binding %s operation %q", bq, name)
		opStyle, soapAction := style, ""
		if so := soapChild(bop, "operation"); so != nil {
			opStyle = so.SelectAttrValue("style", style)
			soapAction = so.SelectAttrValue("soapAction", "")
		}
		if opStyle != "document" {
			return nil, fmt.Errorf("%w: %s: style %q (only document/literal)", ErrUnsupported, where, opStyle)
		}
		in := wsdlChild(bop, "input", "")
		if in == nil {
			return nil, fmt.Errorf("%w: %s: no input (notification operations are not supported)", ErrUnsupported, where)
		}
		body := soapChild(in, "body")
		if body == nil {
			return nil, fmt.Errorf("%w: %s: input has no soap:body", ErrUnsupported, where)
		}
		if use := body.SelectAttrValue("use", "literal"); use != "literal" {
			return nil, fmt.Errorf("%w: %s: use %q (only document/literal)", ErrUnsupported, where, use)
		}
		ptop := wsdlChild(pt, "operation", name)
		if ptop == nil {
			return nil, fmt.Errorf("%w: %s: not in portType %s", ErrDocument, where, ptq)
		}
		ptin := wsdlChild(ptop, "input", "")
		if ptin == nil {
			return nil, fmt.Errorf("%w: %s: portType operation has no input", ErrUnsupported, where)
		}
		element, err := s.bodyElement(ptin, body, where)
		if err != nil {
			return nil, err
		}
		op := Operation{Name: name, Input: element}
		if soapAction != "" {
			op.Actions = append(op.Actions, soapAction)
		}
		explicit := ""
		for _, a := range ptin.Attr {
			if a.Key == "Action" {
				if ns := attrNS(ptin, a); ns == nsWSAW || ns == nsWSAM || ns == nsWSAM2 {
					explicit = a.Value
				}
			}
		}
		if explicit == "" {
			explicit = defaultAction(ptq, ptin.SelectAttrValue("name", name+"Request"))
		}
		if explicit != soapAction {
			op.Actions = append(op.Actions, explicit)
		}
		out = append(out, op)
	}
	return out, nil
}

// attrNS is the namespace of a prefixed attribute.
func attrNS(el *etree.Element, a etree.Attr) string {
	if a.Space == "" {
		return ""
	}
	q, err := resolve(el, a.Space+":x")
	if err != nil {
		return ""
	}
	return q.Space
}

// defaultAction is WS-Addressing 1.0 Metadata's default action pattern
// (section 4.4.4): [tns][delimiter][portType name][delimiter][input name],
// the delimiter ':' for a URN namespace, '/' otherwise.
func defaultAction(pt QName, input string) string {
	d, ns := "/", pt.Space
	if strings.HasPrefix(strings.ToLower(ns), "urn:") {
		d = ":"
	}
	ns = strings.TrimSuffix(ns, d)
	return ns + d + pt.Local + d + input
}

// bodyElement is the element of the one message part bound to the Body.
func (s *set) bodyElement(ptin, body *etree.Element, where string) (QName, error) {
	mq, err := resolve(ptin, ptin.SelectAttrValue("message", ""))
	if err != nil {
		return QName{}, err
	}
	msg := s.messages[mq]
	if msg == nil {
		return QName{}, fmt.Errorf("%w: %s: message %s not found", ErrDocument, where, mq)
	}
	var parts []*etree.Element
	for _, p := range msg.ChildElements() {
		if p.Tag == "part" && p.NamespaceURI() == NSWSDL {
			parts = append(parts, p)
		}
	}
	if names := body.SelectAttrValue("parts", ""); names != "" || body.SelectAttr("parts") != nil {
		var keep []*etree.Element
		for _, n := range strings.Fields(names) {
			for _, p := range parts {
				if p.SelectAttrValue("name", "") == n {
					keep = append(keep, p)
				}
			}
		}
		parts = keep
	}
	if len(parts) != 1 {
		return QName{}, fmt.Errorf("%w: %s: %d message parts in the Body (document/literal wraps one element)", ErrUnsupported, where, len(parts))
	}
	el := parts[0].SelectAttrValue("element", "")
	if el == "" {
		return QName{}, fmt.Errorf("%w: %s: part %q has type= instead of element= (rpc-like)", ErrUnsupported, where, parts[0].SelectAttrValue("name", ""))
	}
	return resolve(parts[0], el)
}

// servedDocument is the root WSDL serialized with every soap:address and
// soap12:address location replaced by the placeholder, split there.
func servedDocument(doc *etree.Document) ([][]byte, error) {
	doc = doc.Copy()
	for _, svc := range doc.Root().ChildElements() {
		if svc.Tag != "service" || svc.NamespaceURI() != NSWSDL {
			continue
		}
		for _, port := range svc.ChildElements() {
			if a := soapChild(port, "address"); a != nil {
				a.CreateAttr("location", placeholder)
			}
		}
	}
	b, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDocument, err)
	}
	return bytes.Split(b, []byte(placeholder)), nil
}

// Check refuses a verified Body that is not exactly one element, the input
// of one of the operations, and any claimed or signed action that is not
// that operation's. claims are the HTTP actions (SOAPAction, action
// parameter); signed is the signed wsa:Action; empty values are absent.
func (s *Service) Check(body *etree.Element, claims []string, signed string) error {
	if body == nil {
		return ErrBodyShape
	}
	var child *etree.Element
	for _, t := range body.Child {
		switch t := t.(type) {
		case *etree.Element:
			if child != nil {
				return fmt.Errorf("%w: more than one element", ErrBodyShape)
			}
			child = t
		case *etree.CharData:
			if strings.TrimSpace(t.Data) != "" {
				return fmt.Errorf("%w: text beside the element", ErrBodyShape)
			}
		}
	}
	if child == nil {
		return fmt.Errorf("%w: empty", ErrBodyShape)
	}
	qn := QName{child.NamespaceURI(), child.Tag}
	if signed != "" {
		claims = append(claims[:len(claims):len(claims)], signed)
	}
	known := false
	for _, op := range s.ops {
		if op.Input != qn {
			continue
		}
		known = true
		if allIn(claims, op.Actions) {
			if s.schema != nil {
				if err := s.schema.Validate(child); err != nil {
					return fmt.Errorf("%w: %w", ErrInvalidBody, err)
				}
			}
			return nil
		}
	}
	if !known {
		return fmt.Errorf("%w: %.200s", ErrUnknownOperation, qn)
	}
	return fmt.Errorf("%w: Body %.200s, actions %.200q", ErrActionMismatch, qn, claims)
}

func allIn(claims, actions []string) bool {
	for _, c := range claims {
		ok := false
		for _, a := range actions {
			ok = ok || c == a
		}
		if !ok {
			return false
		}
	}
	return true
}

// Handler serves the WSDL with every SOAP endpoint address set to address
// or, when it is empty, to the request's own URL (scheme from TLS, Host
// header, path) when its Host is a plain host[:port].
func (s *Service) Handler(address string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := address
		if addr == "" {
			if !plainHost(r.Host) {
				http.Error(w, "bad Host", http.StatusBadRequest)
				return
			}
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			addr = scheme + "://" + r.Host + r.URL.EscapedPath()
			w.Header().Set("Vary", "Host")
		}
		var esc bytes.Buffer
		_ = xmlEscapeAttr(&esc, addr)
		out := bytes.Join(s.served, esc.Bytes())
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", fmt.Sprint(len(out)))
		_, _ = w.Write(out)
	})
}

// plainHost accepts a host[:port] of letters, digits, '.', '-', ':' and
// brackets (IPv6), nothing a WSDL consumer could read as more than a host.
func plainHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return false
		}
	}
	return true
}

func xmlEscapeAttr(w *bytes.Buffer, s string) error {
	for _, c := range s {
		switch c {
		case '&':
			w.WriteString("&amp;")
		case '<':
			w.WriteString("&lt;")
		case '>':
			w.WriteString("&gt;")
		case '"':
			w.WriteString("&quot;")
		case '\'':
			w.WriteString("&apos;")
		default:
			w.WriteRune(c)
		}
	}
	return nil
}
