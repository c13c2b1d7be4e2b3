// Package config defines wsgate's configuration file: one typed struct, strict
// YAML decoding (unknown keys are errors), defaults, and a Validate that reports
// every problem at once. It performs no I/O beyond what the caller hands it.
package config

import "time"

// Config is the whole wsgate configuration file.
type Config struct {
	// Listen is the proxy listener address, host:port. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// TLS enables TLS on the proxy listener; absent means plain HTTP.
	TLS *TLS `yaml:"tls"`
	// AdminListen is the address of /healthz, /readyz and /metrics; never the proxy listener.
	AdminListen string `yaml:"admin_listen"`
	// Log selects the slog level and format.
	Log Log `yaml:"log"`
	// TrustedProxies lists the CIDRs (or single IPs) of proxies in front of wsgate. Only from
	// these peers are X-Request-ID and X-Forwarded-For believed; from anyone else the request ID
	// is generated and the client IP is the peer address. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// StripRequestHeaders names request headers removed from every request on every route, in
	// any letter case, before any route runs (e.g. an identity header a backend trusts that no
	// route sets). Headers a route sets from a verified identity (forward_claims,
	// forward_client_cert, X-Auth-*) are always removed. Default: none.
	StripRequestHeaders []string `yaml:"strip_request_headers"`
	// Limits bound request sizes and timeouts.
	Limits Limits `yaml:"limits"`
	// Secrets selects where keys, certificates and passwords come from.
	Secrets Secrets `yaml:"secrets"`
	// Replay selects the shared replay cache for WS-Security.
	Replay Replay `yaml:"replay"`
	// Routes are matched by longest path_prefix.
	Routes []Route `yaml:"routes"`
	// Tracing exports OpenTelemetry spans over OTLP/HTTP; absent means no tracing.
	Tracing *Tracing `yaml:"tracing"`
}

// Tracing configures OpenTelemetry traces. Spans carry the route, protocol,
// outcome and status, never a token, header value or body.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP URL, e.g. http://otel-collector:4318;
	// spans are posted to its path, or /v1/traces when it has none. Required.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the fraction of traces recorded, 0..1, decided on the trace ID (a
	// client's sampled flag does not force recording). Default 1.
	SampleRatio *float64 `yaml:"sample_ratio"`
}

// TLS configures the proxy listener's certificate.
type TLS struct {
	// Secret is a KV secret with fields certificate (PEM chain, leaf first) and private_key;
	// a changed secret is served to new connections after the next refresh. TLS 1.2 is the
	// minimum (ECDHE key exchange with AEAD ciphers only); TLS 1.3 is chosen when offered.
	Secret string `yaml:"secret"`
	// PKI issues and renews the listener certificate from Vault's PKI engine.
	PKI *PKI `yaml:"pki"`
	// ClientCA, when set, requires client certificates chaining to this bundle secret (field
	// certificates) on every connection (mTLS). The bundle is re-read on refresh and SIGHUP.
	ClientCA string `yaml:"client_ca"`
}

