package config

import (
	"slices"
	"strings"
	"testing"
)

// securityYAML uses every key of soap.decrypt, soap.encrypt_response,
// soap.saml, soap.revocation, soap.forward_unsigned_headers and
// bridge.encrypt, each with a valid value.
const securityYAML = `
secrets: {backend: vault, vault: {address: "http://127.0.0.1:8200"}}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: http://127.0.0.1:9001/ws
    soap:
      trust: wsgate/trust/partners
      decrypt:
        identity: wsgate/encryption/orders
        transit_key: orders-enc
        require_encrypted: [body]
        algorithms: {allow_rsa15: false, allow_cbc: true}
      encrypt_response: {certificate: wsgate/partners/orders-enc}
      saml:
        trust: wsgate/trust/idp
        audience: [urn:wsgate:orders]
        confirmation: [holder-of-key, sender-vouches, bearer]
        required: true
        forward_attributes: {NameID: X-Auth-Subject, role: X-Auth-Roles}
      revocation:
        crl: [wsgate/trust/partners-crl]
        deny: wsgate/trust/denied
      forward_unsigned_headers: ["{urn:example:trace}TraceID", "{urn:example:ctx}*"]
  - name: orders-bridge
    path_prefix: /bridge/orders
    oauth: {issuer: "https://idp.example/", audience: [a], jwks_url: "https://idp.example/jwks", algorithms: [RS256]}
    bridge:
      upstream: http://127.0.0.1:9001/ws
      operations: [{name: get, action: "urn:get", request_template: t.tmpl}]
      sign: {identity: wsgate/signing/orders}
      encrypt: {certificate: wsgate/backends/orders-enc}
`

// The reflection-driven walker of Check knows every new key: a file
// using them all has no problem, and Load fills the typed fields.
func TestCheckKnowsSecurityKeys(t *testing.T) {
	r := Check([]byte(securityYAML))
	if len(r.Problems) != 0 {
		t.Fatalf("problems:\n%s", problemLines(r))
	}
	s := r.Config.Routes[0].SOAP
	if s.Decrypt == nil || s.Decrypt.TransitKey != "orders-enc" || !s.Decrypt.Algorithms.AllowCBC ||
		!slices.Equal(s.Decrypt.RequireEncrypted, []string{"body"}) {
		t.Errorf("decrypt = %+v", s.Decrypt)
	}
	if s.EncryptResponse == nil || s.EncryptResponse.Certificate != "wsgate/partners/orders-enc" {
		t.Errorf("encrypt_response = %+v", s.EncryptResponse)
	}
	if s.SAML == nil || !s.SAML.Required || s.SAML.ForwardAttributes["role"] != "X-Auth-Roles" || len(s.SAML.Confirmation) != 3 {
		t.Errorf("saml = %+v", s.SAML)
	}
	if s.Revocation == nil || s.Revocation.Deny != "wsgate/trust/denied" || len(s.Revocation.CRL) != 1 {
		t.Errorf("revocation = %+v", s.Revocation)
	}
	if len(s.ForwardUnsignedHeaders) != 2 {
		t.Errorf("forward_unsigned_headers = %v", s.ForwardUnsignedHeaders)
	}
	if b := r.Config.Routes[1].Bridge; b.Encrypt == nil || b.Encrypt.Certificate != "wsgate/backends/orders-enc" {
		t.Errorf("bridge.encrypt = %+v", b.Encrypt)
	}
	// A misspelt new key is reported with the nearest known one.
	r = Check([]byte(strings.Replace(securityYAML, "require_encrypted:", "require_encryptd:", 1)))
	if len(r.Problems) != 1 || r.Problems[0].Path != "routes[0].soap.decrypt.require_encryptd" ||
		!strings.Contains(r.Problems[0].Reason, "require_encrypted") {
		t.Errorf("misspelt key: %s", problemLines(r))
	}
}

