package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/internal/demo"
	"wsgate/internal/pki"
	"wsgate/oauth"
	"wsgate/secrets"
)

// Secret paths of the embedded default, relative to DIR/secrets (file backend).
const (
	demoTrustPath    = "wsgate/trust/partners"
	demoPartnerPath  = "wsgate/signing/partner"
	demoJWKSPath     = "wsgate/jwks/demo"
	demoTokenKeyPath = "wsgate/demo/token-signer"
	demoAPIKeysPath  = "wsgate/apikeys/demo"
	// The gateway's decryption identity (certificate + private key) and, as
	// the partner would hold it, its certificate alone.
	demoDecryptPath    = "wsgate/encryption/gateway"
	demoGatewayEncPath = "wsgate/partners/gateway-enc"
)

// The demo's bearer tokens: who issues them, for whom, and what they grant.
const (
	demoIssuer     = "https://idp.demo.invalid/"
	demoAudience   = "wsgate-demo"
	demoSubject    = "demo-user"
	demoClientID   = "wsgate-demo-cli"
	demoScope      = "echo.read"            // the read-only token
	demoWriteScope = "echo.read echo.write" // the read-write token, for writes and the bridge
	demoTokenTTL   = time.Hour
)

// demoSample is the unsigned request the printed instructions sign and send.
const demoSample = `<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Header/>
  <soap:Body>
    <echo:Hello xmlns:echo="urn:wsgate:demo:echo">
      <echo:Name>World</echo:Name>
    </echo:Hello>
  </soap:Body>
</soap:Envelope>
`

// demoTemplate is the request template of the demo bridge route's operation.
const demoTemplate = `<echo:Hello xmlns:echo="urn:wsgate:demo:echo"><echo:Name>{{.name}}</echo:Name></echo:Hello>
`