// PKI names a Vault PKI role to issue the listener certificate from.
type PKI struct {
	// Mount is the PKI secrets engine mount, e.g. pki.
	Mount string `yaml:"mount"`
	// Role is the PKI role to issue with.
	Role string `yaml:"role"`
	// CommonName is the certificate's common name.
	CommonName string `yaml:"common_name"`
	// TTL is the requested certificate lifetime.
	TTL Duration `yaml:"ttl"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or text. Default json.
	Format string `yaml:"format"`
}

// Limits bound what a client may send and how long upstreams may take.
type Limits struct {
	// MaxBodyBytes caps a request body. Default 10485760 (10 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MemoryBudgetBytes bounds the memory all SOAP requests in flight may hold: each holds 10 x
	// the body it has received, reserving 10 x its first 64 KiB before reading and the rest as the
	// body arrives; a request that cannot get its share within 5s is answered 503 with
	// Retry-After. At least 10 x max_body_bytes. Default 536870912 (512 MiB).
	MemoryBudgetBytes int64 `yaml:"memory_budget_bytes"`
	// MaxHeaderBytes caps request headers. Default 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadTimeout bounds reading a whole request. Default 30s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// UpstreamTimeout bounds an upstream round trip. Default 60s.
	UpstreamTimeout Duration `yaml:"upstream_timeout"`
	// MaxXMLDepth caps element nesting in a SOAP message. Default 64.
	MaxXMLDepth int `yaml:"max_xml_depth"`
	// MaxXMLElements caps the number of elements in a SOAP message. Default 500000.
	MaxXMLElements int `yaml:"max_xml_elements"`
	// ShutdownTimeout bounds how long in-flight requests may run after SIGTERM/SIGINT before
	// their connections are closed. Default 30s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// Secrets selects the secrets backend.
type Secrets struct {
	// Backend is vault or file.
	Backend string `yaml:"backend"`
	// RefreshInterval is how often secrets are re-read; last good values are kept on failure. Default 5m.
	RefreshInterval Duration `yaml:"refresh_interval"`
	// Vault configures the vault backend.
	Vault Vault `yaml:"vault"`
	// File configures the file backend.
	File File `yaml:"file"`
}

// Vault configures the HashiCorp Vault backend.
type Vault struct {
	// Address is Vault's URL, e.g. http://127.0.0.1:8200.
	Address string `yaml:"address"`
	// KVMount is the KV v2 mount holding wsgate's secrets. Default secret.
	KVMount string `yaml:"kv_mount"`
	// Auth selects how wsgate logs in to Vault.
	Auth VaultAuth `yaml:"auth"`
	// CACert is a PEM file to trust Vault's TLS certificate.
	CACert string `yaml:"ca_cert"`
}

// VaultAuth selects a Vault auth method.
type VaultAuth struct {
	// Method is token, approle, jwt or kubernetes (the last two log in with a service-account JWT). Default token.
	Method string `yaml:"method"`
	// TokenFile holds the token; empty means the VAULT_TOKEN environment variable.
	TokenFile string `yaml:"token_file"`
	// RoleID is the AppRole role ID.
	RoleID string `yaml:"role_id"`
	// SecretIDFile holds the AppRole secret ID (plain or response-wrapped).
	SecretIDFile string `yaml:"secret_id_file"`
	// Role is the Vault role to log in as (jwt and kubernetes methods).
	Role string `yaml:"role"`
	// JWTFile holds the JWT for jwt and kubernetes logins, re-read at each login (the kubelet rotates it). Default for kubernetes: /var/run/secrets/kubernetes.io/serviceaccount/token.
	JWTFile string `yaml:"jwt_file"`
	// Mount is the auth method's mount path in Vault. Default: the method's name (approle, jwt, kubernetes).
	Mount string `yaml:"mount"`
}

// File configures the file secrets backend.
type File struct {
	// Dir holds <dir>/<path>.json files with the same fields as the KV secrets.
	Dir string `yaml:"dir"`
}

// Replay selects the replay cache.
type Replay struct {
	// Store is memory or redis. Default memory.
	Store string `yaml:"store"`
	// Redis configures the redis store.
	Redis Redis `yaml:"redis"`
}

// Redis locates a Redis server, a Sentinel-managed master or a Cluster.
type Redis struct {
	// Address is host:port of one Redis server. Exclusive with addresses.
	Address string `yaml:"address"`
	// Addresses are host:port of the Sentinels (with sentinel_master) or of Redis Cluster seed nodes (without).
	Addresses []string `yaml:"addresses"`
	// SentinelMaster is the master name the Sentinels at addresses monitor; the client follows its failovers.
	SentinelMaster string `yaml:"sentinel_master"`
	// Prefix is prepended to every key. Default "wsgate:".
	Prefix string `yaml:"prefix"`
}

// Route is one proxied path prefix. Exactly one of SOAP, OAuth (alone), Bridge or Public applies.
type Route struct {
	// Name is unique, [a-z0-9-]+; it labels logs and metrics.
	Name string `yaml:"name"`
	// PathPrefix selects requests; the longest matching prefix wins.
	PathPrefix string `yaml:"path_prefix"`
	// Upstream is the URL requests are forwarded to (soap, oauth and public routes).
	Upstream string `yaml:"upstream"`
	// Upstreams, instead of upstream, lists several instances of one backend to spread requests
	// across (see balance). They may differ only in host and port: scheme, path and query are the
	// same for all. At most 32. A request its upstream could not be sent to goes to another one
	// (any method: nothing was sent); a GET, HEAD, OPTIONS, PUT or DELETE without a body whose
	// connection dropped before an answer goes once to another one; retries adds more attempts.
	Upstreams []string `yaml:"upstreams"`
	// Balance picks each request's upstream: round_robin, or least_requests (the fewest requests
	// in flight; ties in turn). Default round_robin.
	Balance string `yaml:"balance"`
	// PassiveHealth ejects an upstream that keeps failing, for a while. Always on; this tunes it.
	PassiveHealth PassiveHealth `yaml:"passive_health"`
	// HealthCheck, when set, probes each upstream in the background: one that fails its probe
	// takes no requests until it passes one. Absent: passive health only.
	HealthCheck *HealthCheck `yaml:"health_check"`
	// Public marks a plain reverse proxy route with no checks.
	Public bool `yaml:"public"`
	// SOAP enables inbound WS-Security verification.
	SOAP *SOAP `yaml:"soap"`
	// OAuth enables bearer-token validation (REST routes and the REST side of bridges).
	OAuth *OAuth `yaml:"oauth"`
	// KeepAuthorization forwards the Authorization header upstream.
	KeepAuthorization bool `yaml:"keep_authorization"`
	// RateLimit limits requests per subject, client IP, client certificate or route.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// APIKey accepts API keys (alone, or as an alternative to oauth's tokens).
	APIKey *APIKey `yaml:"api_key"`
	// CORS answers browser preflights before authentication and adds CORS headers to every
	// response to an allowed origin (oauth and api_key routes).
	CORS *CORS `yaml:"cors"`
	// ForwardClientCert, when set, names the upstream header that carries the verified mTLS
	// client certificate's subject DN (e.g. X-Client-Subject). Client-sent copies of the header
	// are always dropped. Needs tls.client_ca.
	ForwardClientCert string `yaml:"forward_client_cert"`
	// UpstreamTLS configures TLS to an https upstream (and bridge.upstream): the CA bundle to
	// trust and an optional client identity. Absent: system roots, no client certificate.
	UpstreamTLS *UpstreamTLS `yaml:"upstream_tls"`
	// Timeout bounds this route's upstream round trip (up to the response headers): a slower upstream gets 504. Default limits.upstream_timeout. Not used by bridge routes (limits.upstream_timeout applies).
	Timeout Duration `yaml:"timeout"`
	// Retries re-sends a GET, HEAD, OPTIONS, PUT or DELETE without a body up to this many times when the upstream could not be reached or dropped the connection before answering (to another upstream while there is one it has not tried); a POST or PATCH is never sent twice. Default 0, at most 5. Not on bridge routes.
	Retries int `yaml:"retries"`
	// Bridge turns JSON requests into signed SOAP calls.
	Bridge *Bridge `yaml:"bridge"`
	// OpenAPI is an OpenAPI 3 document (YAML or JSON; relative to the config file) that
	// requests on a REST or bridge route must match (path under path_prefix, method,
	// parameters, JSON body), checked after authentication and before the upstream. Its
	// $refs are read from local files only; its servers and security schemes are ignored.
	OpenAPI string `yaml:"openapi"`
	// OpenAPIResponses also checks upstream responses against the openapi document
	// (status, headers, body; buffered up to limits.max_body_bytes): a violation is 502.
	OpenAPIResponses bool `yaml:"openapi_responses"`
}

// PassiveHealth ejects an upstream after failures in a row. A failure is no answer (refused,
// reset, dropped or timed out) or a 502, 503 or 504 answer. While every upstream of a route is
// out, requests go to all of them as if none were: refusing them would be the same outage.
type PassiveHealth struct {
	// Failures is how many failures in a row eject an upstream. Default 3.
	Failures int `yaml:"failures"`
	// EjectFor is how long an ejected upstream takes no requests. After it, its first failure
	// ejects it again; its first success restores it. Default 30s.
	EjectFor Duration `yaml:"eject_for"`
}

// HealthCheck probes each upstream with a GET.
type HealthCheck struct {
	// Path is requested on each upstream's scheme, host and port (not under the upstream's
	// path), e.g. /healthz. A 2xx or 3xx answer within timeout passes. Required.
	Path string `yaml:"path"`
	// Interval is the time between probes. Default 10s.
	Interval Duration `yaml:"interval"`
	// Timeout bounds one probe. Default 2s, and never more than interval.
	Timeout Duration `yaml:"timeout"`
}

// UpstreamTLS configures how wsgate connects to an https upstream.
type UpstreamTLS struct {
	// CA is a KV secret whose field certificates holds the PEM CA bundle the upstream's
	// certificate must chain to (instead of the system roots).
	CA string `yaml:"ca"`
	// Identity is a KV secret (fields certificate, private_key) presented as the client
	// certificate when the upstream asks for one.
	Identity string `yaml:"identity"`
}

// SOAP is a route's inbound WS-Security policy.
type SOAP struct {
	// Trust is a KV secret whose field certificates holds PEM CA and/or pinned certificates.
	Trust string `yaml:"trust"`
	// RequireSigned lists what the signature must cover: body, timestamp, addressing. Default [body, timestamp].
	RequireSigned []string `yaml:"require_signed"`
	// Timestamp bounds message freshness.
	Timestamp Timestamp `yaml:"timestamp"`
	// Algorithms widens the default algorithm allow-list.
	Algorithms Algorithms `yaml:"algorithms"`
	// UsernameToken, when set, is a KV secret whose fields are username -> password; a valid UsernameToken is then required.
	UsernameToken string `yaml:"username_token"`
	// StripSecurityHeader forwards the envelope without wsse:Security. Default true.
	StripSecurityHeader *bool `yaml:"strip_security_header"`
	// SignResponse, when set, is a KV secret of a signing identity used to sign upstream responses.
	SignResponse string `yaml:"sign_response"`
	// Decrypt makes the route decrypt XML Encryption (an EncryptedKey in wsse:Security and the
	// EncryptedData it lists) in the Security header's order, together with the signature; the
	// decrypted, verified envelope is what is forwarded. Absent, an encrypted message is refused.
	Decrypt *Decrypt `yaml:"decrypt"`
	// EncryptResponse, when set, encrypts the Body content of every upstream response for the
	// partner's certificate (rsa-oaep-mgf1p + AES-128-GCM). With sign_response the response is
	// signed first, then encrypted (WSS4J's default order).
	EncryptResponse *Encrypt `yaml:"encrypt_response"`
	// SAML accepts SAML 2.0 assertions in wsse:Security (SAML Token Profile 1.1); absent, an
	// assertion is refused.
	SAML *SAML `yaml:"saml"`
	// Revocation refuses message signers and SAML issuers that a CRL lists or the deny list names.
	Revocation *Revocation `yaml:"revocation"`
	// ForwardUnsignedHeaders lists header blocks, as {namespace}local (or {namespace}* for every
	// block of a namespace), that are forwarded although no signature covers them. By default an
	// unsigned header block is dropped (or refused when it carries mustUnderstand). Default: none.
	ForwardUnsignedHeaders []string `yaml:"forward_unsigned_headers"`
	// WSDL is the service's WSDL 1.1, document/literal (relative to the config file; its
	// wsdl:imports are read relative to it, never over the network). It is served on
	// GET <path_prefix>?wsdl with its soap:address locations set to wsdl_address.
	WSDL string `yaml:"wsdl"`
	// Operations: from_wsdl refuses (400, Client/Sender Fault) a verified Body that is not
	// exactly one element, the input element of one of the WSDL's operations, and a
	// SOAPAction, action parameter or signed wsa:Action naming another operation. Needs wsdl.
	Operations string `yaml:"operations"`
	// WSDLAddress is the endpoint URL the served WSDL gives clients (the gateway's public URL
	// of this route). Absent: derived from the request (scheme, Host, path); set it behind a
	// proxy or load balancer.
	WSDLAddress string `yaml:"wsdl_address"`
	// ValidateBody also validates the verified Body element against the WSDL's XML Schema
	// (wsdl:types and local schemaLocations), in the subset document/literal services use;
	// a schema needing more fails the route's build, naming the construct. Needs
	// operations: from_wsdl.
	ValidateBody bool `yaml:"validate_body"`
	// Policy: from_wsdl applies, at load time, the WS-SecurityPolicy of the wsdl's port (what
	// `wsgate policy -wsdl` prints) as a floor under this block: its signed parts are added to
	// require_signed; what it needs the route to supply or allow (username_token, decrypt, saml,
	// algorithms.allow_sha1, decrypt.algorithms) must be set here, or the route's build fails
	// naming both the setting and the assertion. An assertion wsgate cannot enforce fails the
	// build, named. Needs wsdl.
	Policy string `yaml:"policy"`
}

// Decrypt is a SOAP route's inbound XML Encryption policy.
type Decrypt struct {
	// Identity is a KV secret with certificate (the gateway's RSA encryption certificate,
	// PEM) and private_key; with transit_key it only holds the certificate.
	Identity string `yaml:"identity"`
	// TransitKey, when set, unwraps session keys with this Vault Transit RSA key (RSA-OAEP with
	// SHA-256 only), so the private key never leaves Vault. Needs secrets.backend: vault.
	TransitKey string `yaml:"transit_key"`
	// RequireEncrypted lists what must arrive encrypted; only body (the whole Body content).
	// Default: none.
	RequireEncrypted []string `yaml:"require_encrypted"`
	// Algorithms widens the default allow-list (RSA-OAEP key transport, AES-GCM data).
	Algorithms DecryptAlgorithms `yaml:"algorithms"`
}

// DecryptAlgorithms widens the XML Encryption allow-list, for legacy partners only.
type DecryptAlgorithms struct {
	// AllowRSA15 accepts RSA PKCS#1 v1.5 key transport (Bleichenbacher); a badly padded key
	// then becomes a random one, never a distinct error. Not with transit_key.
	AllowRSA15 bool `yaml:"allow_rsa15"`
	// AllowCBC accepts AES-CBC data encryption (the Jager–Somorovsky padding oracle); every
	// failure is then the same fault at the same point.
	AllowCBC bool `yaml:"allow_cbc"`
}

// Encrypt names the certificate a message Body is encrypted for.
type Encrypt struct {
	// Certificate is a KV secret whose field certificate holds the recipient's RSA
	// certificate (PEM, leaf first).
	Certificate string `yaml:"certificate"`
}

// SAML is a SOAP route's policy for SAML 2.0 assertions.
type SAML struct {
	// Trust is a KV secret whose field certificates holds the certificates allowed to sign
	// assertions (pinned issuer certificates or CAs).
	Trust string `yaml:"trust"`
	// Audience: every AudienceRestriction of an assertion must name one of these. Required.
	Audience []string `yaml:"audience"`
	// Confirmation lists the accepted subject confirmation methods: holder-of-key,
	// sender-vouches, bearer. Default [holder-of-key, sender-vouches].
	Confirmation []string `yaml:"confirmation"`
	// Required refuses a message that carries no assertion.
	Required bool `yaml:"required"`
	// ForwardAttributes maps NameID (the subject) or an Attribute Name to the upstream header
	// that carries its value (several values comma-separated). Client-sent copies of these
	// headers are removed on every route.
	ForwardAttributes map[string]string `yaml:"forward_attributes"`
}

// Revocation lists withdrawn certificates for message signers and SAML issuers.
type Revocation struct {
	// CRL lists KV secrets whose field crl holds a CRL (PEM or DER) signed by a certificate
	// of the route's trust sets; re-read on refresh and SIGHUP. A CRL past its nextUpdate
	// makes the route not ready (/readyz) and its requests 503, never silently accepted.
	CRL []string `yaml:"crl"`
	// Deny is a KV secret with field certificates (PEM) and/or sha256 (hex SHA-256
	// thumbprints of the DER, one a line) refused whatever their chain.
	Deny string `yaml:"deny"`
}

// Timestamp bounds wsu:Timestamp.
type Timestamp struct {
	// TTL is the oldest Created accepted. Default 300s.
	TTL Duration `yaml:"ttl"`
	// FutureSkew is how far in the future Created may be. Default 60s.
	FutureSkew Duration `yaml:"future_skew"`
	// RequireExpires refuses a Timestamp without Expires.
	RequireExpires bool `yaml:"require_expires"`
}

// Algorithms widens the default allow-list.
type Algorithms struct {
	// AllowSHA1 accepts RSA-SHA1 signatures and SHA-1 digests (legacy partners only).
	AllowSHA1 bool `yaml:"allow_sha1"`
}

// OAuth configures bearer-token validation.
type OAuth struct {
	// Issuer must equal the token's iss exactly.
	Issuer string `yaml:"issuer"`
	// Audience: the token's aud must name at least one.
	Audience []string `yaml:"audience"`
	// JWKSURL is fetched for verification keys.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSCACert is a PEM file to trust the IdP's TLS (default: system roots).
	JWKSCACert string `yaml:"jwks_ca_cert"`
	// JWKSSecret is a KV secret with field jwks (JWK Set), public_key (PEM) or secret (HMAC, base64).
	JWKSSecret string `yaml:"jwks_secret"`
	// Algorithms is the allow-list of JWS algorithms; never none.
	Algorithms []string `yaml:"algorithms"`
	// Leeway tolerates clock skew on exp, nbf and iat. Default 60s.
	Leeway Duration `yaml:"leeway"`
	// RequireTyp, when set, must equal the token's typ header (e.g. at+jwt).
	RequireTyp string `yaml:"require_typ"`
	// Introspection validates opaque tokens with RFC 7662.
	Introspection *Introspection `yaml:"introspection"`
	// Scopes lists required scopes by method and path glob.
	Scopes []ScopeRule `yaml:"scopes"`
	// ForwardClaims maps a claim name to the upstream header that carries it.
	ForwardClaims map[string]string `yaml:"forward_claims"`
	// Discovery takes the key set URL (jwks_uri) from the issuer's metadata:
	// <issuer>/.well-known/openid-configuration, else RFC 8414's oauth-authorization-server.
	// Its issuer must equal issuer exactly. Exclusive with jwks_url and jwks_secret.
	Discovery bool `yaml:"discovery"`
	// Claims lists claim values required by method and path glob; every matching rule must
	// hold (403 access_denied). A request no rule matches passes.
	Claims []ClaimRule `yaml:"claims"`
	// DPoP accepts RFC 9449 DPoP-bound tokens (Authorization: DPoP plus a DPoP proof).
	DPoP *DPoP `yaml:"dpop"`
	// RequireCertificateBinding refuses tokens whose cnf.x5t#S256 (RFC 8705) is not the
	// SHA-256 of this connection's mTLS client certificate. Needs tls.client_ca. A token
	// that carries cnf.x5t#S256 is checked either way.
	RequireCertificateBinding bool `yaml:"require_certificate_binding"`
}

// ClaimRule requires claim values for requests matching Methods and Path.
type ClaimRule struct {
	// Methods are HTTP methods; empty means all.
	Methods []string `yaml:"methods"`
	// Path is a glob under the route prefix, as in scopes.
	Path string `yaml:"path"`
	// Require maps a dotted claim path (realm_access.roles) to values of which the claim
	// (a string or an array of strings) must hold one, compared whole and case-sensitively.
	// Every listed claim path must hold.
	Require map[string][]string `yaml:"require"`
}

// DPoP configures RFC 9449 proof-of-possession.
type DPoP struct {
	// Required refuses bearer tokens: every token needs a DPoP proof of its key.
	Required bool `yaml:"required"`
	// MaxAge is the oldest proof accepted (iat); its jti is remembered that long in the
	// replay store (Redis across replicas). Default 60s.
	MaxAge Duration `yaml:"max_age"`
}

// APIKey accepts API keys checked against a secret.
type APIKey struct {
	// Secret is a KV secret with one field per key id, each a JSON string
	// {"sha256": "<hex SHA-256 of the key>", "subject": "...", "scopes": ["..."]}.
	Secret string `yaml:"secret"`
	// Header carries the key. Default X-API-Key. It never reaches the upstream.
	Header string `yaml:"header"`
}

// CORS is a route's browser cross-origin policy.
type CORS struct {
	// AllowOrigins are origins (https://app.example) or "*" (not with allow_credentials).
	AllowOrigins []string `yaml:"allow_origins"`
	// AllowMethods may be requested by a preflight. Default GET, HEAD, POST.
	AllowMethods []string `yaml:"allow_methods"`
	// AllowHeaders may be requested by a preflight (names compare case-insensitively).
	AllowHeaders []string `yaml:"allow_headers"`
	// AllowCredentials lets browsers send cookies and read credentialed answers.
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge lets browsers cache a preflight answer; 0 sends none.
	MaxAge Duration `yaml:"max_age"`
}

// Introspection configures RFC 7662 token introspection.
type Introspection struct {
	// URL is the introspection endpoint.
	URL string `yaml:"url"`
	// Client is a KV secret with fields client_id and client_secret.
	Client string `yaml:"client"`
	// CacheTTL caps how long a result is cached (never past exp). Default 60s.
	CacheTTL Duration `yaml:"cache_ttl"`
}

// ScopeRule requires one of AnyOf for requests matching Methods and Path.
type ScopeRule struct {
	// Methods are HTTP methods; empty means all.
	Methods []string `yaml:"methods"`
	// Path is a glob under the route prefix; ** matches across segments.
	Path string `yaml:"path"`
	// AnyOf lists scopes of which the token must hold at least one.
	AnyOf []string `yaml:"any_of"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	// Per is subject, client_ip, client_cert or route.
	Per string `yaml:"per"`
	// Rate is requests per second.
	Rate float64 `yaml:"rate"`
	// Burst is the bucket size.
	Burst int `yaml:"burst"`
}

