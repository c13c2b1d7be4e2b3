package config

import (
	"strings"
	"testing"
)

const samlAssertionRoutes = `
secrets: {backend: file, file: {dir: ./s}}
routes:
  - name: b
    path_prefix: /b
    oauth: {issuer: i, audience: [x], jwks_secret: s, algorithms: [HS256]}
    bridge:
      upstream: http://u
      operations: [{name: op, action: a, request_template: t}]
      sign: {identity: wsgate/bridge/identity, saml_assertion: %s}
`

// bridge.sign.saml_assertion: a KV secret (field assertion) named in
// SecretRefs with its use; a bad path is reported like every other.
func TestBridgeSignSAMLAssertion(t *testing.T) {
	c, err := Load([]byte(strings.Replace(samlAssertionRoutes, "%s", "wsgate/bridge/alice", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := c.Routes[0].Bridge.Sign.SAMLAssertion; got != "wsgate/bridge/alice" {
		t.Fatalf("saml_assertion = %q", got)
	}
	found := false
	for _, r := range c.SecretRefs() {
		if r.Path == "routes[0].bridge.sign.saml_assertion" {
			found = r.Secret == "wsgate/bridge/alice" && r.Use == SecretSAMLAssertion
		}
	}
	if !found {
		t.Errorf("SecretRefs lacks the assertion: %+v", c.SecretRefs())
	}

	c, err = Load([]byte(strings.Replace(samlAssertionRoutes, "%s", "/abs/../x", 1)))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "routes[0].bridge.sign.saml_assertion") {
		t.Fatalf("Validate: %v", err)
	}
}