// demoConfig is the embedded default's configuration; %[1]s is the listen
// address, %[2]s the SOAP echo and %[3]s the REST echo base URL, %[4]s the
// admin listen address, %[5]s the proxy's own base URL.
const demoConfig = `# Written by "wsgate demo" on every run (the demo upstreams get fresh
# loopback ports each time). The keys under secrets/ are kept between runs;
# delete this directory to start over with fresh ones.
listen: %[1]s
admin_listen: %[4]s     # /healthz, /readyz, /metrics
log: {level: info, format: text}
secrets:
  backend: file
  refresh_interval: 1m
  file:
    dir: secrets            # relative to this file
routes:
  # WS-Security verified: Body and Timestamp must be signed by a certificate
  # issued by the demo CA (secrets/wsgate/trust/partners.json).
  # Its contract, contracts/echo.wsdl, is served on GET /soap/echo?wsdl with
  # this gateway's address; a verified Body that is not its Hello element, or
  # a Name outside its schema, is refused before the echo sees it.
  - name: echo
    path_prefix: /soap/echo
    upstream: %[2]s/ws/echo
    soap:
      trust: wsgate/trust/partners
      require_signed: [body, timestamp]
      wsdl: contracts/echo.wsdl
      operations: from_wsdl
      validate_body: true
  # OAuth 2.0 bearer tokens: ES256 JWTs (typ at+jwt) from the demo issuer,
  # verified with the public key in secrets/wsgate/jwks/demo.json. GET needs
  # scope echo.read, writes need echo.write; the subject reaches the echo
  # service as X-Auth-Subject and the token itself does not.
  - name: rest-echo
    path_prefix: /rest/echo
    upstream: %[3]s/
    # Only what contracts/rest-echo.yaml describes reaches the echo (other
    # paths 404, other methods 405, bad parameters or bodies 400).
    openapi: contracts/rest-echo.yaml
    oauth:
      issuer: https://idp.demo.invalid/
      audience: [wsgate-demo]
      jwks_secret: wsgate/jwks/demo
      algorithms: [ES256]
      require_typ: at+jwt
      scopes:
        - {methods: [GET, HEAD], path: "/**", any_of: [echo.read]}
        - {methods: [POST, PUT, PATCH, DELETE], path: "/**", any_of: [echo.write]}
      forward_claims: {sub: X-Auth-Subject, scope: X-Auth-Scopes, client_id: X-Auth-Client}
      # Beyond scopes: DELETE under /admin also needs the admin role (the
      # demo tokens have none: 403 access_denied).
      claims:
        - {methods: [DELETE], path: "/admin/**", require: {"realm_access.roles": [admin]}}
    # Or an API key instead of a token (secrets/wsgate/apikeys/demo.json holds
    # only its SHA-256; "wsgate apikey new" makes more).
    api_key: {secret: wsgate/apikeys/demo, header: X-API-Key}
    # Browser apps on http://localhost:3000 may call it; preflights are
    # answered here, before any token is asked for.
    cors: {allow_origins: ["http://localhost:3000"], allow_methods: [GET, POST], allow_headers: [Authorization, X-API-Key], max_age: 10m}
    rate_limit: {per: subject, rate: 10, burst: 20}
  # Plain reverse proxy to the same echo service, no checks.
  - name: public-echo
    path_prefix: /public/echo
    upstream: %[3]s/
    public: true
  # REST -> SOAP bridge: POST /bridge/partner/hello with a JSON body and a
  # token with scope echo.write (a read-only token gets 403). Its outbound
  # signing identity is the demo partner's, which is also what
  # "wsgate sign -route partner" signs with.
  - name: partner
    path_prefix: /bridge/partner
    oauth:
      issuer: https://idp.demo.invalid/
      audience: [wsgate-demo]
      jwks_secret: wsgate/jwks/demo
      algorithms: [ES256]
      require_typ: at+jwt
      scopes:
        - {methods: [POST], path: "/**", any_of: [echo.write]}
      forward_claims: {sub: X-Auth-Subject}
    bridge:
      upstream: %[2]s/ws/echo
      soap_version: "1.1"
      operations:
        - name: hello
          action: urn:wsgate:demo:Hello
          request_template: templates/hello.xml.tmpl
      sign:
        identity: wsgate/signing/partner
  # XML Encryption: the Body must arrive encrypted for the gateway's
  # certificate (secrets/wsgate/encryption/gateway.json, RSA-2048) and be
  # signed like /soap/echo's. wsgate decrypts and verifies, and the echo
  # service receives only the plaintext Body; a plaintext Body is refused.
  - name: encrypted
    path_prefix: /soap/encrypted
    upstream: %[2]s/ws/echo
    soap:
      trust: wsgate/trust/partners
      require_signed: [body, timestamp]
      decrypt:
        identity: wsgate/encryption/gateway
        require_encrypted: [body]
  # The partner's side of /soap/encrypted: it signs as the demo partner, then
  # encrypts for the gateway's certificate (secrets/wsgate/partners/
  # gateway-enc.json holds the certificate only, as a partner would). This
  # is what "wsgate encrypt -route partner-encrypted" uses, and it is a live
  # bridge too: POST /bridge/partner-encrypted/hello (scope echo.write) goes
  # signed and encrypted through this gateway's own /soap/encrypted.
  - name: partner-encrypted
    path_prefix: /bridge/partner-encrypted
    oauth:
      issuer: https://idp.demo.invalid/
      audience: [wsgate-demo]
      jwks_secret: wsgate/jwks/demo
      algorithms: [ES256]
      require_typ: at+jwt
      scopes:
        - {methods: [POST], path: "/**", any_of: [echo.write]}
    bridge:
      upstream: %[5]s/soap/encrypted
      soap_version: "1.1"
      operations:
        - name: hello
          action: urn:wsgate:demo:Hello
          request_template: templates/hello.xml.tmpl
      sign:
        identity: wsgate/signing/partner
      encrypt:
        certificate: wsgate/partners/gateway-enc
`

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(addr string)) int {
	fs := newFlags("demo", stderr)
	dir := fs.String("dir", "demo", "directory for the demo keys, config and sample request (created if absent)")
	listen := fs.String("listen", "127.0.0.1:8080", "proxy listen address")
	adminListen := fs.String("admin-listen", "127.0.0.1:9090", "admin listen address (/healthz, /readyz, /metrics)")
	if !parseFlags(fs, args, stderr) {
		return exitUsage
	}
	created, err := ensureDemoKeys(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "wsgate demo: %v\n", err)
		return exitFail
	}
	if err := ensureDemoEncryptionKeys(*dir); err != nil {
		fmt.Fprintf(stderr, "wsgate demo: %v\n", err)
		return exitFail
	}
	apiKey, err := ensureDemoAPIKey(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "wsgate demo: %v\n", err)
		return exitFail
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	soapURL, err := demo.Serve(ctx, demo.SOAPEcho(), logger)
	if err != nil {
		fmt.Fprintf(stderr, "wsgate demo: soap echo: %v\n", err)
		return exitFail
	}
	restURL, err := demo.Serve(ctx, demo.RESTEcho(), logger)
	if err != nil {
		fmt.Fprintf(stderr, "wsgate demo: rest echo: %v\n", err)
		return exitFail
	}
	cfgPath := filepath.Join(*dir, "wsgate.yaml")
	files := map[string]string{
		cfgPath:                            demoConfigFor(*listen, soapURL, restURL, *adminListen),
		filepath.Join(*dir, "request.xml"): demoSample,
		filepath.Join(*dir, "templates", "hello.xml.tmpl"): demoTemplate,
		filepath.Join(*dir, "contracts", "echo.wsdl"):      demo.EchoWSDL,
		filepath.Join(*dir, "contracts", "rest-echo.yaml"): demo.EchoOpenAPI,
	}
	for name, content := range files {
		if err := writeFile(name, []byte(content), 0o644); err != nil {
			fmt.Fprintf(stderr, "wsgate demo: %v\n", err)
			return exitFail
		}
	}
	var readToken, writeToken string
	for _, t := range []struct {
		scope string
		out   *string
	}{{demoScope, &readToken}, {demoWriteScope, &writeToken}} {
		if *t.out, err = mintDemoToken(*dir, t.scope, time.Now()); err != nil {
			fmt.Fprintf(stderr, "wsgate demo: minting the demo access tokens: %v\n", err)
			return exitFail
		}
	}
	keys := "reusing the keys in"
	if created {
		keys = "created fresh demo keys in"
	}
	announce := func(addr, adminAddr string) {
		printDemoHelp(stdout, demoHelp{dir: *dir, addr: addr, adminAddr: adminAddr, keys: keys,
			readToken: readToken, writeToken: writeToken, apiKey: apiKey})
		if ready != nil {
			ready(addr)
		}
	}
	return serveFile(ctx, cfgPath, stderr, announce)
}

