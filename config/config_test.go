package config

import (
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func loadFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadFullExample(t *testing.T) {
	c, err := Load(loadFile(t, "testdata/full.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if len(c.Routes) != 4 {
		t.Fatalf("routes = %d, want 4", len(c.Routes))
	}
	kinds := []string{}
	for i := range c.Routes {
		kinds = append(kinds, c.Routes[i].Kind())
	}
	if want := []string{KindSOAP, KindREST, KindBridge, KindPublic}; !slices.Equal(kinds, want) {
		t.Errorf("kinds = %v, want %v", kinds, want)
	}
	if got := c.Routes[0].SOAP.Timestamp.TTL.D(); got != 300*time.Second {
		t.Errorf("ttl = %v", got)
	}
	if got := c.Routes[1].OAuth.ForwardClaims["sub"]; got != "X-Auth-Subject" {
		t.Errorf("forward_claims.sub = %q", got)
	}
	if got := c.Routes[1].RateLimit.Burst; got != 200 {
		t.Errorf("burst = %d", got)
	}
	if got := c.Secrets.RefreshInterval.D(); got != 5*time.Minute {
		t.Errorf("refresh_interval = %v", got)
	}
}

const minimal = `
secrets: {backend: file, file: {dir: ./s}}
routes:
  - name: a
    path_prefix: /a
    upstream: http://u
    soap: {trust: t}
  - name: b
    path_prefix: /b
    upstream: http://u
    oauth: {issuer: i, audience: [x], jwks_url: "https://idp/jwks", algorithms: [RS256], introspection: {url: "https://idp/i", client: c}}
  - name: c
    path_prefix: /c
    oauth: {issuer: i, audience: [x], jwks_secret: s, algorithms: [HS256]}
    bridge: {upstream: http://u, operations: [{name: op, action: a, request_template: t}], sign: {identity: id}}
`

func TestDefaults(t *testing.T) {
	c, err := Load([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, "127.0.0.1:8080"},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"max_body_bytes", c.Limits.MaxBodyBytes, int64(10485760)},
		{"memory_budget_bytes", c.Limits.MemoryBudgetBytes, int64(536870912)},
		{"max_header_bytes", c.Limits.MaxHeaderBytes, 65536},
		{"read_timeout", c.Limits.ReadTimeout.D(), 30 * time.Second},
		{"upstream_timeout", c.Limits.UpstreamTimeout.D(), 60 * time.Second},
		{"max_xml_depth", c.Limits.MaxXMLDepth, 64},
		{"max_xml_elements", c.Limits.MaxXMLElements, 500000},
		{"refresh_interval", c.Secrets.RefreshInterval.D(), 5 * time.Minute},
		{"kv_mount", c.Secrets.Vault.KVMount, "secret"},
		{"auth.method", c.Secrets.Vault.Auth.Method, "token"},
		{"replay.store", c.Replay.Store, "memory"},
		{"redis.prefix", c.Replay.Redis.Prefix, "wsgate:"},
		{"require_signed", strings.Join(c.Routes[0].SOAP.RequireSigned, ","), "body,timestamp"},
		{"ttl", c.Routes[0].SOAP.Timestamp.TTL.D(), 300 * time.Second},
		{"future_skew", c.Routes[0].SOAP.Timestamp.FutureSkew.D(), 60 * time.Second},
		{"strip_security_header", *c.Routes[0].SOAP.StripSecurityHeader, true},
		{"leeway", c.Routes[1].OAuth.Leeway.D(), 60 * time.Second},
		{"cache_ttl", c.Routes[1].OAuth.Introspection.CacheTTL.D(), 60 * time.Second},
		{"soap_version", c.Routes[2].Bridge.SOAPVersion, "1.1"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr error
		wantSub string // the error must name the offending key or line
	}{
		{"empty", "", ErrEmpty, ""},
		{"only comment", "# nothing\n", ErrEmpty, ""},
		{"unknown top-level key", "listen: a:1\nlisten_addr: x\n", ErrDecode, "listen_addr"},
		{"unknown nested key", "routes:\n  - name: a\n    soap: {trust: t, trsut: x}\n", ErrDecode, "line 3: field trsut"},
		{"duplicate key", "listen: a:1\nlisten: b:2\n", ErrDecode, "listen"},
		{"garbage duration", "limits: {read_timeout: soon}\n", ErrDecode, "soon"},
		{"negative duration", "limits: {read_timeout: -5s}\n", ErrDecode, "negative"},
		{"bare number duration", "limits: {read_timeout: 30}\n", ErrDecode, "line 1"},
		{"duration as map", "limits: {read_timeout: {a: 1}}\n", ErrDecode, "duration"},
		{"wrong type", "routes: yes\n", ErrDecode, "line 1"},
		{"two documents", "listen: a:1\n---\nlisten: b:2\n", ErrMultipleDocuments, ""},
		{"syntax", "listen: [\n", ErrDecode, "line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load([]byte(tt.doc))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if c != nil {
				t.Errorf("config returned with error")
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("err %q does not mention %q", err, tt.wantSub)
			}
		})
	}
}