// Bridge turns REST calls into signed SOAP calls.
type Bridge struct {
	// Upstream is the SOAP endpoint.
	Upstream string `yaml:"upstream"`
	// Upstreams, instead of upstream, lists several instances of the SOAP endpoint, as the
	// route's upstreams does (balance, passive_health and health_check of the route apply).
	Upstreams []string `yaml:"upstreams"`
	// SOAPVersion is "1.1" or "1.2". Default "1.1".
	SOAPVersion string `yaml:"soap_version"`
	// Operations are reachable as POST <prefix>/<name>.
	Operations []Operation `yaml:"operations"`
	// Sign configures WS-Security on the outbound message.
	Sign *BridgeSign `yaml:"sign"`
	// VerifyResponse, when set, verifies the upstream's signed response.
	VerifyResponse *VerifyResponse `yaml:"verify_response"`
	// Encrypt, when set, encrypts the outbound Body content for the backend's certificate,
	// after signing (sign-then-encrypt, WSS4J's default order: the signature covers the
	// plaintext the backend reads).
	Encrypt *Encrypt `yaml:"encrypt"`
}

// Operation is one bridged SOAP operation.
type Operation struct {
	// Name is the last path segment, [a-z0-9-]+.
	Name string `yaml:"name"`
	// Action is the SOAPAction (1.1) or action parameter (1.2).
	Action string `yaml:"action"`
	// RequestTemplate is a Go text/template file rendering the SOAP Body content.
	RequestTemplate string `yaml:"request_template"`
}

