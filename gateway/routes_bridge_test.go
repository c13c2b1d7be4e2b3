package gateway

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"wsgate/internal/testclock"
	"wsgate/wssec"
)

// soapService is a SOAP upstream that verifies the gateway's signature
// (trusting the test CA) and answers with a SOAP 1.2 response.
type soapService struct {
	t     *testing.T
	clk   *testclock.Clock
	mu    sync.Mutex
	last  http.Header
	errs  []error
	reply string
}

func (s *soapService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ca := readPEMCert(s.t, "../testdata/pki/ca.pem")
	v := &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  staticCerts{ca},
		Now:    s.clk.Now,
	}
	_, err := v.Verify(r.Context(), body)
	s.mu.Lock()
	s.last, s.errs = r.Header.Clone(), append(s.errs, err)
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	_, _ = io.WriteString(w, s.reply)
}

type staticCerts []*x509.Certificate

func (s staticCerts) Certificates() ([]*x509.Certificate, error) { return s, nil }

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bridgeTokenKey makes the P-256 key bridge-route tokens are signed with
// and writes its public key as the secret wsgate/jwks/t under dir.
func bridgeTokenKey(t *testing.T, dir string) *ecdsa.PrivateKey {
	t.Helper()
	key := newP256(t)
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	writeSecretJSON(t, dir, "wsgate/jwks/t", map[string]string{"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))})
	return key
}

// writeBridgeFiles writes under dir the bridge route's signing identity
// (wsgate/signing/bridge, the RSA partner) and templates/get-order.xml.tmpl.
func writeBridgeFiles(t *testing.T, dir string) {
	t.Helper()
	writeSecretJSON(t, dir, "wsgate/signing/bridge", map[string]string{
		"certificate": readTestdata(t, "testdata", "pki", "partner-rsa.pem"),
		"private_key": readTestdata(t, "testdata", "pki", "partner-rsa.key.pem"),
	})
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "templates", "get-order.xml.tmpl"), readTestdata(t, "testdata", "bridge", "get-order.xml.tmpl"))
}

