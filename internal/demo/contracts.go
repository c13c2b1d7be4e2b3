package demo

// EchoWSDL is the contract of the demo's SOAP echo route: one document/
// literal operation, Hello, whose input is the demo request's Body
// (echo:Hello with one echo:Name). Its soap:address is a placeholder: the
// gateway serves it on GET /soap/echo?wsdl with its own address.
const EchoWSDL = `<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="Echo" targetNamespace="urn:wsgate:demo:echo:service"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="urn:wsgate:demo:echo:service" xmlns:echo="urn:wsgate:demo:echo">
  <wsdl:types>
    <xs:schema targetNamespace="urn:wsgate:demo:echo" elementFormDefault="qualified">
      <xs:element name="Hello">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="Name">
              <xs:simpleType>
                <xs:restriction base="xs:string"><xs:minLength value="1"/><xs:maxLength value="64"/></xs:restriction>
              </xs:simpleType>
            </xs:element>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
    </xs:schema>
  </wsdl:types>
  <wsdl:message name="Hello"><wsdl:part name="body" element="echo:Hello"/></wsdl:message>
  <wsdl:portType name="Echo">
    <wsdl:operation name="Hello"><wsdl:input message="tns:Hello"/></wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="EchoSoap" type="tns:Echo">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="Hello">
      <soap:operation soapAction="urn:wsgate:demo:echo:Hello"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="EchoService">
    <wsdl:port name="EchoPort" binding="tns:EchoSoap"><soap:address location="http://echo.invalid/ws/echo"/></wsdl:port>
  </wsdl:service>
</wsdl:definitions>
`

// EchoOpenAPI is the contract of the demo's REST echo route: the paths the
// demo's instructions call, relative to the route's path_prefix. Anything
// else is refused by the gateway before the echo sees it.
const EchoOpenAPI = `openapi: 3.0.3
info: {title: wsgate demo REST echo, version: "1"}
paths:
  /hello:
    get:
      parameters:
        - {name: lang, in: query, required: false, schema: {type: string, pattern: "^[a-z]{2}$"}}
      # The echo shows any body it is sent, even on a GET.
      requestBody:
        required: false
        content:
          "*/*": {schema: {type: string, format: binary, maxLength: 4096}}
      responses:
        "200": {description: the request as the echo saw it}
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name]
              additionalProperties: false
              properties:
                name: {type: string, minLength: 1, maxLength: 64}
      responses:
        "200": {description: the request as the echo saw it}
  /admin/users/{id}:
    delete:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
      responses:
        "200": {description: the request as the echo saw it}
`