// BridgeSign names the outbound signing identity.
type BridgeSign struct {
	// Identity is a KV secret with certificate (PEM chain) and private_key (PEM).
	Identity string `yaml:"identity"`
	// TransitKey signs with this Vault Transit key; Identity then only holds the certificate.
	TransitKey string `yaml:"transit_key"`
	// SAMLAssertion is a KV secret whose field assertion holds a SAML 2.0 assertion, signed by
	// its IdP, that every outbound message carries in wsse:Security, covered by the message
	// signature (sender-vouches: the bridge vouches for the assertion's subject).
	SAMLAssertion string `yaml:"saml_assertion"`
}

// VerifyResponse names the trust secret for upstream response signatures.
type VerifyResponse struct {
	// Trust is a KV secret with field certificates.
	Trust string `yaml:"trust"`
}

// Duration is a time.Duration written as "30s", "5m" in YAML.
type Duration time.Duration

// UpstreamURLs is the route's upstreams: upstreams or [upstream], or the
// bridge's for a bridge route.
func (r *Route) UpstreamURLs() []string {
	one, many := r.Upstream, r.Upstreams
	if r.Bridge != nil {
		one, many = r.Bridge.Upstream, r.Bridge.Upstreams
	}
	if len(many) > 0 {
		return many
	}
	if one == "" {
		return nil
	}
	return []string{one}
}
