package wsdl

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs:\n%s", name, got)
	}
}

func load(t *testing.T) *Service {
	t.Helper()
	s, err := Load(filepath.Join("testdata", "orders.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOperationsGolden(t *testing.T) {
	b, err := json.MarshalIndent(load(t).Operations(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "orders.operations.golden.json", append(b, '\n'))
}

func TestServedGolden(t *testing.T) {
	s := load(t)
	for name, tc := range map[string]struct {
		address, host string
		tls           bool
	}{
		"configured": {address: "https://gw.example.com/soap/orders?a=1&b=2"},
		"derived":    {host: "gw.example.com:8443", tls: true},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/soap/orders?wsdl", nil)
			if tc.host != "" {
				r.Host = tc.host
			}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			s.Handler(tc.address).ServeHTTP(w, r)
			if w.Code != 200 || w.Header().Get("Content-Type") != "text/xml; charset=utf-8" {
				t.Fatalf("%d %v", w.Code, w.Header())
			}
			golden(t, "orders.served-"+name+".golden.wsdl", w.Body.Bytes())
		})
	}
	r := httptest.NewRequest("GET", "/soap/orders?wsdl", nil)
	r.Host = `evil"/><x`
	w := httptest.NewRecorder()
	s.Handler("").ServeHTTP(w, r)
	if w.Code != 400 {
		t.Fatalf("hostile Host: %d", w.Code)
	}
}

func body(t *testing.T, inner string) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<s:Body xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">` + inner + `</s:Body>`); err != nil {
		t.Fatal(err)
	}
	return doc.Root()
}