// demoHelp is what the printed instructions name.
type demoHelp struct {
	dir, addr, adminAddr, keys string
	readToken, writeToken      string
	apiKey                     string
}

// printDemoHelp tells a newcomer how to send requests through the demo.
func printDemoHelp(w io.Writer, h demoHelp) {
	base := "http://" + h.addr
	cfg := filepath.Join(h.dir, "wsgate.yaml")
	req := filepath.Join(h.dir, "request.xml")
	fmt.Fprintf(w, `wsgate demo is running on %[1]s (%[5]s %[2]s)

Send a signed SOAP request (accepted, echoed by the demo SOAP service):
  go run ./cmd/wsgate sign -config %[3]s -route partner -in %[4]s \
    | curl -sS -H 'Content-Type: text/xml; charset=utf-8' --data-binary @- %[1]s/soap/echo

Send it tampered with after signing (rejected: wsse:FailedCheck):
  go run ./cmd/wsgate sign -config %[3]s -route partner -in %[4]s | sed 's/World/Mallory/' \
    | curl -sS -H 'Content-Type: text/xml; charset=utf-8' --data-binary @- %[1]s/soap/echo

Send it unsigned (rejected: wsse:InvalidSecurity):
  curl -sS -H 'Content-Type: text/xml; charset=utf-8' --data-binary @%[4]s %[1]s/soap/echo

Sign it and encrypt its Body for the gateway, then send it to the encrypted
route (accepted: wsgate decrypts and verifies it, and the echo returns the
plaintext <echo:Name>World</echo:Name>):
  go run ./cmd/wsgate encrypt -config %[3]s -route partner-encrypted -in %[4]s \
    | curl -sS -H 'Content-Type: text/xml; charset=utf-8' --data-binary @- %[1]s/soap/encrypted

Send it there signed but not encrypted (rejected: wsse:InvalidSecurity):
  go run ./cmd/wsgate sign -config %[3]s -route partner -in %[4]s \
    | curl -sS -H 'Content-Type: text/xml; charset=utf-8' --data-binary @- %[1]s/soap/encrypted

Verify a signed envelope offline:
  go run ./cmd/wsgate sign -config %[3]s -route partner -in %[4]s > /tmp/signed.xml
  go run ./cmd/wsgate verify -config %[3]s -route echo -in /tmp/signed.xml

The SOAP echo's WSDL, with this gateway's address (generate clients from it):
  curl -sS '%[1]s/soap/echo?wsdl'

Call the REST echo with the read-only demo token (accepted; tokens are valid
for 1 hour, subject %[7]s, scope %[8]s; the echo shows X-Auth-Subject and no
Authorization):
  curl -sS -H "Authorization: Bearer %[6]s" %[1]s/rest/echo/hello

The same token on a POST (rejected: 403 insufficient_scope, it needs echo.write):
  curl -sS -X POST -H "Authorization: Bearer %[6]s" %[1]s/rest/echo/hello

No token (rejected: 401 with WWW-Authenticate: Bearer realm="wsgate"):
  curl -sS -i %[1]s/rest/echo/hello

A path the REST echo's OpenAPI document does not have (rejected: 404
not_found; the echo never sees it):
  curl -sS -H "Authorization: Bearer %[6]s" %[1]s/rest/echo/nope

Call the SOAP echo through the REST -> SOAP bridge with the read-write token
(JSON in, a signed SOAP call upstream, JSON out; the read-only token gets 403):
  curl -sS -H "Authorization: Bearer %[9]s" -H 'Content-Type: application/json' \
    -d '{"name": "World"}' %[1]s/bridge/partner/hello

The same through the encrypting bridge (signed, then its Body encrypted for
the gateway, sent through this gateway's own /soap/encrypted):
  curl -sS -H "Authorization: Bearer %[9]s" -H 'Content-Type: application/json' \
    -d '{"name": "World"}' %[1]s/bridge/partner-encrypted/hello

The public REST echo (no checks; a client-sent X-Auth-Subject is dropped):
  curl -sS -H 'X-Auth-Subject: admin' %[1]s/public/echo/hello
`, base, h.dir, cfg, req, h.keys, h.readToken, demoSubject, demoScope, h.writeToken)
	fmt.Fprintf(w, `
Beyond scopes on the REST echo:
  # a claim rule: DELETE /admin/** needs realm_access.roles admin (403 access_denied)
  curl -sS -X DELETE -H "Authorization: Bearer %[2]s" %[1]s/rest/echo/admin/users/7
  # an API key instead of a token (subject demo-batch, scope echo.read; the key never reaches the echo)
  curl -sS -H "X-API-Key: %[3]s" %[1]s/rest/echo/hello
  # a CORS preflight, answered by wsgate without any token (204 with the allow headers)
  curl -sS -i -X OPTIONS -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: GET' %[1]s/rest/echo/hello
  # DPoP (RFC 9449) and certificate-bound tokens (RFC 8705) need an IdP that binds tokens to a key:
  # see "Beyond scopes" in docs/rest.md for oauth.dpop and oauth.require_certificate_binding.
`, base, h.writeToken, h.apiKey)
	if h.adminAddr != "" {
		admin := "http://" + h.adminAddr
		fmt.Fprintf(w, `
Admin (never on the proxy listener):
  curl -sS %[1]s/healthz
  curl -sS %[1]s/readyz
  curl -sS %[1]s/metrics
`, admin)
	}
	fmt.Fprint(w, "\nStop with Ctrl-C.\n")
}

