package gateway

import (
	"context"
	"crypto"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"wsgate/internal/testclock"
	"wsgate/wssec"
)

// gatewayEncIdentity is the decryption identity of the testdata xmlenc
// goldens, standing in for the partner (or backend) that reads what the
// gateway encrypts.
func gatewayEncIdentity(t *testing.T) wssec.StaticIdentity {
	t.Helper()
	cert, err := x509.ParseCertificate(mustPEM(t, readTestdata(t, "testdata", "wssec", "xmlenc", "gateway-enc.pem")))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(mustPEM(t, readTestdata(t, "testdata", "wssec", "xmlenc", "gateway-enc.key.pem")))
	if err != nil {
		t.Fatal(err)
	}
	return wssec.StaticIdentity{Cert: cert, Key: key.(crypto.Decrypter)}
}

// decryptingVerifier verifies and decrypts what the gateway sends or
// answers, as the receiving partner would.
func decryptingVerifier(t *testing.T, clk func() time.Time) *wssec.Verifier {
	return &wssec.Verifier{
		Policy: wssec.Policy{
			RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp},
			Decrypt:       &wssec.DecryptPolicy{Identity: gatewayEncIdentity(t), RequireEncrypted: []wssec.Part{wssec.PartBody}},
		},
		Trust: staticCerts{readPEMCert(t, "../testdata/pki/ca.pem")},
		Now:   clk,
	}
}

// soap.encrypt_response with sign_response: the client gets the response
// signed, then encrypted for its certificate; it decrypts and verifies.
func TestSOAPEncryptResponse(t *testing.T) {
	g, up, dir := securityGateway(t, `      sign_response: wsgate/signing/gw
      encrypt_response: {certificate: wsgate/partners/orders-enc}`, nil)
	writeSecretJSON(t, dir, "wsgate/signing/gw", map[string]string{
		"certificate": readTestdata(t, "testdata", "pki", "partner-ecdsa.pem"),
		"private_key": readTestdata(t, "testdata", "pki", "partner-ecdsa.key.pem"),
	})
	writeSecretJSON(t, dir, "wsgate/partners/orders-enc", map[string]string{
		"certificate": readTestdata(t, "testdata", "wssec", "xmlenc", "gateway-enc.pem"),
	})
	if err := g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := postTestdata(t, g, "valid-soap11-rsa.xml", nil)
	if w.Code != http.StatusOK || up.hits.Load() != 1 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), ">done<") || !strings.Contains(w.Body.String(), "EncryptedData") {
		t.Fatalf("response Body not encrypted:\n%s", w.Body)
	}
	v, err := decryptingVerifier(t, func() time.Time { return goldenAt }).Verify(context.Background(), w.Body.Bytes())
	if err != nil {
		t.Fatalf("partner cannot decrypt and verify: %v\n%s", err, w.Body)
	}
	out, err := v.Bytes(true)
	if err != nil || !strings.Contains(string(out), ">done<") || v.Signer.Subject.CommonName != "partner ecdsa" {
		t.Errorf("decrypted response %s (signer %s): %v", out, v.Signer.Subject, err)
	}
}

// bridge.encrypt: the backend gets the message signed, then its Body
// encrypted for the backend's certificate.
func TestBridgeEncrypt(t *testing.T) {
	dir := t.TempDir()
	clk := testclock.New(t0)
	tokKey := bridgeTokenKey(t, dir)
	writeBridgeFiles(t, dir)
	writeSecretJSON(t, dir, "wsgate/backends/orders-enc", map[string]string{
		"certificate": readTestdata(t, "testdata", "wssec", "xmlenc", "gateway-enc.pem"),
	})
	var mu sync.Mutex
	var got []byte
	var verr error
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v, err := decryptingVerifier(t, clk.Now).Verify(r.Context(), body)
		mu.Lock()
		defer mu.Unlock()
		got, verr = body, err
		if err == nil {
			got, verr = v.Bytes(true)
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = io.WriteString(w, `<s:Envelope xmlns:s="`+wssec.NSSOAP11+`"><s:Body><o:R xmlns:o="urn:o">ok</o:R></s:Body></s:Envelope>`)
	}))
	defer up.Close()
	g := newTestGateway(t, dir, `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders-bridge
    path_prefix: /bridge/orders
    oauth:
      issuer: "`+testIssuer+`"
      audience: [`+testAudience+`]
      jwks_secret: wsgate/jwks/t
      algorithms: [ES256]
    bridge:
      upstream: "`+up.URL+`/ws"
      operations:
        - {name: get-order, action: "urn:orders:GetOrder", request_template: templates/get-order.xml.tmpl}
      sign: {identity: wsgate/signing/bridge}
      encrypt: {certificate: wsgate/backends/orders-enc}
`, clk, &syncBuffer{})
	if err := g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := bridgePost(`{"orderId":"42","note":"n"}`, mintJWT(t, jose.ES256, tokKey, "", clk, nil))
	if w := serveReq(g, r); w.Code != http.StatusOK {
		t.Fatalf("bridged call: %d %s", w.Code, w.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if verr != nil || !strings.Contains(string(got), "42") {
		t.Errorf("backend: %v\n%s", verr, got)
	}
}

// A response that could not be encrypted must not be produced at all: with
// the certificate secret missing the request gets the 503 fault and never
// reaches the upstream.
func TestSOAPEncryptResponseUnavailable(t *testing.T) {
	g, up, _ := securityGateway(t, `      encrypt_response: {certificate: wsgate/partners/missing}`, nil)
	w := postTestdata(t, g, "valid-soap11-rsa.xml", nil)
	if w.Code != http.StatusServiceUnavailable || up.hits.Load() != 0 || !strings.Contains(w.Body.String(), "Fault") {
		t.Errorf("%d %s (upstream hits %d)", w.Code, w.Body, up.hits.Load())
	}
}