const badSecret = "not a valid secret path (relative, slash-separated, no empty, . or .. segments)"

// base is a valid config; each invalid case patches it.
func base() *Config {
	c, err := Load([]byte(minimal))
	if err != nil {
		panic(err)
	}
	return c
}

func TestValidateInvalid(t *testing.T) {
	tests := []struct {
		name  string
		patch func(c *Config)
		want  []string // exact problems, in order
	}{
		{"listen not host:port", func(c *Config) { c.Listen = "8080" }, []string{"listen: must be host:port"}},
		{"listen bad port", func(c *Config) { c.Listen = "h:99999" }, []string{`listen: invalid port "99999"`}},
		{"admin same as listen", func(c *Config) { c.AdminListen = c.Listen }, []string{"admin_listen: must differ from listen"}},
		{"both on a free port is allowed", func(c *Config) { c.Listen, c.AdminListen = "127.0.0.1:0", "127.0.0.1:0" }, nil},
		{"tls neither", func(c *Config) { c.TLS = &TLS{} }, []string{"tls: exactly one of secret or pki is required"}},
		{"tls both", func(c *Config) { c.TLS = &TLS{Secret: "s", PKI: &PKI{}} }, []string{"tls: secret and pki are mutually exclusive"}},
		{"tls pki fields", func(c *Config) { c.TLS = &TLS{PKI: &PKI{Mount: "pki"}} }, []string{"tls.pki.role: required", "tls.pki.common_name: required",
			"tls.pki: needs secrets.backend: vault"}},
		{"transit needs vault", func(c *Config) {
			c.Secrets.Backend, c.Secrets.File.Dir = "file", "secrets"
			for i := range c.Routes {
				if c.Routes[i].Bridge != nil {
					c.Routes[i].Bridge.Sign.TransitKey = "orders"
				}
			}
		}, []string{"routes[2].bridge.sign.transit_key: needs secrets.backend: vault"}},
		{"log values", func(c *Config) { c.Log = Log{Level: "loud", Format: "xml"} }, []string{
			`log.level: "loud" is not one of debug, info, warn, error`, `log.format: "xml" is not one of json, text`}},
		{"limits", func(c *Config) { c.Limits.MaxBodyBytes = -1; c.Limits.MaxXMLDepth = -2 }, []string{
			"limits.max_body_bytes: must be positive", "limits.max_xml_depth: must be positive"}},
		{"backend missing", func(c *Config) { c.Secrets.Backend = "" }, []string{"secrets.backend: required (one of vault, file)"}},
		{"file dir", func(c *Config) { c.Secrets.File.Dir = "" }, []string{"secrets.file.dir: required"}},
		{"vault", func(c *Config) {
			c.Secrets.Backend = "vault"
			c.Secrets.Vault.Address = "127.0.0.1:8200"
			c.Secrets.Vault.Auth.Method = "approle"
		}, []string{"secrets.vault.address: must be an absolute http or https URL",
			"secrets.vault.auth.role_id: required", "secrets.vault.auth.secret_id_file: required"}},
		{"vault method", func(c *Config) {
			c.Secrets.Backend = "vault"
			c.Secrets.Vault.Address = "https://vault:8200"
			c.Secrets.Vault.Auth.Method = "ldap"
		}, []string{`secrets.vault.auth.method: "ldap" is not one of token, approle, jwt, kubernetes`}},
		{"redis", func(c *Config) { c.Replay.Store = "redis" }, []string{"replay.redis.address: required"}},
		{"replay store", func(c *Config) { c.Replay.Store = "disk" }, []string{`replay.store: "disk" is not one of memory, redis`}},
		{"no routes", func(c *Config) { c.Routes = nil }, []string{"routes: required: at least one route"}},
		{"route name", func(c *Config) { c.Routes[1].Name = "Billing_1" }, []string{"routes[1].name: must match [a-z0-9-]+"}},
		{"duplicate name", func(c *Config) { c.Routes[2].Name = "a" }, []string{"routes[2].name: duplicate of routes[0].name"}},
		{"prefix slash", func(c *Config) { c.Routes[0].PathPrefix = "a" }, []string{`routes[0].path_prefix: must start with "/"`}},
		{"prefix trailing", func(c *Config) { c.Routes[0].PathPrefix = "/a/" }, []string{`routes[0].path_prefix: must not end with "/"`}},
		{"prefix dots", func(c *Config) { c.Routes[0].PathPrefix = "/a/../b" }, []string{"routes[0].path_prefix: must not contain empty, . or .. segments"}},
		{"prefix escape", func(c *Config) { c.Routes[0].PathPrefix = "/a%2f" }, []string{"routes[0].path_prefix: may contain only letters, digits, and / . _ ~ -"}},
		{"duplicate prefix", func(c *Config) { c.Routes[1].PathPrefix = "/a" }, []string{"routes[1].path_prefix: duplicate of routes[0].path_prefix"}},
		{"no kind", func(c *Config) { c.Routes[0].SOAP = nil }, []string{"routes[0]: exactly one of soap, oauth, bridge or public: true is required"}},
		{"soap+oauth", func(c *Config) { c.Routes[0].OAuth = c.Routes[1].OAuth }, []string{"routes[0]: soap cannot be combined with oauth or bridge"}},
		{"public+soap", func(c *Config) { c.Routes[0].Public = true }, []string{"routes[0]: public: true cannot be combined with soap, oauth or bridge"}},
		{"soap+bridge", func(c *Config) { c.Routes[0].Bridge = c.Routes[2].Bridge }, []string{"routes[0]: soap cannot be combined with oauth or bridge"}},
		{"public+bridge", func(c *Config) { c.Routes[2].Public = true }, []string{"routes[2]: public: true cannot be combined with soap, oauth or bridge"}},
		{"upstream missing", func(c *Config) { c.Routes[0].Upstream = "" }, []string{"routes[0].upstream: required"}},
		{"upstream relative", func(c *Config) { c.Routes[0].Upstream = "/ws" }, []string{"routes[0].upstream: must be an absolute http or https URL"}},
		{"upstream scheme", func(c *Config) { c.Routes[0].Upstream = "ftp://h/x" }, []string{"routes[0].upstream: must be an absolute http or https URL"}},
		{"upstream creds", func(c *Config) { c.Routes[0].Upstream = "http://u:p@h/x" }, []string{"routes[0].upstream: URL must not carry credentials"}},
		{"upstream on bridge", func(c *Config) { c.Routes[2].Upstream = "http://u" }, []string{"routes[2].upstream: not used by bridge routes (set bridge.upstream)"}},
		{"soap trust", func(c *Config) { c.Routes[0].SOAP.Trust = "" }, []string{"routes[0].soap.trust: required"}},
		{"secret paths", func(c *Config) {
			c.TLS = &TLS{Secret: "/abs", ClientCA: "a/../b"}
			c.Routes[0].SOAP.Trust = "a//b"
			c.Routes[0].SOAP.UsernameToken = `a\b`
			c.Routes[1].OAuth.Introspection.Client = "c/"
			c.Routes[2].OAuth.JWKSSecret = "./k"
			c.Routes[2].Bridge.Sign.Identity = "id entity"
		}, []string{
			"tls.secret: " + badSecret, "tls.client_ca: " + badSecret,
			"routes[0].soap.trust: " + badSecret, "routes[0].soap.username_token: " + badSecret,
			"routes[1].oauth.introspection.client: " + badSecret,
			"routes[2].oauth.jwks_secret: " + badSecret, "routes[2].bridge.sign.identity: " + badSecret}},
		{"require_signed empty", func(c *Config) { c.Routes[0].SOAP.RequireSigned = []string{} }, []string{"routes[0].soap.require_signed: must include body"}},
		{"require_signed values", func(c *Config) { c.Routes[0].SOAP.RequireSigned = []string{"timestamp", "header", "timestamp"} }, []string{
			`routes[0].soap.require_signed[1]: "header" is not one of body, timestamp, addressing`,
			`routes[0].soap.require_signed[2]: duplicate "timestamp"`,
			"routes[0].soap.require_signed: must include body"}},
		{"timestamp zero", func(c *Config) { c.Routes[0].SOAP.Timestamp.TTL = 0 }, []string{"routes[0].soap.timestamp.ttl: must be positive"}},
		{"oauth issuer audience", func(c *Config) { o := c.Routes[1].OAuth; o.Issuer = ""; o.Audience = nil }, []string{
			"routes[1].oauth.issuer: required", "routes[1].oauth.audience: required: at least one audience"}},
		{"oauth both key sources", func(c *Config) { c.Routes[1].OAuth.JWKSSecret = "s" }, []string{"routes[1].oauth: jwks_url and jwks_secret are mutually exclusive"}},
		{"oauth no key source", func(c *Config) { o := c.Routes[1].OAuth; o.JWKSURL = ""; o.Introspection = nil }, []string{
			"routes[1].oauth: one of jwks_url, jwks_secret or introspection is required"}},
		{"oauth algorithms empty", func(c *Config) { c.Routes[1].OAuth.Algorithms = nil }, []string{"routes[1].oauth.algorithms: required: at least one algorithm"}},
		{"oauth algorithms bad", func(c *Config) { c.Routes[1].OAuth.Algorithms = []string{"none", "RS1", "HS256"} }, []string{
			`routes[1].oauth.algorithms[0]: "none" is never allowed`,
			`routes[1].oauth.algorithms[1]: "RS1" is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512`,
			"routes[1].oauth.algorithms[2]: HS256 needs jwks_secret"}},
		{"introspection alone ok without algorithms", func(c *Config) { o := c.Routes[1].OAuth; o.JWKSURL = ""; o.Algorithms = nil }, nil},
		{"introspection fields", func(c *Config) { c.Routes[1].OAuth.Introspection = &Introspection{CacheTTL: Duration(time.Second)} }, []string{
			"routes[1].oauth.introspection.url: required", "routes[1].oauth.introspection.client: required"}},
		{"scopes", func(c *Config) { c.Routes[1].OAuth.Scopes = []ScopeRule{{Methods: []string{"get"}}} }, []string{
			`routes[1].oauth.scopes[0].methods[0]: "get" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS`,
			"routes[1].oauth.scopes[0].path: required", "routes[1].oauth.scopes[0].any_of: required: at least one scope"}},
		{"forward claims", func(c *Config) {
			c.Routes[1].OAuth.ForwardClaims = map[string]string{"a": "Authorization", "b": "bad header", "c": "X-A", "d": "x-a"}
		}, []string{"routes[1].oauth.forward_claims.a: Authorization is reserved",
			`routes[1].oauth.forward_claims.b: "bad header" is not a valid header name`,
			"routes[1].oauth.forward_claims.d: header X-A already carries claim c"}},
		{"forward claims: every reserved header", func(c *Config) {
			// One list for claims, SAML attributes and the client certificate:
			// framing, hop-by-hop, credentials and the gateway's own headers.
			c.Routes[1].OAuth.ForwardClaims = map[string]string{"a": "content-encoding", "b": "Keep-Alive",
				"c": "proxy-connection", "d": "SOAPAction", "e": "x-request-id", "f": "Cookie", "g": "DPoP",
				"h": "origin", "i": "Expect", "j": "Content-Digest", "k": "Digest", "l": "content-range"}
		}, []string{"routes[1].oauth.forward_claims.a: Content-Encoding is reserved",
			"routes[1].oauth.forward_claims.b: Keep-Alive is reserved",
			"routes[1].oauth.forward_claims.c: Proxy-Connection is reserved",
			"routes[1].oauth.forward_claims.d: Soapaction is reserved",
			"routes[1].oauth.forward_claims.e: X-Request-Id is reserved",
			"routes[1].oauth.forward_claims.f: Cookie is reserved",
			"routes[1].oauth.forward_claims.g: Dpop is reserved",
			"routes[1].oauth.forward_claims.h: Origin is reserved",
			"routes[1].oauth.forward_claims.i: Expect is reserved",
			"routes[1].oauth.forward_claims.j: Content-Digest is reserved",
			"routes[1].oauth.forward_claims.k: Digest is reserved",
			"routes[1].oauth.forward_claims.l: Content-Range is reserved"}},
		{"rate limit", func(c *Config) { c.Routes[1].RateLimit = &RateLimit{Per: "user", Rate: 0, Burst: 0} }, []string{
			`routes[1].rate_limit.per: "user" is not one of subject, client_ip, client_cert, route`,
			"routes[1].rate_limit.rate: must be positive", "routes[1].rate_limit.burst: must be at least 1"}},
		{"rate limit client_cert without mTLS", func(c *Config) { c.Routes[1].RateLimit = &RateLimit{Per: "client_cert", Rate: 1, Burst: 1} }, []string{
			"routes[1].rate_limit.per: client_cert needs tls.client_ca"}},
		{"bridge without oauth", func(c *Config) { c.Routes[2].OAuth = nil }, []string{"routes[2].oauth: required on bridge routes"}},
		{"bridge fields", func(c *Config) {
			b := c.Routes[2].Bridge
			b.Upstream = ""
			b.SOAPVersion = "2.0"
			b.Operations = []Operation{{Name: "op"}, {Name: "op", Action: "a", RequestTemplate: "t"}, {Name: "Bad"}}
			b.Sign = &BridgeSign{}
		}, []string{
			"routes[2].bridge.upstream: required",
			`routes[2].bridge.soap_version: "2.0" is not one of 1.1, 1.2`,
			"routes[2].bridge.operations[0].action: required",
			"routes[2].bridge.operations[0].request_template: required",
			"routes[2].bridge.operations[1].name: duplicate of operations[0].name",
			"routes[2].bridge.operations[2].name: must match [a-z0-9-]+",
			"routes[2].bridge.operations[2].action: required",
			"routes[2].bridge.operations[2].request_template: required",
			"routes[2].bridge.sign.identity: required"}},
		{"trusted proxies", func(c *Config) {
			c.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.1", "::1", "10.0.0.0/33", "proxy.local"}
		}, []string{
			`trusted_proxies[3]: "10.0.0.0/33" is not a CIDR or IP address`, `trusted_proxies[4]: "proxy.local" is not a CIDR or IP address`}},
		{"shutdown timeout", func(c *Config) { c.Limits.ShutdownTimeout = -1 }, []string{"limits.shutdown_timeout: must be positive"}},
		{"memory budget under 10 bodies", func(c *Config) { c.Limits.MaxBodyBytes, c.Limits.MemoryBudgetBytes = 1<<20, 10<<20-1 }, []string{
			"limits.memory_budget_bytes: must be at least 10 x limits.max_body_bytes (10485760)"}},
		{"memory budget of exactly 10 bodies", func(c *Config) { c.Limits.MaxBodyBytes, c.Limits.MemoryBudgetBytes = 1<<20, 10<<20 }, nil},
		{"body cap overflowing the budget", func(c *Config) { c.Limits.MaxBodyBytes = math.MaxInt64 / 5 }, []string{"limits.max_body_bytes: too large"}},
		{"forward_client_cert without mTLS", func(c *Config) { c.Routes[0].ForwardClientCert = "X-Client-Subject" }, []string{
			"routes[0].forward_client_cert: needs tls.client_ca"}},
		{"forward_client_cert headers", func(c *Config) {
			c.TLS = &TLS{Secret: "tls", ClientCA: "cas"}
			c.Routes[0].ForwardClientCert = "X Client"
			c.Routes[1].ForwardClientCert = "authorization"
			c.Routes[2].OAuth.ForwardClaims = map[string]string{"sub": "X-Sub"}
			c.Routes[2].ForwardClientCert = "x-sub"
		}, []string{`routes[0].forward_client_cert: "X Client" is not a valid header name`,
			"routes[1].forward_client_cert: Authorization is reserved",
			"routes[2].forward_client_cert: header X-Sub already carries a claim"}},
		{"upstream_tls", func(c *Config) {
			c.Routes[0].UpstreamTLS = &UpstreamTLS{}
			c.Routes[1].UpstreamTLS = &UpstreamTLS{CA: "/abs", Identity: "a//b"}
		}, []string{"routes[0].upstream_tls: set ca, identity or both", "routes[0].upstream_tls: only meaningful with an https upstream",
			"routes[1].upstream_tls.ca: " + badSecret, "routes[1].upstream_tls.identity: " + badSecret,
			"routes[1].upstream_tls: only meaningful with an https upstream"}},
		{"bridge no ops no sign", func(c *Config) { c.Routes[2].Bridge.Operations = nil; c.Routes[2].Bridge.Sign = nil }, []string{
			"routes[2].bridge.operations: required: at least one operation", "routes[2].bridge.sign: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.patch(c)
			wantProblems(t, c, tt.want)
		})
	}
}