// mintDemoToken signs a demo access token (RFC 9068 shape, ES256) granting
// scope with the demo token-signer key, valid from now for demoTokenTTL.
func mintDemoToken(dir, scope string, now time.Time) (string, error) {
	fields, err := readSecretFile(filepath.Join(dir, "secrets"), demoTokenKeyPath)
	if err != nil {
		return "", err
	}
	key, err := secrets.ParsePrivateKey(demoTokenKeyPath, "private_key", fields["private_key"])
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return "", err
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails (Go 1.24+)
	claims := map[string]any{
		"iss":       demoIssuer,
		"aud":       demoAudience,
		"sub":       demoSubject,
		"client_id": demoClientID,
		"scope":     scope,
		"jti":       hex.EncodeToString(jti[:]),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(demoTokenTTL).Unix(),
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// readSecretFile reads the fields of the file-backend secret at path.
func readSecretFile(dir, path string) (map[string]string, error) {
	data, err := os.ReadFile(secretFile(dir, path))
	if err != nil {
		return nil, err
	}
	var fields map[string]string
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object of string fields", path)
	}
	return fields, nil
}

// ensureDemoKeys writes the demo PKI to dir/secrets unless it is already
// there. It reports whether it created the keys. A half-written key set is
// refused rather than overwritten.
func ensureDemoKeys(dir string) (bool, error) {
	secretsDir := filepath.Join(dir, "secrets")
	paths := []string{demoTrustPath, demoPartnerPath, demoJWKSPath, demoTokenKeyPath}
	present := 0
	for _, p := range paths {
		_, err := os.Stat(secretFile(secretsDir, p))
		switch {
		case err == nil:
			present++
		case !errors.Is(err, fs.ErrNotExist):
			return false, err
		}
	}
	if present == len(paths) {
		return false, nil
	}
	if present > 0 {
		return false, fmt.Errorf("%s holds only some of the demo keys; remove it to start over", secretsDir)
	}

	var is pki.Issuer
	ca, err := is.Issue(pki.Options{CommonName: "wsgate demo CA", IsCA: true}, nil)
	if err != nil {
		return false, err
	}
	partner, err := is.Issue(pki.Options{CommonName: "demo partner", Key: pki.RSA2048}, ca)
	if err != nil {
		return false, err
	}
	tokenKey, err := is.NewKey(pki.ECP256)
	if err != nil {
		return false, err
	}
	tokenKeyPEM, err := pki.KeyPEM(tokenKey)
	if err != nil {
		return false, err
	}
	tokenPubDER, err := x509.MarshalPKIXPublicKey(tokenKey.Public())
	if err != nil {
		return false, err
	}
	tokenPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: tokenPubDER})
	secrets := map[string]map[string]string{
		demoTrustPath:    {"certificates": string(pki.CertPEM(ca.Cert))},
		demoJWKSPath:     {"public_key": string(tokenPub)},
		demoTokenKeyPath: {"private_key": string(tokenKeyPEM)},
	}
	for path, id := range map[string]*pki.Identity{demoPartnerPath: partner} {
		keyPEM, err := pki.KeyPEM(id.Key)
		if err != nil {
			return false, err
		}
		secrets[path] = map[string]string{
			"certificate": string(pki.CertPEM(id.Cert, ca.Cert)),
			"private_key": string(keyPEM),
		}
	}
	for path, fields := range secrets {
		data, err := json.MarshalIndent(fields, "", "  ")
		if err != nil {
			return false, err
		}
		if err := writeFile(secretFile(secretsDir, path), append(data, '\n'), 0o600); err != nil {
			return false, err
		}
	}
	return true, nil
}

