package gateway

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// ordersWSDL is a document/literal WSDL whose GetOrder input is the Body
// of the signed test messages (testdata/wssec/valid-*.xml) when ns is
// urn:example:orders; getAction is GetOrder's soapAction.
func ordersWSDL(ns, getAction string) string { return ordersWSDLTyped(ns, getAction, "") }

// ordersWSDLTyped adds idType, when set, as the xs type of GetOrder's ID in wsdl:types.
func ordersWSDLTyped(ns, getAction, idType string) string {
	types := ""
	if idType != "" {
		types = `<wsdl:types><xs:schema targetNamespace="` + ns + `" elementFormDefault="qualified">
    <xs:simpleType name="ID"><xs:restriction base="xs:string"><xs:pattern value="` + idType + `"/></xs:restriction></xs:simpleType>
    <xs:element name="GetOrder"><xs:complexType><xs:sequence><xs:element name="ID" type="ord:ID"/></xs:sequence></xs:complexType></xs:element>
    <xs:element name="CancelOrder"><xs:complexType><xs:sequence/></xs:complexType></xs:element>
  </xs:schema></wsdl:types>`
	}
	return `<?xml version="1.0"?>
<wsdl:definitions targetNamespace="urn:example:orders:svc" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:tns="urn:example:orders:svc" xmlns:ord="` + ns + `">
  ` + types + `
  <wsdl:message name="GetOrder"><wsdl:part name="p" element="ord:GetOrder"/></wsdl:message>
  <wsdl:message name="CancelOrder"><wsdl:part name="p" element="ord:CancelOrder"/></wsdl:message>
  <wsdl:portType name="Orders">
    <wsdl:operation name="GetOrder"><wsdl:input message="tns:GetOrder"/></wsdl:operation>
    <wsdl:operation name="CancelOrder"><wsdl:input message="tns:CancelOrder"/></wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="OrdersSoap" type="tns:Orders">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="GetOrder"><soap:operation soapAction="` + getAction + `"/><wsdl:input><soap:body use="literal"/></wsdl:input></wsdl:operation>
    <wsdl:operation name="CancelOrder"><soap:operation soapAction="urn:example:orders:CancelOrder"/><wsdl:input><soap:body use="literal"/></wsdl:input></wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="OrdersService">
    <wsdl:port name="OrdersPort" binding="tns:OrdersSoap"><soap:address location="http://10.0.0.7:8080/ws"/></wsdl:port>
  </wsdl:service>
</wsdl:definitions>
`
}

// TestSOAPRouteFromWSDL: operations: from_wsdl refuses, after verification,
// a Body or action outside the WSDL with a 400 Client/Sender Fault, and the
// upstream gets nothing; ?wsdl serves the WSDL with the gateway's address.
func TestSOAPRouteFromWSDL(t *testing.T) {
	wsdlDir := t.TempDir()
	files := map[string]string{
		"good.wsdl":          ordersWSDL("urn:example:orders", "urn:example:orders:GetOrder"),
		"other-ns.wsdl":      ordersWSDL("urn:example:other", "urn:example:orders:GetOrder"),
		"other-action.wsdl":  ordersWSDL("urn:example:orders", "urn:example:orders:Get2"),
		"typed-ok.wsdl":      ordersWSDLTyped("urn:example:orders", "urn:example:orders:GetOrder", "[0-9]+"),
		"typed-refuses.wsdl": ordersWSDLTyped("urn:example:orders", "urn:example:orders:GetOrder", "[A-Z]+"),
		"no-operations.wsdl": strings.Replace(ordersWSDL("urn:example:orders", ""), `use="literal"`, `use="encoded"`, 1),
	}
	for name, text := range files {
		writeTestFile(t, filepath.Join(wsdlDir, name), text)
	}
	route := func(file string) string {
		y := "      wsdl: " + filepath.Join(wsdlDir, file) + "\n      operations: from_wsdl\n      wsdl_address: https://gw.example.com/soap/orders"
		if strings.HasPrefix(file, "typed") {
			y += "\n      validate_body: true"
		}
		return y
	}
	for _, tc := range []struct {
		name, wsdl, message string
		hdr                 map[string]string
		status              int
	}{
		{"matching body", "good.wsdl", "valid-soap11-rsa.xml", nil, 200},
		{"matching body and SOAPAction", "good.wsdl", "valid-soap11-rsa.xml", map[string]string{"SOAPAction": `"urn:example:orders:GetOrder"`}, 200},
		{"SOAP 1.2, default namespace", "good.wsdl", "valid-soap12-rsa.xml", nil, 200},
		{"signed wsa:Action matches", "good.wsdl", "valid-wsa.xml", nil, 200},
		{"SOAPAction of another operation", "good.wsdl", "valid-soap11-rsa.xml", map[string]string{"SOAPAction": `"urn:example:orders:CancelOrder"`}, 400},
		{"unknown SOAPAction", "good.wsdl", "valid-soap11-rsa.xml", map[string]string{"SOAPAction": "urn:evil"}, 400},
		{"SOAP 1.2 action parameter of another operation", "good.wsdl", "valid-soap12-rsa.xml",
			map[string]string{"Content-Type": `application/soap+xml; charset=utf-8; action="urn:example:orders:CancelOrder"`}, 400},
		{"body element in another namespace", "other-ns.wsdl", "valid-soap11-rsa.xml", nil, 400},
		{"body element in another namespace, 1.2", "other-ns.wsdl", "valid-soap12-rsa.xml", nil, 400},
		{"signed wsa:Action not the operation's", "other-action.wsdl", "valid-wsa.xml", nil, 400},
		{"validate_body: schema-valid Body", "typed-ok.wsdl", "valid-soap12-rsa.xml", nil, 200},
		{"validate_body: Body the schema refuses", "typed-refuses.wsdl", "valid-soap12-rsa.xml", nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, up, _ := securityGateway(t, route(tc.wsdl), nil)
			w := postTestdata(t, g, tc.message, tc.hdr)
			if checkForwarded(t, w, tc.status, up) {
				return
			}
			body := w.Body.String()
			if !strings.Contains(body, "Client") && !strings.Contains(body, "Sender") {
				t.Fatalf("not a Client/Sender fault: %s", body)
			}
			if strings.Contains(body, "CancelOrder") || strings.Contains(body, "urn:evil") {
				t.Fatalf("fault echoes the cause: %s", body)
			}
		})
	}

	t.Run("?wsdl", func(t *testing.T) {
		g, up, _ := securityGateway(t, route("good.wsdl"), nil)
		w := serveReq(g, httptest.NewRequest(http.MethodGet, "/soap/orders?wsdl", nil))
		if w.Code != 200 || !strings.Contains(w.Body.String(), `<soap:address location="https://gw.example.com/soap/orders"/>`) ||
			strings.Contains(w.Body.String(), "10.0.0.7") || up.hits.Load() != 0 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	})
	t.Run("unsupported WSDL fails the build", func(t *testing.T) {
		err := newGatewayErr(t, t.TempDir(), `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: http://127.0.0.1:1
    soap:
      trust: wsgate/trust/partners
`+route("no-operations.wsdl")+"\n")
		if err == nil || !strings.Contains(err.Error(), `use "encoded"`) {
			t.Fatalf("err %v", err)
		}
	})
}
