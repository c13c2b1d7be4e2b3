package config

import "fmt"

// SecretUse says what a configuration key needs from the KV secret it names.
// The values match secrets.Use, which checks a secret against its use.
type SecretUse string

// The uses of a KV secret.
const (
	// SecretTrust: field certificates, PEM CA and/or pinned certificates.
	SecretTrust SecretUse = "trust"
	// SecretIdentity: fields certificate (PEM chain, leaf first) and private_key.
	SecretIdentity SecretUse = "identity"
	// SecretCertificate: field certificate alone (a Vault Transit key signs).
	SecretCertificate SecretUse = "certificate"
	// SecretUsers: one field per UsernameToken user, username -> password.
	SecretUsers SecretUse = "users"
	// SecretKeys: field jwks, public_key or secret (JWT verification keys).
	SecretKeys SecretUse = "keys"
	// SecretClient: fields client_id and client_secret (introspection).
	SecretClient SecretUse = "client"
	// SecretCRL: field crl, a PEM (or DER) certificate revocation list.
	SecretCRL SecretUse = "crl"
	// SecretDeny: field certificates (PEM) and/or sha256 (hex thumbprints, one a line).
	SecretDeny SecretUse = "deny"
	// SecretAPIKeys: one field per key id, JSON {"sha256", "subject", "scopes"}.
	SecretAPIKeys SecretUse = "api_keys"
	// SecretSAMLAssertion: field assertion, a SAML 2.0 assertion signed by its IdP.
	SecretSAMLAssertion SecretUse = "saml_assertion"
)

// SecretRef is one KV secret the configuration names.
type SecretRef struct {
	// Path is the YAML path of the key naming the secret, e.g. routes[2].soap.trust.
	Path string
	// Secret is the secret's path in the backend, e.g. wsgate/trust/partners.
	Secret string
	// Use is what the key needs from the secret.
	Use SecretUse
}

// SecretRefs lists every KV secret c names, in file order, with what each
// key needs from it. Empty (optional, unset) keys are left out.
func (c *Config) SecretRefs() []SecretRef {
	var out []SecretRef
	add := func(path, secret string, use SecretUse) {
		if secret != "" {
			out = append(out, SecretRef{Path: path, Secret: secret, Use: use})
		}
	}
	if t := c.TLS; t != nil {
		add("tls.secret", t.Secret, SecretIdentity)
		add("tls.client_ca", t.ClientCA, SecretTrust)
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		if s := r.SOAP; s != nil {
			add(p+".soap.trust", s.Trust, SecretTrust)
			add(p+".soap.username_token", s.UsernameToken, SecretUsers)
			add(p+".soap.sign_response", s.SignResponse, SecretIdentity)
			if d := s.Decrypt; d != nil {
				use := SecretIdentity
				if d.TransitKey != "" {
					use = SecretCertificate
				}
				add(p+".soap.decrypt.identity", d.Identity, use)
			}
			if e := s.EncryptResponse; e != nil {
				add(p+".soap.encrypt_response.certificate", e.Certificate, SecretCertificate)
			}
			if sm := s.SAML; sm != nil {
				add(p+".soap.saml.trust", sm.Trust, SecretTrust)
			}
			if rv := s.Revocation; rv != nil {
				for j, c := range rv.CRL {
					add(fmt.Sprintf("%s.soap.revocation.crl[%d]", p, j), c, SecretCRL)
				}
				add(p+".soap.revocation.deny", rv.Deny, SecretDeny)
			}
		}
		if o := r.OAuth; o != nil {
			add(p+".oauth.jwks_secret", o.JWKSSecret, SecretKeys)
			if o.Introspection != nil {
				add(p+".oauth.introspection.client", o.Introspection.Client, SecretClient)
			}
		}
		if k := r.APIKey; k != nil {
			add(p+".api_key.secret", k.Secret, SecretAPIKeys)
		}
		if u := r.UpstreamTLS; u != nil {
			add(p+".upstream_tls.ca", u.CA, SecretTrust)
			add(p+".upstream_tls.identity", u.Identity, SecretIdentity)
		}
		if b := r.Bridge; b != nil {
			if s := b.Sign; s != nil {
				use := SecretIdentity
				if s.TransitKey != "" {
					use = SecretCertificate
				}
				add(p+".bridge.sign.identity", s.Identity, use)
				add(p+".bridge.sign.saml_assertion", s.SAMLAssertion, SecretSAMLAssertion)
			}
			if b.VerifyResponse != nil {
				add(p+".bridge.verify_response.trust", b.VerifyResponse.Trust, SecretTrust)
			}
			if b.Encrypt != nil {
				add(p+".bridge.encrypt.certificate", b.Encrypt.Certificate, SecretCertificate)
			}
		}
	}
	return out
}
