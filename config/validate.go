package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FieldError is one configuration problem, located by its YAML path
// (e.g. routes[2].soap.trust).
type FieldError struct {
	Path   string
	Reason string
}

// Error formats the problem as "path.to.field: reason".
func (e *FieldError) Error() string { return e.Path + ": " + e.Reason }

// FieldErrors unpacks the error Validate returns into its problems, in order.
func FieldErrors(err error) []*FieldError {
	if err == nil {
		return nil
	}
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}

// Route kinds returned by Route.Kind.
const (
	KindSOAP   = "soap"
	KindREST   = "rest"
	KindBridge = "bridge"
	KindPublic = "public"
)

// Kind reports what the route does: soap, rest (oauth alone), bridge or
// public. It is meaningful only for a route that passed Validate.
func (r *Route) Kind() string {
	switch {
	case r.SOAP != nil:
		return KindSOAP
	case r.Bridge != nil:
		return KindBridge
	case r.OAuth != nil || r.APIKey != nil:
		return KindREST
	case r.Public:
		return KindPublic
	}
	return ""
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9-]+$`)
	// Prefixes are compared byte-wise by the router, so keep them to plain,
	// unescaped characters that cannot normalize into something else.
	prefixRE = regexp.MustCompile(`^/[A-Za-z0-9._~/-]*$`)
)

var (
	jwsAlgorithms = []string{
		"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
	}
	httpMethods  = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	signedParts  = []string{"body", "timestamp", "addressing"}
	rateLimitPer = []string{"subject", "client_ip", "client_cert", "route"}
	logLevels    = []string{"debug", "info", "warn", "error"}
	logFormats   = []string{"json", "text"}
	soapVersions = []string{"1.1", "1.2"}
	vaultMethods = []string{"token", "approle", "jwt", "kubernetes"}
	backends     = []string{"vault", "file"}
	replayStores = []string{"memory", "redis"}
)

// validator collects problems; the path helpers keep YAML key names.
type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

func (v *validator) required(path, val string) bool {
	if strings.TrimSpace(val) == "" {
		v.add(path, "required")
		return false
	}
	return true
}

func (v *validator) oneOf(path, val string, allowed []string) {
	if val == "" {
		v.add(path, "required (one of %s)", strings.Join(allowed, ", "))
	} else if !slices.Contains(allowed, val) {
		v.add(path, "%q is not one of %s", val, strings.Join(allowed, ", "))
	}
}

func (v *validator) hostPort(path, val string) {
	if !v.required(path, val) {
		return
	}
	_, port, err := net.SplitHostPort(val)
	if err != nil {
		v.add(path, "must be host:port")
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
		v.add(path, "invalid port %q", port)
	}
}

func (v *validator) httpURL(path, val string) {
	if !v.required(path, val) {
		return
	}
	if reason := checkHTTPURL(val); reason != "" {
		v.add(path, "%s", reason)
	}
}

func checkHTTPURL(val string) string {
	u, err := url.Parse(val)
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https":
		return "must be an absolute http or https URL"
	case u.Host == "":
		return "URL has no host"
	case u.User != nil:
		return "URL must not carry credentials"
	case u.Fragment != "" || strings.Contains(val, "#"):
		return "URL must not have a fragment"
	}
	return ""
}

// secretPath checks a KV path the way the secrets backends will: relative,
// slash-separated, no empty, . or .. segments. Empty values pass (optional fields).
func (v *validator) secretPath(path, val string) {
	if val == "" {
		return
	}
	bad := strings.HasPrefix(val, "/") || strings.HasSuffix(val, "/") ||
		strings.ContainsAny(val, "\\\x00 \t\r\n") || strings.Contains(val, "..")
	for _, seg := range strings.Split(val, "/") {
		bad = bad || seg == "" || seg == "."
	}
	if bad {
		v.add(path, "not a valid secret path (relative, slash-separated, no empty, . or .. segments)")
	}
}

func (v *validator) positive(path string, n int64) {
	if n <= 0 {
		v.add(path, "must be positive")
	}
}

// Validate checks the whole configuration and returns every problem at once,
// joined with errors.Join; each is a *FieldError. It returns nil for a valid config.
func (c *Config) Validate() error {
	v := &validator{}
	v.hostPort("listen", c.Listen)
	if c.AdminListen != "" {
		v.hostPort("admin_listen", c.AdminListen)
		// Port 0 asks the system for a free port, so two of them never clash.
		if _, port, _ := net.SplitHostPort(c.AdminListen); c.AdminListen == c.Listen && port != "0" {
			v.add("admin_listen", "must differ from listen")
		}
	}
	if c.Tracing != nil {
		v.httpURL("tracing.otlp_endpoint", c.Tracing.OTLPEndpoint)
		if r := c.Tracing.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
			v.add("tracing.sample_ratio", "must be between 0 and 1")
		}
	}
	if c.TLS != nil {
		c.TLS.validate(v)
		if c.TLS.PKI != nil && c.TLS.Secret == "" && c.Secrets.Backend != "vault" {
			v.add("tls.pki", "needs secrets.backend: vault")
		}
	}
	v.oneOf("log.level", c.Log.Level, logLevels)
	v.oneOf("log.format", c.Log.Format, logFormats)

	l := c.Limits
	v.positive("limits.max_body_bytes", l.MaxBodyBytes)
	// Each SOAP request reserves 10 x its body; a budget below one full-size
	// request would refuse it forever.
	switch {
	case l.MaxBodyBytes > math.MaxInt64/10:
		v.add("limits.max_body_bytes", "too large")
	case l.MaxBodyBytes > 0 && l.MemoryBudgetBytes < 10*l.MaxBodyBytes:
		v.add("limits.memory_budget_bytes", "must be at least 10 x limits.max_body_bytes (%d)", 10*l.MaxBodyBytes)
	}
	v.positive("limits.max_header_bytes", int64(l.MaxHeaderBytes))
	v.positive("limits.read_timeout", int64(l.ReadTimeout))
	v.positive("limits.upstream_timeout", int64(l.UpstreamTimeout))
	v.positive("limits.max_xml_depth", int64(l.MaxXMLDepth))
	v.positive("limits.max_xml_elements", int64(l.MaxXMLElements))
	v.positive("limits.shutdown_timeout", int64(l.ShutdownTimeout))
	for i, p := range c.TrustedProxies {
		if _, err := ParseTrustedProxy(p); err != nil {
			v.add(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not a CIDR or IP address", p)
		}
	}

	c.Secrets.validate(v)

	v.oneOf("replay.store", c.Replay.Store, replayStores)
	if rd := c.Replay.Redis; c.Replay.Store == "redis" {
		switch {
		case rd.Address != "" && len(rd.Addresses) > 0:
			v.add("replay.redis", "address and addresses are mutually exclusive")
		case len(rd.Addresses) > 0:
			for i, a := range rd.Addresses {
				v.hostPort(fmt.Sprintf("replay.redis.addresses[%d]", i), a)
			}
		default:
			v.hostPort("replay.redis.address", rd.Address)
		}
		if rd.SentinelMaster != "" && len(rd.Addresses) == 0 {
			v.add("replay.redis.sentinel_master", "needs addresses (the Sentinels)")
		}
	}

	if len(c.Routes) == 0 {
		v.add("routes", "required: at least one route")
	}
	names := map[string]int{}
	prefixes := map[string]int{}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		if b := r.Bridge; b != nil && b.Sign != nil && b.Sign.TransitKey != "" && c.Secrets.Backend != "vault" {
			v.add(p+".bridge.sign.transit_key", "needs secrets.backend: vault")
		}
		if s := r.SOAP; s != nil && s.Decrypt != nil && s.Decrypt.TransitKey != "" && c.Secrets.Backend != "vault" {
			v.add(p+".soap.decrypt.transit_key", "needs secrets.backend: vault")
		}
		if v.required(p+".name", r.Name) {
			if !nameRE.MatchString(r.Name) {
				v.add(p+".name", "must match [a-z0-9-]+")
			} else if j, dup := names[r.Name]; dup {
				v.add(p+".name", "duplicate of routes[%d].name", j)
			} else {
				names[r.Name] = i
			}
		}
		if v.required(p+".path_prefix", r.PathPrefix) {
			if reason := checkPrefix(r.PathPrefix); reason != "" {
				v.add(p+".path_prefix", "%s", reason)
			} else if j, dup := prefixes[r.PathPrefix]; dup {
				v.add(p+".path_prefix", "duplicate of routes[%d].path_prefix", j)
			} else {
				prefixes[r.PathPrefix] = i
			}
		}
		r.validate(v, p, c)
	}
	return errors.Join(v.errs...)
}

func checkPrefix(p string) string {
	if !strings.HasPrefix(p, "/") {
		return `must start with "/"`
	}
	if !prefixRE.MatchString(p) {
		return "may contain only letters, digits, and / . _ ~ -"
	}
	if p != "/" && strings.HasSuffix(p, "/") {
		return `must not end with "/"`
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if p != "/" && (seg == "" || seg == "." || seg == "..") {
			return "must not contain empty, . or .. segments"
		}
	}
	return ""
}

func (t *TLS) validate(v *validator) {
	switch {
	case t.Secret == "" && t.PKI == nil:
		v.add("tls", "exactly one of secret or pki is required")
	case t.Secret != "" && t.PKI != nil:
		v.add("tls", "secret and pki are mutually exclusive")
	case t.Secret != "":
		v.secretPath("tls.secret", t.Secret)
	case t.PKI != nil:
		v.required("tls.pki.mount", t.PKI.Mount)
		v.required("tls.pki.role", t.PKI.Role)
		v.required("tls.pki.common_name", t.PKI.CommonName)
	}
	v.secretPath("tls.client_ca", t.ClientCA)
}

func (s *Secrets) validate(v *validator) {
	v.oneOf("secrets.backend", s.Backend, backends)
	v.positive("secrets.refresh_interval", int64(s.RefreshInterval))
	switch s.Backend {
	case "file":
		v.required("secrets.file.dir", s.File.Dir)
	case "vault":
		v.httpURL("secrets.vault.address", s.Vault.Address)
		v.required("secrets.vault.kv_mount", s.Vault.KVMount)
		a := s.Vault.Auth
		v.oneOf("secrets.vault.auth.method", a.Method, vaultMethods)
		switch a.Method {
		case "approle":
			v.required("secrets.vault.auth.role_id", a.RoleID)
			v.required("secrets.vault.auth.secret_id_file", a.SecretIDFile)
		case "jwt":
			v.required("secrets.vault.auth.role", a.Role)
			v.required("secrets.vault.auth.jwt_file", a.JWTFile)
		case "kubernetes":
			v.required("secrets.vault.auth.role", a.Role)
		}
		if a.Mount != "" && (strings.Trim(a.Mount, "/") != a.Mount || strings.Contains(a.Mount, "..")) {
			v.add("secrets.vault.auth.mount", "must be a plain mount path (no leading or trailing /, no ..)")
		}
	}
}

func (r *Route) validate(v *validator, p string, c *Config) {
	switch {
	case r.SOAP == nil && r.OAuth == nil && r.APIKey == nil && r.Bridge == nil && !r.Public:
		v.add(p, "exactly one of soap, oauth, bridge or public: true is required")
		return
	case r.Public && (r.SOAP != nil || r.OAuth != nil || r.Bridge != nil):
		v.add(p, "public: true cannot be combined with soap, oauth or bridge")
		return
	case r.SOAP != nil && (r.OAuth != nil || r.Bridge != nil):
		v.add(p, "soap cannot be combined with oauth or bridge")
		return
	case r.APIKey != nil && (r.Public || r.SOAP != nil):
		v.add(p+".api_key", "only on oauth, bridge or API-key-only REST routes (not public or soap)")
		return
	}

	if r.Timeout < 0 {
		v.add(p+".timeout", "must not be negative")
	}
	if r.Retries < 0 || r.Retries > 5 {
		v.add(p+".retries", "must be between 0 and 5")
	}
	v.balancing(r, p)
	switch r.Kind() {
	case KindBridge:
		if r.Upstream != "" {
			v.add(p+".upstream", "not used by bridge routes (set bridge.upstream)")
		}
		if len(r.Upstreams) > 0 {
			v.add(p+".upstreams", "not used by bridge routes (set bridge.upstreams)")
		}
		if r.Timeout != 0 {
			v.add(p+".timeout", "not used by bridge routes (limits.upstream_timeout applies)")
		}
		if r.Retries != 0 {
			v.add(p+".retries", "not used by bridge routes (their SOAP calls are POSTs, never sent twice)")
		}
		// The bridge signs with the gateway's identity: without oauth it would
		// sign anything for anyone.
		if r.OAuth == nil {
			v.add(p+".oauth", "required on bridge routes")
		}
	default:
		v.upstreams(p, r.Upstream, r.Upstreams)
	}
	if r.SOAP != nil {
		r.SOAP.validate(v, p+".soap")
	}
	if r.OAuth != nil {
		r.OAuth.validate(v, p+".oauth")
	}
	if r.Bridge != nil {
		r.Bridge.validate(v, p+".bridge")
	}
	r.validateAuthz(v, p, c)
	r.validateTLSKeys(v, p, c)
	if r.OpenAPI != "" && r.Kind() != KindREST && r.Kind() != KindBridge {
		v.add(p+".openapi", "only on oauth, api_key or bridge routes")
	}
	if r.OpenAPIResponses && r.OpenAPI == "" {
		v.add(p+".openapi_responses", "needs openapi")
	}
	if r.KeepAuthorization && r.OAuth == nil {
		v.add(p+".keep_authorization", "only meaningful with oauth")
	}
	if rl := r.RateLimit; rl != nil {
		v.oneOf(p+".rate_limit.per", rl.Per, rateLimitPer)
		if rl.Per == "subject" && r.OAuth == nil && r.APIKey == nil && r.SOAP == nil {
			v.add(p+".rate_limit.per", "subject needs an authenticated route (soap, oauth or bridge)")
		}
		if rl.Per == "client_cert" && (c.TLS == nil || c.TLS.ClientCA == "") {
			v.add(p+".rate_limit.per", "client_cert needs tls.client_ca")
		}
		if !(rl.Rate > 0) { // also refuses NaN
			v.add(p+".rate_limit.rate", "must be positive")
		}
		if rl.Burst < 1 {
			v.add(p+".rate_limit.burst", "must be at least 1")
		}
	}
}

func (r *Route) validateTLSKeys(v *validator, p string, c *Config) {
	if h := r.ForwardClientCert; h != "" {
		canon := http.CanonicalHeaderKey(h)
		switch {
		case !validHeaderName(h):
			v.add(p+".forward_client_cert", "%q is not a valid header name", h)
		case slices.Contains(reservedForwardHeaders, canon):
			v.add(p+".forward_client_cert", "%s is reserved", canon)
		case c.TLS == nil || c.TLS.ClientCA == "":
			v.add(p+".forward_client_cert", "needs tls.client_ca")
		case r.OAuth != nil && slices.ContainsFunc(mapValues(r.OAuth.ForwardClaims), func(x string) bool {
			return http.CanonicalHeaderKey(x) == canon
		}):
			v.add(p+".forward_client_cert", "header %s already carries a claim", canon)
		}
	}
	if u := r.UpstreamTLS; u != nil {
		if u.CA == "" && u.Identity == "" {
			v.add(p+".upstream_tls", "set ca, identity or both")
		}
		v.secretPath(p+".upstream_tls.ca", u.CA)
		v.secretPath(p+".upstream_tls.identity", u.Identity)
		up := ""
		if urls := r.UpstreamURLs(); len(urls) > 0 {
			up = urls[0] // upstreams share their scheme
		}
		if !strings.HasPrefix(strings.ToLower(up), "https://") {
			v.add(p+".upstream_tls", "only meaningful with an https upstream")
		}
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, x := range m {
		out = append(out, x)
	}
	return out
}

// ParseTrustedProxy parses one trusted_proxies entry: a CIDR, or a single
// IP taken as a host prefix (/32 or /128).
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (s *SOAP) validate(v *validator, p string) {
	if v.required(p+".trust", s.Trust) {
		v.secretPath(p+".trust", s.Trust)
	}
	v.secretPath(p+".username_token", s.UsernameToken)
	v.secretPath(p+".sign_response", s.SignResponse)
	if s.Operations != "" {
		v.oneOf(p+".operations", s.Operations, []string{"from_wsdl"})
		if s.WSDL == "" {
			v.add(p+".operations", "needs wsdl")
		}
	}
	if s.Policy != "" {
		v.oneOf(p+".policy", s.Policy, []string{"from_wsdl"})
		if s.WSDL == "" {
			v.add(p+".policy", "needs wsdl")
		}
	}
	if s.ValidateBody && s.Operations != "from_wsdl" {
		v.add(p+".validate_body", "needs operations: from_wsdl")
	}
	if s.WSDLAddress != "" {
		if s.WSDL == "" {
			v.add(p+".wsdl_address", "needs wsdl")
		}
		v.httpURL(p+".wsdl_address", s.WSDLAddress)
	}
	if len(s.RequireSigned) == 0 {
		v.add(p+".require_signed", "must include body")
	} else {
		seen := map[string]bool{}
		for i, part := range s.RequireSigned {
			ip := fmt.Sprintf("%s.require_signed[%d]", p, i)
			switch {
			case !slices.Contains(signedParts, part):
				v.add(ip, "%q is not one of %s", part, strings.Join(signedParts, ", "))
			case seen[part]:
				v.add(ip, "duplicate %q", part)
			}
			seen[part] = true
		}
		if !seen["body"] {
			v.add(p+".require_signed", "must include body")
		}
	}
	v.positive(p+".timestamp.ttl", int64(s.Timestamp.TTL))
	v.positive(p+".timestamp.future_skew", int64(s.Timestamp.FutureSkew))
	s.validateSecurity(v, p)
}

func (o *OAuth) validate(v *validator, p string) {
	v.required(p+".issuer", o.Issuer)
	if len(o.Audience) == 0 {
		v.add(p+".audience", "required: at least one audience")
	}
	for i, a := range o.Audience {
		v.required(fmt.Sprintf("%s.audience[%d]", p, i), a)
	}

	jwt := o.JWKSURL != "" || o.JWKSSecret != "" || o.Discovery
	switch {
	case o.JWKSURL != "" && o.JWKSSecret != "":
		v.add(p, "jwks_url and jwks_secret are mutually exclusive")
	case o.Discovery && o.JWKSURL != "":
		v.add(p+".discovery", "jwks_url and discovery are mutually exclusive")
	case o.Discovery && o.JWKSSecret != "":
		v.add(p+".discovery", "jwks_secret and discovery are mutually exclusive")
	case !jwt && o.Introspection == nil:
		v.add(p, "one of jwks_url, jwks_secret or introspection is required")
	}
	if o.Discovery && o.Issuer != "" {
		if u, err := url.Parse(o.Issuer); err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			v.add(p+".issuer", "discovery needs an https issuer URL without query or fragment")
		}
	}
	if o.JWKSURL != "" {
		v.httpURL(p+".jwks_url", o.JWKSURL)
	}
	v.secretPath(p+".jwks_secret", o.JWKSSecret)
	if o.JWKSCACert != "" && o.JWKSURL == "" && !o.Discovery {
		v.add(p+".jwks_ca_cert", "only used with jwks_url or discovery")
	}

	if jwt && len(o.Algorithms) == 0 {
		v.add(p+".algorithms", "required: at least one algorithm")
	}
	for i, alg := range o.Algorithms {
		ap := fmt.Sprintf("%s.algorithms[%d]", p, i)
		switch {
		case strings.EqualFold(alg, "none"):
			v.add(ap, `"none" is never allowed`)
		case !slices.Contains(jwsAlgorithms, alg):
			v.add(ap, "%q is not one of %s", alg, strings.Join(jwsAlgorithms, ", "))
		case strings.HasPrefix(alg, "HS") && o.JWKSSecret == "":
			// An HMAC "key" from a public JWKS would let anyone mint tokens.
			v.add(ap, "%s needs jwks_secret", alg)
		}
	}

	if in := o.Introspection; in != nil {
		v.httpURL(p+".introspection.url", in.URL)
		if v.required(p+".introspection.client", in.Client) {
			v.secretPath(p+".introspection.client", in.Client)
		}
		v.positive(p+".introspection.cache_ttl", int64(in.CacheTTL))
	}

	for i, s := range o.Scopes {
		sp := fmt.Sprintf("%s.scopes[%d]", p, i)
		for j, m := range s.Methods {
			if !slices.Contains(httpMethods, m) {
				v.add(fmt.Sprintf("%s.methods[%d]", sp, j), "%q is not one of %s", m, strings.Join(httpMethods, ", "))
			}
		}
		if v.required(sp+".path", s.Path) && !strings.HasPrefix(s.Path, "/") {
			v.add(sp+".path", `must start with "/"`)
		}
		if len(s.AnyOf) == 0 {
			v.add(sp+".any_of", "required: at least one scope")
		}
		for j, sc := range s.AnyOf {
			v.required(fmt.Sprintf("%s.any_of[%d]", sp, j), sc)
		}
	}

	v.forwardHeaders(p+".forward_claims", o.ForwardClaims, "claim")
}

// forwardHeaders checks a map from a verified identity's fields (token
// claims, SAML attributes) to the headers that carry them upstream: valid
// names, none reserved, no header carrying two fields.
func (v *validator) forwardHeaders(p string, m map[string]string, field string) {
	headers := map[string]string{}
	for _, name := range sortedKeys(m) { // deterministic error order
		h := m[name]
		np := keyPath(p, name)
		canon := http.CanonicalHeaderKey(h)
		switch {
		case strings.TrimSpace(name) == "":
			v.add(p, "empty %s name", field)
		case !validHeaderName(h):
			v.add(np, "%q is not a valid header name", h)
		case slices.Contains(reservedForwardHeaders, canon):
			v.add(np, "%s is reserved", canon)
		case headers[canon] != "":
			v.add(np, "header %s already carries %s %s", canon, field, headers[canon])
		default:
			headers[canon] = name
		}
	}
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func (b *Bridge) validate(v *validator, p string) {
	v.upstreams(p, b.Upstream, b.Upstreams)
	v.oneOf(p+".soap_version", b.SOAPVersion, soapVersions)
	if len(b.Operations) == 0 {
		v.add(p+".operations", "required: at least one operation")
	}
	seen := map[string]int{}
	for i, op := range b.Operations {
		opPath := fmt.Sprintf("%s.operations[%d]", p, i)
		if v.required(opPath+".name", op.Name) {
			if !nameRE.MatchString(op.Name) {
				v.add(opPath+".name", "must match [a-z0-9-]+")
			} else if j, dup := seen[op.Name]; dup {
				v.add(opPath+".name", "duplicate of operations[%d].name", j)
			} else {
				seen[op.Name] = i
			}
		}
		v.required(opPath+".action", op.Action)
		v.required(opPath+".request_template", op.RequestTemplate)
	}
	if b.Sign == nil {
		v.add(p+".sign", "required")
	} else {
		if v.required(p+".sign.identity", b.Sign.Identity) {
			v.secretPath(p+".sign.identity", b.Sign.Identity)
		}
		if b.Sign.SAMLAssertion != "" {
			v.secretPath(p+".sign.saml_assertion", b.Sign.SAMLAssertion)
		}
	}
	if b.VerifyResponse != nil {
		if v.required(p+".verify_response.trust", b.VerifyResponse.Trust) {
			v.secretPath(p+".verify_response.trust", b.VerifyResponse.Trust)
		}
	}
	b.Encrypt.validate(v, p+".encrypt")
}

// validateAuthz checks a route's claim rules, DPoP, certificate binding,
// API key and CORS settings.
func (r *Route) validateAuthz(v *validator, p string, c *Config) {
	if o := r.OAuth; o != nil {
		op := p + ".oauth"
		for i, cr := range o.Claims {
			cp := fmt.Sprintf("%s.claims[%d]", op, i)
			for j, m := range cr.Methods {
				if !slices.Contains(httpMethods, m) {
					v.add(fmt.Sprintf("%s.methods[%d]", cp, j), "%q is not one of %s", m, strings.Join(httpMethods, ", "))
				}
			}
			if v.required(cp+".path", cr.Path) && !strings.HasPrefix(cr.Path, "/") {
				v.add(cp+".path", `must start with "/"`)
			}
			if len(cr.Require) == 0 {
				v.add(cp+".require", "required: at least one claim path")
			}
			paths := make([]string, 0, len(cr.Require))
			for k := range cr.Require {
				paths = append(paths, k)
			}
			slices.Sort(paths)
			for _, k := range paths {
				kp := keyPath(cp+".require", k)
				if k == "" || slices.Contains(strings.Split(k, "."), "") {
					v.add(kp, "a claim path is dot-separated names, none empty")
				}
				if len(cr.Require[k]) == 0 || slices.Contains(cr.Require[k], "") {
					v.add(kp, "required: at least one non-empty value")
				}
			}
		}
		if d := o.DPoP; d != nil {
			switch {
			case d.MaxAge < 0:
				v.add(op+".dpop.max_age", "must not be negative")
			case time.Duration(d.MaxAge) > time.Hour:
				v.add(op+".dpop.max_age", "at most 1h: a proof is a one-time, fresh signature")
			}
		}
		if o.RequireCertificateBinding && (c.TLS == nil || c.TLS.ClientCA == "") {
			v.add(op+".require_certificate_binding", "needs tls.client_ca (the client certificate comes from mTLS)")
		}
	}
	if k := r.APIKey; k != nil {
		if v.required(p+".api_key.secret", k.Secret) {
			v.secretPath(p+".api_key.secret", k.Secret)
		}
		canon := http.CanonicalHeaderKey(strings.ReplaceAll(k.Header, "_", "-"))
		switch {
		case !validHeaderName(k.Header):
			v.add(p+".api_key.header", "%q is not a valid header name", k.Header)
		case slices.Contains(reservedForwardHeaders, canon):
			v.add(p+".api_key.header", "%s is reserved", canon)
		case strings.HasPrefix(canon, "X-Auth-"):
			// The front door removes the X-Auth-* identity family from every request.
			v.add(p+".api_key.header", "X-Auth-* headers are identity headers the gateway sets, never a client")
		case r.OAuth != nil && slices.ContainsFunc(mapValues(r.OAuth.ForwardClaims), func(h string) bool {
			return http.CanonicalHeaderKey(strings.ReplaceAll(h, "_", "-")) == canon
		}):
			v.add(p+".api_key.header", "%s also carries a forwarded claim", canon)
		}
	}
	if cs := r.CORS; cs != nil {
		cp := p + ".cors"
		if r.OAuth == nil && r.APIKey == nil {
			v.add(cp, "only on oauth or api_key routes")
		}
		if len(cs.AllowOrigins) == 0 {
			v.add(cp+".allow_origins", "required: at least one origin")
		}
		for i, o := range cs.AllowOrigins {
			ip := fmt.Sprintf("%s.allow_origins[%d]", cp, i)
			if o == "*" {
				if cs.AllowCredentials {
					v.add(ip, `"*" cannot be combined with allow_credentials: name the origins`)
				}
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
				u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				v.add(ip, "%q is not an origin (scheme://host[:port])", o)
			}
		}
		for i, m := range cs.AllowMethods {
			if !slices.Contains(httpMethods, m) {
				v.add(fmt.Sprintf("%s.allow_methods[%d]", cp, i), "%q is not one of %s", m, strings.Join(httpMethods, ", "))
			}
		}
		for i, h := range cs.AllowHeaders {
			if !validHeaderName(h) {
				v.add(fmt.Sprintf("%s.allow_headers[%d]", cp, i), "%q is not a valid header name", h)
			}
		}
		if cs.MaxAge < 0 {
			v.add(cp+".max_age", "must not be negative")
		}
	}
}

// MaxUpstreams bounds a route's upstreams list.
const MaxUpstreams = 32

// balances are the balance policies.
var balances = []string{"round_robin", "least_requests"}

// upstreams checks a route's (or bridge's) upstream or upstreams under p:
// exactly one of them, each an http(s) URL, all alike but for host and port
// so that a request means the same on each.
func (v *validator) upstreams(p, one string, many []string) {
	switch {
	case one != "" && len(many) > 0:
		v.add(p+".upstreams", "set upstream or upstreams, not both")
		return
	case len(many) == 0:
		if one == "" {
			v.add(p+".upstream", "required")
			return
		}
		v.httpURL(p+".upstream", one)
		return
	case len(many) > MaxUpstreams:
		v.add(p+".upstreams", "at most %d upstreams", MaxUpstreams)
		return
	}
	var first *url.URL
	hosts := map[string]int{}
	for i, raw := range many {
		ip := fmt.Sprintf("%s.upstreams[%d]", p, i)
		if reason := checkHTTPURL(raw); reason != "" {
			v.add(ip, "%s", reason)
			continue
		}
		u, _ := url.Parse(raw)
		host := strings.ToLower(u.Host)
		if j, dup := hosts[host]; dup {
			v.add(ip, "same host as upstreams[%d]", j)
			continue
		}
		hosts[host] = i
		if first == nil {
			first = u
			continue
		}
		if !strings.EqualFold(u.Scheme, first.Scheme) || u.EscapedPath() != first.EscapedPath() || u.RawQuery != first.RawQuery {
			v.add(ip, "must differ from upstreams[0] only in host and port (same scheme, path and query)")
		}
	}
}

// balancing checks balance, passive_health and health_check.
func (v *validator) balancing(r *Route, p string) {
	v.oneOf(p+".balance", r.Balance, balances)
	if ph := r.PassiveHealth; ph.Failures < 1 || ph.Failures > 100 {
		v.add(p+".passive_health.failures", "must be between 1 and 100")
	}
	if r.PassiveHealth.EjectFor < 0 {
		v.add(p+".passive_health.eject_for", "must not be negative")
	}
	h := r.HealthCheck
	if h == nil {
		return
	}
	hp := p + ".health_check"
	if v.required(hp+".path", h.Path) {
		if u, err := url.Parse(h.Path); err != nil || !strings.HasPrefix(h.Path, "/") || strings.HasPrefix(h.Path, "//") ||
			u.Host != "" || u.Fragment != "" || strings.ContainsAny(h.Path, "# \t\r\n") {
			v.add(hp+".path", "must be an absolute path such as /healthz (a query is allowed)")
		}
	}
	if h.Interval < Duration(time.Second) {
		v.add(hp+".interval", "must be at least 1s")
	}
	if h.Timeout <= 0 || h.Timeout > h.Interval {
		v.add(hp+".timeout", "must be positive and at most interval")
	}
}
