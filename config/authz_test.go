package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const authzRoutes = `
secrets: {backend: file, file: {dir: ./s}}
tls: {secret: wsgate/tls, client_ca: wsgate/ca}
routes:
  - name: api
    path_prefix: /api
    upstream: http://u
    oauth:
      issuer: https://idp.example.com/realms/billing
      audience: [x]
      discovery: true
      jwks_ca_cert: idp-ca.pem
      algorithms: [RS256]
      require_typ: at+jwt
      claims:
        - {methods: [DELETE], path: "/admin/**", require: {"realm_access.roles": [admin]}}
      dpop: {required: true, max_age: 30s}
      require_certificate_binding: true
    api_key: {secret: wsgate/apikeys/billing}
    cors: {allow_origins: [https://app.example], allow_methods: [GET, POST], allow_headers: [Authorization], allow_credentials: true, max_age: 10m}
  - name: keys-only
    path_prefix: /keys
    upstream: http://u
    api_key: {secret: wsgate/apikeys/partners, header: X-Partner-Key}
    rate_limit: {per: subject, rate: 1, burst: 1}
`

func TestAuthzKeys(t *testing.T) {
	c, err := Load([]byte(authzRoutes))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	o := c.Routes[0].OAuth
	if !o.Discovery || o.DPoP.MaxAge.D() != 30*time.Second || !o.DPoP.Required || !o.RequireCertificateBinding ||
		o.Claims[0].Require["realm_access.roles"][0] != "admin" {
		t.Fatalf("oauth %+v", o)
	}
	if k := c.Routes[0].APIKey; k.Header != "X-API-Key" {
		t.Fatalf("default header %q", k.Header)
	}
	if cs := c.Routes[0].CORS; cs.MaxAge.D() != 10*time.Minute || !cs.AllowCredentials {
		t.Fatalf("cors %+v", cs)
	}
	if c.Routes[1].Kind() != KindREST || c.Routes[1].APIKey.Header != "X-Partner-Key" {
		t.Fatalf("keys-only route: kind %q", c.Routes[1].Kind())
	}
	var refs []string
	for _, r := range c.SecretRefs() {
		if r.Use == SecretAPIKeys {
			refs = append(refs, r.Path+"="+r.Secret)
		}
	}
	if !slices.Equal(refs, []string{"routes[0].api_key.secret=wsgate/apikeys/billing", "routes[1].api_key.secret=wsgate/apikeys/partners"}) {
		t.Fatalf("secret refs %q", refs)
	}
	// dpop without max_age takes the default.
	c2, err := Load([]byte(strings.Replace(authzRoutes, "dpop: {required: true, max_age: 30s}", "dpop: {}", 1)))
	if err != nil || c2.Routes[0].OAuth.DPoP.MaxAge.D() != DefaultDPoPMaxAge {
		t.Fatalf("dpop default: %v", err)
	}
}

func TestAuthzInvalid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		patch func(c *Config)
		want  []string
	}{
		{"discovery with jwks_url", func(c *Config) { c.Routes[0].OAuth.JWKSURL = "https://idp/jwks" },
			[]string{"routes[0].oauth.discovery: jwks_url and discovery are mutually exclusive"}},
		{"discovery with jwks_secret", func(c *Config) { c.Routes[0].OAuth.JWKSSecret = "s"; c.Routes[0].OAuth.JWKSCACert = "" },
			[]string{"routes[0].oauth.discovery: jwks_secret and discovery are mutually exclusive"}},
		{"discovery needs an https issuer", func(c *Config) { c.Routes[0].OAuth.Issuer = "http://idp.example.com" },
			[]string{"routes[0].oauth.issuer: discovery needs an https issuer URL without query or fragment"}},
		{"jwks_ca_cert without a URL", func(c *Config) { c.Routes[0].OAuth.Discovery = false; c.Routes[0].OAuth.JWKSSecret = "s" },
			[]string{"routes[0].oauth.jwks_ca_cert: only used with jwks_url or discovery"}},
		{"claims", func(c *Config) {
			c.Routes[0].OAuth.Claims = []ClaimRule{
				{Methods: []string{"FETCH"}, Path: "admin", Require: map[string][]string{"a..b": {"x"}, "c": {}}},
				{Path: "/x"},
			}
		}, []string{
			`routes[0].oauth.claims[0].methods[0]: "FETCH" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS`,
			`routes[0].oauth.claims[0].path: must start with "/"`,
			`routes[0].oauth.claims[0].require."a..b": a claim path is dot-separated names, none empty`,
			`routes[0].oauth.claims[0].require.c: required: at least one non-empty value`,
			`routes[0].oauth.claims[1].require: required: at least one claim path`,
		}},
		{"dpop max_age", func(c *Config) { c.Routes[0].OAuth.DPoP.MaxAge = Duration(2 * time.Hour) },
			[]string{"routes[0].oauth.dpop.max_age: at most 1h: a proof is a one-time, fresh signature"}},
		{"certificate binding needs mTLS", func(c *Config) { c.TLS.ClientCA = "" },
			[]string{"routes[0].oauth.require_certificate_binding: needs tls.client_ca (the client certificate comes from mTLS)"}},
		{"api_key", func(c *Config) { c.Routes[1].APIKey = &APIKey{Secret: "/abs", Header: "Authorization"} },
			[]string{"routes[1].api_key.secret: " + badSecret, "routes[1].api_key.header: Authorization is reserved"}},
		{"api_key header in the identity family", func(c *Config) { c.Routes[1].APIKey.Header = "x-auth-key" },
			[]string{"routes[1].api_key.header: X-Auth-* headers are identity headers the gateway sets, never a client"}},
		{"api_key header carries a claim", func(c *Config) {
			c.Routes[0].OAuth.ForwardClaims = map[string]string{"sub": "X-Key"}
			c.Routes[0].APIKey.Header = "x_key"
		}, []string{"routes[0].api_key.header: X-Key also carries a forwarded claim"}},
		{"api_key on a public route", func(c *Config) { c.Routes[1].Public = true },
			[]string{"routes[1].api_key: only on oauth, bridge or API-key-only REST routes (not public or soap)"}},
		{"cors * with credentials", func(c *Config) { c.Routes[0].CORS.AllowOrigins = []string{"*"} },
			[]string{`routes[0].cors.allow_origins[0]: "*" cannot be combined with allow_credentials: name the origins`}},
		{"cors values", func(c *Config) {
			c.Routes[0].CORS = &CORS{AllowOrigins: []string{"https://app.example/path", "app.example"}, AllowMethods: []string{"get"},
				AllowHeaders: []string{"X Bad"}, MaxAge: -1}
		}, []string{
			`routes[0].cors.allow_origins[0]: "https://app.example/path" is not an origin (scheme://host[:port])`,
			`routes[0].cors.allow_origins[1]: "app.example" is not an origin (scheme://host[:port])`,
			`routes[0].cors.allow_methods[0]: "get" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS`,
			`routes[0].cors.allow_headers[0]: "X Bad" is not a valid header name`,
			`routes[0].cors.max_age: must not be negative`,
		}},
		{"cors needs authentication", func(c *Config) {
			c.Routes[1].APIKey, c.Routes[1].RateLimit, c.Routes[1].Public = nil, nil, true
			c.Routes[1].CORS = &CORS{AllowOrigins: []string{"*"}}
		}, []string{"routes[1].cors: only on oauth or api_key routes"}},
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