// ensureDemoEncryptionKeys writes the gateway's demo decryption identity
// (a self-signed RSA-2048 key-encipherment certificate and its key) and the
// certificate-only copy a partner encrypts for, unless they are there. It is
// apart from ensureDemoKeys so a demo directory made before the encrypted
// route gains them without losing its other keys.
func ensureDemoEncryptionKeys(dir string) error {
	secretsDir := filepath.Join(dir, "secrets")
	idFile := secretFile(secretsDir, demoDecryptPath)
	fields, err := readSecretFile(secretsDir, demoDecryptPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		var is pki.Issuer
		id, err := is.Issue(pki.Options{CommonName: "wsgate demo gateway (encryption)", Key: pki.RSA2048,
			KeyUsage: x509.KeyUsageKeyEncipherment}, nil)
		if err != nil {
			return err
		}
		keyPEM, err := pki.KeyPEM(id.Key)
		if err != nil {
			return err
		}
		fields = map[string]string{"certificate": string(pki.CertPEM(id.Cert)), "private_key": string(keyPEM)}
		if err := writeSecretFile(idFile, fields); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if fields["certificate"] == "" {
		return fmt.Errorf("%s has no certificate; remove it to start over", idFile)
	}
	return writeSecretFile(secretFile(secretsDir, demoGatewayEncPath), map[string]string{"certificate": fields["certificate"]})
}

// writeSecretFile writes a file-backend secret, readable by the owner only.
func writeSecretFile(name string, fields map[string]string) error {
	data, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(name, append(data, '\n'), 0o600)
}

// ensureDemoAPIKey returns the demo API key, creating it (and the api_key
// secret holding only its SHA-256) on the first run. The key itself is kept
// in apikey.txt for the printed instructions: a demo convenience, where a
// real key is shown once by "wsgate apikey new" and stored nowhere.
func ensureDemoAPIKey(dir string) (string, error) {
	keyFile := filepath.Join(dir, "apikey.txt")
	secret := secretFile(filepath.Join(dir, "secrets"), demoAPIKeysPath)
	if b, err := os.ReadFile(keyFile); err == nil {
		if _, err := os.Stat(secret); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	key, sum, err := oauth.NewAPIKey()
	if err != nil {
		return "", err
	}
	entry, err := oauth.APIKeyEntryJSON(sum, "demo-batch", []string{demoScope})
	if err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(map[string]string{"demo-batch": entry}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeFile(secret, append(data, '\n'), 0o600); err != nil {
		return "", err
	}
	if err := writeFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		return "", err
	}
	return key, nil
}

// secretFile is where the file backend keeps the secret at path.
func secretFile(dir, path string) string {
	return filepath.Join(dir, filepath.FromSlash(path)+".json")
}

// writeFile writes data, creating parent directories readable by the owner only.
func writeFile(name string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return err
	}
	return os.WriteFile(name, data, perm)
}

// demoConfigFor is the demo configuration for the given listen addresses and upstream base URLs.
func demoConfigFor(listen, soapURL, restURL, adminListen string) string {
	return fmt.Sprintf(demoConfig, yamlQuote(listen), soapURL, restURL, yamlQuote(adminListen), selfURL(listen))
}

// selfURL is the base URL the demo's partner-encrypted bridge reaches this
// gateway's own listener at: loopback when listen names no host or every
// interface.
func selfURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// yamlQuote quotes s as a YAML double-quoted scalar.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a valid YAML double-quoted scalar
	return strings.TrimSpace(string(b))
}