// The operations keys accept what they document.
func TestValidateOperationsKeys(t *testing.T) {
	c := base()
	c.TLS = &TLS{Secret: "wsgate/tls/listener", ClientCA: "wsgate/tls/clients"}
	c.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"}
	c.Routes[0].ForwardClientCert = "X-Client-Subject"
	c.Routes[0].Upstream = "https://u"
	c.Routes[0].UpstreamTLS = &UpstreamTLS{CA: "wsgate/trust/upstream", Identity: "wsgate/signing/client"}
	c.Routes[0].RateLimit = &RateLimit{Per: "client_cert", Rate: 1, Burst: 1}
	c.Routes[2].Bridge.Upstream = "https://u"
	c.Routes[2].UpstreamTLS = &UpstreamTLS{CA: "wsgate/trust/upstream"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Limits.ShutdownTimeout.D() != DefaultShutdownTimeout {
		t.Errorf("shutdown_timeout default %s", c.Limits.ShutdownTimeout)
	}
	for in, want := range map[string]string{"192.0.2.1": "192.0.2.1/32", "10.1.2.3/8": "10.0.0.0/8", "::ffff:192.0.2.1": "192.0.2.1/32", "::1": "::1/128"} {
		if p, err := ParseTrustedProxy(in); err != nil || p.String() != want {
			t.Errorf("ParseTrustedProxy(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

func TestValidateReportsEverything(t *testing.T) {
	doc := `
listen: nowhere
log: {level: chatty}
secrets: {backend: file}
routes:
  - name: A
    path_prefix: a
    soap: {}
  - name: b
    path_prefix: /b
    public: true
`
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("errors.As FieldError failed: %v", err)
	}
	var paths []string
	for _, fe := range FieldErrors(err) {
		paths = append(paths, fe.Path)
	}
	want := []string{"listen", "log.level", "secrets.file.dir", "routes[0].name", "routes[0].path_prefix",
		"routes[0].upstream", "routes[0].soap.trust", "routes[1].upstream"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths = %q, want %q", paths, want)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("error text has %d lines, want %d", n, len(want))
	}
}

func TestKindInvalid(t *testing.T) {
	if k := (&Route{}).Kind(); k != "" {
		t.Errorf("Kind of empty route = %q", k)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(minimal))
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte("routes: [{name: a, soap: {timestamp: {ttl: 1h}}}]"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("limits: {read_timeout: 9999999999999h}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load(data)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with error")
			}
			return
		}
		for _, fe := range FieldErrors(c.Validate()) {
			if fe.Path == "" || fe.Reason == "" {
				t.Fatalf("empty FieldError %#v", fe)
			}
		}
		for i := range c.Routes {
			_ = c.Routes[i].Kind()
		}
	})
}

// wantProblems validates c and requires exactly the problems want, in order.
func wantProblems(t *testing.T, c *Config, want []string) {
	t.Helper()
	var got []string
	for _, fe := range FieldErrors(c.Validate()) {
		got = append(got, fe.Error())
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got  %q\n want %q", got, want)
	}
}
