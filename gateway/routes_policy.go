package gateway

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"wsgate/config"
	"wsgate/contract/wspolicy"
)

// withPolicy applies soap.policy: from_wsdl at load time: the
// WS-SecurityPolicy of the wsdl's port, read by contract/wspolicy (the code
// `wsgate policy` prints from), is a floor under the route's soap block. Its
// signed parts are added to require_signed (the route may ask for more,
// never less); what the policy needs the route to supply or allow (a secret
// path, a wider algorithm list) must be configured, else the build fails
// naming both the setting and the assertion, as does any assertion wsgate
// cannot enforce. The route returned is a copy; r is not changed.
func withPolicy(env *routeEnv, r *config.Route) (*config.Route, error) {
	s := r.SOAP
	if s == nil || s.Policy != "from_wsdl" {
		return r, nil
	}
	p := s.WSDL
	if !filepath.IsAbs(p) {
		p = filepath.Join(env.baseDir, p)
	}
	res, err := wspolicy.FromWSDL(p, "", "")
	if err != nil {
		return nil, fmt.Errorf("soap.policy: %w", err)
	}
	var problems []string
	for _, u := range res.Unsupported {
		problems = append(problems, "cannot enforce "+u)
	}
	q := res.Requires
	if q.SHA1 && !s.Algorithms.AllowSHA1 {
		problems = append(problems, "the policy's sp:AlgorithmSuite signs with SHA-1 but soap.algorithms.allow_sha1 is false")
	}
	if q.UsernameToken && s.UsernameToken == "" {
		problems = append(problems, "sp:UsernameToken needs soap.username_token (the users secret)")
	}
	if q.SAML && s.SAML == nil {
		problems = append(problems, "sp:SamlToken needs soap.saml (trust and audience)")
	}
	if q.EncryptBody {
		switch d := s.Decrypt; {
		case d == nil:
			problems = append(problems, "sp:EncryptedParts/sp:Body needs soap.decrypt (the gateway's encryption identity)")
		case !d.Algorithms.AllowCBC:
			problems = append(problems, "sp:EncryptedParts/sp:Body with a WS-SecurityPolicy suite encrypts with AES-CBC but soap.decrypt.algorithms.allow_cbc is false")
		case q.RSA15 && !d.Algorithms.AllowRSA15:
			problems = append(problems, "the policy's sp:AlgorithmSuite transports keys with RSA v1.5 but soap.decrypt.algorithms.allow_rsa15 is false")
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("soap.policy: from_wsdl (%s, port %s/%s): %s", s.WSDL, res.Service, res.Port, strings.Join(problems, "; "))
	}
	// A copy: the loaded config is shared with the reload that may fail.
	sc := *s
	sc.RequireSigned = slices.Clone(s.RequireSigned)
	for _, part := range q.Signed {
		if !slices.Contains(sc.RequireSigned, part) {
			sc.RequireSigned = append(sc.RequireSigned, part)
		}
	}
	if q.EncryptBody {
		d := *s.Decrypt
		if !slices.Contains(d.RequireEncrypted, "body") {
			d.RequireEncrypted = append(slices.Clone(d.RequireEncrypted), "body")
		}
		sc.Decrypt = &d
	}
	if q.SAML && !s.SAML.Required {
		sm := *s.SAML
		sm.Required = true
		sc.SAML = &sm
	}
	rc := *r
	rc.SOAP = &sc
	return &rc, nil
}
