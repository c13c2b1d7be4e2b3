package config

import (
	"fmt"
	"slices"
	"strings"
)

// The values of soap.decrypt.require_encrypted and soap.saml.confirmation.
var (
	encryptedParts = []string{"body"}
	confirmations  = []string{"holder-of-key", "sender-vouches", "bearer"}
)

// reservedForwardHeaders may not carry a verified identity (a token claim,
// a SAML attribute, the client certificate), nor an API key: they
// authenticate the request, frame it or its body, or belong to the gateway.
var reservedForwardHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Dpop", "Origin",
	"Host", "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Connection", "Http2-Settings", "Expect",
	"Content-Length", "Content-Type", "Content-Encoding", "Content-Range",
	"Content-Md5", "Digest", "Content-Digest", "Repr-Digest", "Soapaction",
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id",
}

// HeaderQName is a SOAP header block name of soap.forward_unsigned_headers.
type HeaderQName struct {
	// Namespace is the block's namespace URI, never empty.
	Namespace string
	// Local is its local name; empty matches every block of the namespace.
	Local string
}

// ParseHeaderQName reads "{namespace}local" or "{namespace}*".
func ParseHeaderQName(s string) (HeaderQName, error) {
	rest, ok := strings.CutPrefix(s, "{")
	ns, local, ok2 := strings.Cut(rest, "}")
	if !ok || !ok2 || strings.TrimSpace(ns) != ns || ns == "" {
		return HeaderQName{}, fmt.Errorf("%q is not {namespace}local", s)
	}
	if local == "*" {
		return HeaderQName{Namespace: ns}, nil
	}
	if !ncName(local) {
		return HeaderQName{}, fmt.Errorf("%q: %q is not an XML local name (or *)", s, local)
	}
	return HeaderQName{Namespace: ns, Local: local}, nil
}

// ncName is a conservative XML NCName check: ASCII letters, digits, '-',
// '_' and '.', or any non-ASCII rune, not starting with a digit, '-' or '.'.
func ncName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 0x7f:
		case i > 0 && (r == '-' || r == '.' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return true
}

// validateSecurity checks decrypt, encrypt_response, saml, revocation and
// forward_unsigned_headers of a soap route at p.
func (s *SOAP) validateSecurity(v *validator, p string) {
	if d := s.Decrypt; d != nil {
		dp := p + ".decrypt"
		if v.required(dp+".identity", d.Identity) {
			v.secretPath(dp+".identity", d.Identity)
		}
		if d.TransitKey != "" {
			if strings.ContainsAny(d.TransitKey, "/ \t\r\n\x00") {
				v.add(dp+".transit_key", "not a Transit key name")
			}
			if d.Algorithms.AllowRSA15 {
				v.add(dp+".algorithms.allow_rsa15", "cannot be used with transit_key (Vault Transit decrypts RSA-OAEP only)")
			}
		}
		v.distinctOneOf(dp+".require_encrypted", d.RequireEncrypted, encryptedParts)
	}
	s.EncryptResponse.validate(v, p+".encrypt_response")
	if sm := s.SAML; sm != nil {
		sp := p + ".saml"
		if v.required(sp+".trust", sm.Trust) {
			v.secretPath(sp+".trust", sm.Trust)
		}
		if len(sm.Audience) == 0 {
			v.add(sp+".audience", "required: at least one audience URI (an empty list would refuse every assertion)")
		}
		for i, a := range sm.Audience {
			if strings.TrimSpace(a) == "" {
				v.add(fmt.Sprintf("%s.audience[%d]", sp, i), "empty")
			}
		}
		v.distinctOneOf(sp+".confirmation", sm.Confirmation, confirmations)
		v.forwardHeaders(sp+".forward_attributes", sm.ForwardAttributes, "attribute")
	}
	if r := s.Revocation; r != nil {
		rp := p + ".revocation"
		if len(r.CRL) == 0 && r.Deny == "" {
			v.add(rp, "needs crl or deny")
		}
		for i, c := range r.CRL {
			ip := fmt.Sprintf("%s.crl[%d]", rp, i)
			if v.required(ip, c) {
				v.secretPath(ip, c)
			}
		}
		v.secretPath(rp+".deny", r.Deny)
	}
	seen := map[HeaderQName]bool{}
	for i, h := range s.ForwardUnsignedHeaders {
		ip := fmt.Sprintf("%s.forward_unsigned_headers[%d]", p, i)
		q, err := ParseHeaderQName(h)
		switch {
		case err != nil:
			v.add(ip, "%v", err)
		case seen[q]:
			v.add(ip, "duplicate %q", h)
		}
		seen[q] = true
	}
}

// validate checks an optional encrypt block (soap.encrypt_response, bridge.encrypt).
func (e *Encrypt) validate(v *validator, p string) {
	if e == nil {
		return
	}
	if v.required(p+".certificate", e.Certificate) {
		v.secretPath(p+".certificate", e.Certificate)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// distinctOneOf checks a list of names at path: each one of allowed, none
// repeated. It returns the names seen, valid or not.
func (v *validator) distinctOneOf(path string, vals, allowed []string) map[string]bool {
	seen := map[string]bool{}
	for i, val := range vals {
		ip := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case !slices.Contains(allowed, val):
			v.add(ip, "%q is not one of %s", val, strings.Join(allowed, ", "))
		case seen[val]:
			v.add(ip, "duplicate %q", val)
		}
		seen[val] = true
	}
	return seen
}