func TestCheck(t *testing.T) {
	s := load(t)
	get := `<o:GetOrder xmlns:o="urn:example:orders:types"><o:OrderID>1</o:OrderID></o:GetOrder>`
	cancel := `<CancelOrder xmlns="urn:example:orders:types"><OrderID>1</OrderID></CancelOrder>`
	for _, tc := range []struct {
		name, body string
		claims     []string
		signed     string
		want       error
	}{
		{"get, no action", get, nil, "", nil},
		{"get, soapAction", get, []string{"urn:example:orders:GetOrder"}, "", nil},
		{"get, signed default action", get, nil, "urn:example:orders:OrdersPort:GetOrderRequest", nil},
		{"cancel, wsam action", cancel, []string{"urn:example:orders:Cancel"}, "urn:example:orders:Cancel", nil},
		{"get, cancel's action", get, []string{"urn:example:orders:Cancel"}, "", ErrActionMismatch},
		{"cancel, get's soapAction", cancel, []string{"urn:example:orders:GetOrder"}, "", ErrActionMismatch},
		{"get, signed cancel action", get, nil, "urn:example:orders:Cancel", ErrActionMismatch},
		{"get, one of two claims wrong", get, []string{"urn:example:orders:GetOrder", "urn:other"}, "", ErrActionMismatch},
		{"unknown element", `<o:DeleteAll xmlns:o="urn:example:orders:types"/>`, nil, "", ErrUnknownOperation},
		{"right name, wrong namespace", `<GetOrder xmlns="urn:evil"/>`, nil, "", ErrUnknownOperation},
		{"right name, no namespace", `<GetOrder/>`, nil, "", ErrUnknownOperation},
		{"response element", `<o:GetOrderResponse xmlns:o="urn:example:orders:types"/>`, nil, "", ErrUnknownOperation},
		{"two elements", get + cancel, nil, "", ErrBodyShape},
		{"look-alike second element", get + `<o:DeleteAll xmlns:o="urn:example:orders:types"/>`, nil, "", ErrBodyShape},
		{"text beside", "junk" + get, nil, "", ErrBodyShape},
		{"empty", " ", nil, "", ErrBodyShape},
		{"whitespace and comment ok", "\n <!-- c -->" + get + "\n", nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Check(body(t, tc.body), tc.claims, tc.signed)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestLoadRefuses(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "orders.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	abstract, err := os.ReadFile(filepath.Join("testdata", "orders-abstract.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, from, to string
		abstract       bool
		want           error
		says           string
	}{
		{"rpc style", `<soap:binding style="document"`, `<soap:binding style="rpc"`, false, ErrUnsupported, `style "rpc"`},
		{"encoded", `<wsdl:input><soap:body use="literal"/>`, `<wsdl:input><soap:body use="encoded"/>`, false, ErrUnsupported, `use "encoded"`},
		{"network import", `location="orders-abstract.wsdl"`, `location="http://127.0.0.1:1/orders-abstract.wsdl"`, false, ErrDocument, "only relative local files"},
		{"absolute import", `location="orders-abstract.wsdl"`, `location="/etc/passwd"`, false, ErrDocument, "only relative local files"},
		{"DTD", `<?xml version="1.0" encoding="UTF-8"?>`, `<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE x [<!ENTITY a "b">]>`, false, ErrDocument, "DTD"},
		{"missing binding", `binding="tns:OrdersSoap12"`, `binding="tns:Nope"`, false, ErrDocument, "not found"},
		{"undeclared prefix", `binding="tns:OrdersSoap12"`, `binding="zz:OrdersSoap12"`, false, ErrDocument, "not declared"},
		{"type part", `<wsdl:part name="parameters" element="ord:GetOrder"/>`, `<wsdl:part name="id" type="xsd:string"/>`, true, ErrUnsupported, "type= instead of element="},
		{"two parts", `<wsdl:part name="parameters" element="ord:GetOrder"/>`, `<wsdl:part name="a" element="ord:GetOrder"/><wsdl:part name="b" element="ord:GetOrder"/>`, true, ErrUnsupported, "2 message parts"},
		{"WSDL 2.0", `<wsdl:definitions name="Orders"`, `<wsdl:description name="Orders"`, false, ErrDocument, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			main, abs := string(base), string(abstract)
			if tc.abstract {
				abs = strings.Replace(abs, tc.from, tc.to, 1)
			} else {
				main = strings.Replace(main, tc.from, tc.to, 1)
			}
			if main == string(base) && abs == string(abstract) {
				t.Fatal("the patch did not apply")
			}
			_ = os.WriteFile(filepath.Join(dir, "orders.wsdl"), []byte(main), 0o600)
			_ = os.WriteFile(filepath.Join(dir, "orders-abstract.wsdl"), []byte(abs), 0o600)
			_, err := Load(filepath.Join(dir, "orders.wsdl"))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Load = %v, want %v saying %q", err, tc.want, tc.says)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "orders-abstract.wsdl"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"><wsdl:service/></wsdl:definitions>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "x.wsdl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Load(path)
		if err == nil && len(s.Operations()) == 0 {
			t.Fatal("a service without operations loaded")
		}
	})
}

func TestValidateBodies(t *testing.T) {
	s := load(t)
	if err := s.ValidateBodies(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"valid", `<o:GetOrder xmlns:o="urn:example:orders:types"><o:OrderID>1</o:OrderID><o:Note>x</o:Note></o:GetOrder>`, nil},
		{"missing required child", `<o:GetOrder xmlns:o="urn:example:orders:types"><o:Note>x</o:Note></o:GetOrder>`, ErrInvalidBody},
		{"unknown child", `<o:GetOrder xmlns:o="urn:example:orders:types"><o:OrderID>1</o:OrderID><o:Admin/></o:GetOrder>`, ErrInvalidBody},
		{"unqualified child", `<o:GetOrder xmlns:o="urn:example:orders:types"><OrderID>1</OrderID></o:GetOrder>`, ErrInvalidBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Check(body(t, tc.body), nil, "")
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}

	// A schema outside the subset is refused when bodies are to be validated, naming the construct.
	dir := t.TempDir()
	abs, err := os.ReadFile(filepath.Join("testdata", "orders-abstract.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile(filepath.Join("testdata", "orders.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.Replace(string(abs), `<xsd:element name="Note" type="xsd:string" minOccurs="0"/>`, `<xsd:any minOccurs="0"/>`, 1)
	_ = os.WriteFile(filepath.Join(dir, "orders-abstract.wsdl"), []byte(patched), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "orders.wsdl"), main, 0o600)
	s2, err := Load(filepath.Join(dir, "orders.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.ValidateBodies(); err == nil || !strings.Contains(err.Error(), "xsd:any") {
		t.Fatalf("ValidateBodies = %v, want a refusal naming xsd:any", err)
	}
}
