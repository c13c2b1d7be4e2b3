package config

import (
	"testing"
)

func TestOpenAPIKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		patch func(*Config)
		want  []string
	}{
		{"rest route", func(c *Config) { c.Routes[0].OpenAPI, c.Routes[0].OpenAPIResponses = "contracts/billing.yaml", true }, nil},
		{"api-key route", func(c *Config) { c.Routes[1].OpenAPI = "billing.yaml" }, nil},
		{"public route", func(c *Config) {
			c.Routes[1].APIKey, c.Routes[1].RateLimit, c.Routes[1].Public = nil, nil, true
			c.Routes[1].OpenAPI = "billing.yaml"
		}, []string{"routes[1].openapi: only on oauth, api_key or bridge routes"}},
		{"responses without document", func(c *Config) { c.Routes[0].OpenAPIResponses = true },
			[]string{"routes[0].openapi_responses: needs openapi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load([]byte(authzRoutes))
			if err != nil {
				t.Fatal(err)
			}
			tc.patch(c)
			wantProblems(t, c, tc.want)
		})
	}
}

func TestOpenAPIDecodes(t *testing.T) {
	c, err := Load([]byte(authzRoutes + "    openapi: contracts/partners.yaml\n    openapi_responses: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Routes[1]; r.OpenAPI != "contracts/partners.yaml" || !r.OpenAPIResponses {
		t.Fatalf("route %+v", r)
	}
}

const wsdlRoute = `
secrets: {backend: file, file: {dir: ./s}}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: http://127.0.0.1:9001/ws
    soap:
      trust: wsgate/trust/partners
      wsdl: contracts/orders.wsdl
      operations: from_wsdl
      wsdl_address: https://gw.example.com/soap/orders
`

func TestWSDLKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		patch func(*SOAP)
		want  []string
	}{
		{"valid", func(*SOAP) {}, nil},
		{"wsdl alone", func(s *SOAP) { s.Operations, s.WSDLAddress = "", "" }, nil},
		{"operations without wsdl", func(s *SOAP) { s.WSDL, s.WSDLAddress = "", "" }, []string{"routes[0].soap.operations: needs wsdl"}},
		{"operations value", func(s *SOAP) { s.Operations = "all" }, []string{`routes[0].soap.operations: "all" is not one of from_wsdl`}},
		{"address", func(s *SOAP) { s.WSDLAddress = "gw.example.com/soap" }, []string{"routes[0].soap.wsdl_address: must be an absolute http or https URL"}},
		{"address without wsdl", func(s *SOAP) { s.WSDL, s.Operations = "", "" }, []string{"routes[0].soap.wsdl_address: needs wsdl"}},
		{"validate_body", func(s *SOAP) { s.ValidateBody = true }, nil},
		{"validate_body without from_wsdl", func(s *SOAP) { s.ValidateBody, s.Operations = true, "" },
			[]string{"routes[0].soap.validate_body: needs operations: from_wsdl"}},
		{"policy", func(s *SOAP) { s.Policy = "from_wsdl" }, nil},
		{"policy value", func(s *SOAP) { s.Policy = "wsdl" }, []string{`routes[0].soap.policy: "wsdl" is not one of from_wsdl`}},
		{"policy without wsdl", func(s *SOAP) { s.Policy, s.WSDL, s.Operations, s.WSDLAddress = "from_wsdl", "", "", "" },
			[]string{"routes[0].soap.policy: needs wsdl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load([]byte(wsdlRoute))
			if err != nil {
				t.Fatal(err)
			}
			tc.patch(c.Routes[0].SOAP)
			wantProblems(t, c, tc.want)
		})
	}
}
