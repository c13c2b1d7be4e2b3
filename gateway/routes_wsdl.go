package gateway

import (
	"fmt"
	"path/filepath"

	"wsgate/config"
	"wsgate/contract/wsdl"
	"wsgate/soap"
	"wsgate/wssec"
)

// withWSDL loads the route's soap.wsdl (relative to the config file's
// directory, like request_template) once per route load: it serves GET
// <prefix>?wsdl with the endpoint addresses set to soap.wsdl_address (or
// the request's own URL), and with operations: from_wsdl it checks every
// verified envelope's Body and actions before anything is forwarded. A
// missing or unsupported WSDL fails the route's build.
func withWSDL(env *routeEnv, r *config.Route, so *soap.Options) error {
	s := r.SOAP
	if s.WSDL == "" {
		return nil
	}
	p := s.WSDL
	if !filepath.IsAbs(p) {
		p = filepath.Join(env.baseDir, p)
	}
	svc, err := wsdl.Load(p)
	if err != nil {
		return fmt.Errorf("soap.wsdl: %w", err)
	}
	if s.ValidateBody {
		if err := svc.ValidateBodies(); err != nil {
			return fmt.Errorf("soap.validate_body: %w", err)
		}
	}
	so.WSDL = svc.Handler(s.WSDLAddress)
	if s.Operations == "from_wsdl" {
		so.Contract = func(v *wssec.Verified, actions []string) error {
			return svc.Check(v.Body, actions, v.Action)
		}
	}
	return nil
}