func TestSecurityValidation(t *testing.T) {
	tests := []struct {
		name, old, new string
		path           string
	}{
		{"transit needs vault", "backend: vault, vault: {address: \"http://127.0.0.1:8200\"}", "backend: file, file: {dir: s}", "routes[0].soap.decrypt.transit_key"},
		{"rsa15 with transit", "allow_rsa15: false", "allow_rsa15: true", "routes[0].soap.decrypt.algorithms.allow_rsa15"},
		{"no identity", "identity: wsgate/encryption/orders", "identity: \"\"", "routes[0].soap.decrypt.identity"},
		{"bad part", "require_encrypted: [body]", "require_encrypted: [header]", "routes[0].soap.decrypt.require_encrypted[0]"},
		{"dup part", "require_encrypted: [body]", "require_encrypted: [body, body]", "routes[0].soap.decrypt.require_encrypted[1]"},
		{"no response cert", "{certificate: wsgate/partners/orders-enc}", "{certificate: \"\"}", "routes[0].soap.encrypt_response.certificate"},
		{"bad bridge cert", "{certificate: wsgate/backends/orders-enc}", "{certificate: /abs}", "routes[1].bridge.encrypt.certificate"},
		{"no saml trust", "trust: wsgate/trust/idp", "trust: \"\"", "routes[0].soap.saml.trust"},
		{"no audience", "audience: [urn:wsgate:orders]", "audience: []", "routes[0].soap.saml.audience"},
		{"bad confirmation", "[holder-of-key, sender-vouches, bearer]", "[holder-of-key, bearer-ish]", "routes[0].soap.saml.confirmation[1]"},
		{"bad header", "role: X-Auth-Roles", "role: \"X Roles\"", "routes[0].soap.saml.forward_attributes.role"},
		{"reserved header", "role: X-Auth-Roles", "role: authorization", "routes[0].soap.saml.forward_attributes.role"},
		{"header twice", "role: X-Auth-Roles", "role: x-auth-subject", "routes[0].soap.saml.forward_attributes.role"},
		{"framing header", "role: X-Auth-Roles", "role: Content-Encoding", "routes[0].soap.saml.forward_attributes.role"},
		{"URI attribute name quoted", "role: X-Auth-Roles", `"urn:oid:2.5.4.11": authorization`,
			`routes[0].soap.saml.forward_attributes."urn:oid:2.5.4.11"`},
		{"empty revocation", "crl: [wsgate/trust/partners-crl]\n        deny: wsgate/trust/denied", "crl: []", "routes[0].soap.revocation"},
		{"bad crl path", "crl: [wsgate/trust/partners-crl]", "crl: [a//b]", "routes[0].soap.revocation.crl[0]"},
		{"bad qname", `"{urn:example:trace}TraceID"`, `"TraceID"`, "routes[0].soap.forward_unsigned_headers[0]"},
		{"bad local", `"{urn:example:trace}TraceID"`, `"{urn:x}1a"`, "routes[0].soap.forward_unsigned_headers[0]"},
		{"dup qname", `"{urn:example:ctx}*"`, `"{urn:example:trace}TraceID"`, "routes[0].soap.forward_unsigned_headers[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(securityYAML, tt.old) {
				t.Fatalf("fixture lacks %q", tt.old)
			}
			r := Check([]byte(strings.Replace(securityYAML, tt.old, tt.new, 1)))
			var paths []string
			for _, p := range r.Problems {
				paths = append(paths, p.Path)
			}
			if !slices.Contains(paths, tt.path) {
				t.Errorf("problems %q, want one at %s:\n%s", paths, tt.path, problemLines(r))
			}
		})
	}
}

func TestParseHeaderQName(t *testing.T) {
	for in, want := range map[string]HeaderQName{
		"{urn:a}B":            {Namespace: "urn:a", Local: "B"},
		"{urn:a}*":            {Namespace: "urn:a"},
		"{http://x/y?z}a.b-c": {Namespace: "http://x/y?z", Local: "a.b-c"},
	} {
		if got, err := ParseHeaderQName(in); err != nil || got != want {
			t.Errorf("%q = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "B", "{}B", "{urn:a}", "{urn:a}p:B", "{urn:a}-B", "{ urn:a}B", "urn:a}B", "{urn:a}B C"} {
		if _, err := ParseHeaderQName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Every secret the new keys name is listed with its use.
func TestSecretRefsSecurity(t *testing.T) {
	r := Check([]byte(securityYAML))
	if r.Config == nil {
		t.Fatal(problemLines(r))
	}
	got := map[string]SecretUse{}
	for _, ref := range r.Config.SecretRefs() {
		got[ref.Path] = ref.Use
	}
	for path, use := range map[string]SecretUse{
		"routes[0].soap.decrypt.identity":             SecretCertificate,
		"routes[0].soap.encrypt_response.certificate": SecretCertificate,
		"routes[0].soap.saml.trust":                   SecretTrust,
		"routes[0].soap.revocation.crl[0]":            SecretCRL,
		"routes[0].soap.revocation.deny":              SecretDeny,
		"routes[1].bridge.encrypt.certificate":        SecretCertificate,
	} {
		if got[path] != use {
			t.Errorf("%s: use %q, want %q", path, got[path], use)
		}
	}
}

// FuzzParseHeaderQName: whatever it accepts has a namespace without
// surrounding space and a local name that is * (empty) or an NCName, and
// formats back to the input.
func FuzzParseHeaderQName(f *testing.F) {
	for _, s := range []string{"{urn:a}B", "{urn:a}*", "{}B", "{urn:a}", "B", "{{x}}y", "{urn:a}p:B", "{urn:a}é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseHeaderQName(s)
		if err != nil {
			return
		}
		local := q.Local
		if local == "" {
			local = "*"
		} else if !ncName(local) {
			t.Fatalf("%q: local %q accepted", s, local)
		}
		if q.Namespace == "" || strings.TrimSpace(q.Namespace) != q.Namespace || "{"+q.Namespace+"}"+local != s {
			t.Fatalf("%q parsed as %+v", s, q)
		}
	})
}
