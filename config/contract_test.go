package config

import (
	"slices"
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
			var got []string
			for _, fe := range FieldErrors(c.Validate()) {
				got = append(got, fe.Error())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n got  %q\n want %q", got, tc.want)
			}
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