// bridgePost is a JSON POST of body to the bridge route's get-order
// operation, with token as its bearer token when set.
func bridgePost(body, token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/bridge/orders/get-order", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// TestBridgeRouteEndToEnd: a bridge route built from config behind its
// oauth edge, and a SOAP route with sign_response.
func TestBridgeRouteEndToEnd(t *testing.T) {
	dir := t.TempDir()
	clk := testclock.New(t0)
	tokKey := bridgeTokenKey(t, dir)
	writeBridgeFiles(t, dir)
	read := func(p string) string { return readTestdata(t, "testdata", p) }
	writeSecretJSON(t, dir, "wsgate/trust/ca", map[string]string{"certificates": read("pki/ca.pem")})

	// The SOAP service answers signed by the ECDSA partner, as verify_response requires.
	ecChain := readPEMCert(t, "../testdata/pki/partner-ecdsa.pem")
	ecKeyBlock, _ := pem.Decode([]byte(read("pki/partner-ecdsa.key.pem")))
	ecKey, err := x509.ParsePKCS8PrivateKey(ecKeyBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := (&wssec.Signer{Chain: []*x509.Certificate{ecChain}, Key: ecKey.(crypto.Signer), Now: clk.Now}).SignBytes([]byte(`<env:Envelope xmlns:env="`+wssec.NSSOAP12+`"><env:Body><o:R xmlns:o="urn:o"><o:Status>ok</o:Status></o:R></env:Body></env:Envelope>`), wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	svc := &soapService{t: t, clk: clk, reply: string(reply)}
	up := httptest.NewServer(svc)
	defer up.Close()
	// A second SOAP endpoint that is down: the pool's first pick (the
	// second in the list), so the one bridged call must fail over to up.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()

	logs := &syncBuffer{}
	g := newTestGateway(t, dir, `
log: {level: debug}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders-bridge
    path_prefix: /bridge/orders
    oauth:
      issuer: "`+testIssuer+`"
      audience: [`+testAudience+`]
      jwks_secret: wsgate/jwks/t
      algorithms: [ES256]
      scopes: [{methods: [POST], path: "/**", any_of: [orders.write]}]
      forward_claims: {sub: X-Auth-Subject}
    bridge:
      upstreams: ["`+up.URL+`/ws", "`+dead.URL+`/ws"]
      soap_version: "1.2"
      operations:
        - {name: get-order, action: "urn:orders:GetOrder", request_template: templates/get-order.xml.tmpl}
      sign: {identity: wsgate/signing/bridge}
      verify_response: {trust: wsgate/trust/ca}
`, clk, logs)
	if err := g.current().secrets.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}

	send := func(token string) *httptest.ResponseRecorder {
		r := bridgePost(`{"orderId":"42","note":"</a><evil/>"}`, token)
		r.Header.Set("X-Auth-Subject", "mallory")
		return serveReq(g, r)
	}
	if w := send(""); w.Code != http.StatusUnauthorized {
		t.Errorf("no token: %d %s", w.Code, w.Body)
	}
	if w := send(mintJWT(t, jose.ES256, tokKey, "", clk, nil)); w.Code != http.StatusForbidden {
		t.Errorf("read scope only: %d %s", w.Code, w.Body)
	}
	w := send(mintJWT(t, jose.ES256, tokKey, "", clk, map[string]any{"scope": "orders.write"}))
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"status":200,"body":{"R":{"Status":"ok"}}}` {
		t.Fatalf("bridged call: %d %s\nlogs:\n%s", w.Code, w.Body, logs)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if len(svc.errs) != 1 || svc.errs[0] != nil {
		t.Fatalf("SOAP service verification: %v", svc.errs)
	}
	if st := g.current().pools[0].pool.Status(); st[1].Failures != 1 || st[0].Failures != 0 {
		t.Errorf("the signed POST did not fail over from the dead endpoint: %+v", st)
	}
	if svc.last.Get("Authorization") != "" || svc.last.Get("X-Auth-Subject") != "alice" ||
		!strings.Contains(svc.last.Get("Content-Type"), `action="urn:orders:GetOrder"`) {
		t.Errorf("SOAP call headers: %v", svc.last)
	}
}

// TestSignResponseRoute: soap.sign_response from config signs the upstream's answer.
func TestSignResponseRoute(t *testing.T) {
	dir := t.TempDir()
	clk := testclock.New(t0)
	read := func(p string) string { return readTestdata(t, "testdata", p) }
	writeSecretJSON(t, dir, "wsgate/trust/ca", map[string]string{"certificates": read("pki/ca.pem")})
	writeSecretJSON(t, dir, "wsgate/signing/gw", map[string]string{"certificate": read("pki/partner-ecdsa.pem"), "private_key": read("pki/partner-ecdsa.key.pem")})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, `<s:Envelope xmlns:s="`+wssec.NSSOAP11+`"><s:Body><r>ok</r></s:Body></s:Envelope>`)
	}))
	defer up.Close()
	g := newTestGateway(t, dir, `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: "`+up.URL+`/ws"
    soap: {trust: wsgate/trust/ca, sign_response: wsgate/signing/gw}
`, clk, &syncBuffer{})
	if err := g.current().secrets.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	rsaBlock, _ := pem.Decode([]byte(read("pki/partner-rsa.key.pem")))
	rsaKey, err := x509.ParsePKCS8PrivateKey(rsaBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	req, err := (&wssec.Signer{Chain: []*x509.Certificate{readPEMCert(t, "../testdata/pki/partner-rsa.pem")}, Key: rsaKey.(crypto.Signer), Now: clk.Now}).
		SignBytes([]byte(`<s:Envelope xmlns:s="`+wssec.NSSOAP11+`"><s:Body><q>1</q></s:Body></s:Envelope>`), wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/soap/orders", strings.NewReader(string(req)))
	r.Header.Set("Content-Type", "text/xml; charset=utf-8")
	w := serveReq(g, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	v := &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  staticCerts{readPEMCert(t, "../testdata/pki/ca.pem")},
		Now:    clk.Now,
	}
	got, err := v.Verify(context.Background(), w.Body.Bytes())
	if err != nil {
		t.Fatalf("signed response: %v\n%s", err, w.Body)
	}
	if got.Signer.Subject.CommonName != "partner ecdsa" {
		t.Errorf("response signer = %s", got.Signer.Subject)
	}
}
