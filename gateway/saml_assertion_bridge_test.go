package gateway

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"wsgate/internal/testclock"
	"wsgate/wssec"
)

// bridge.sign.saml_assertion from config: the bridge route and `wsgate
// sign -route` (OfflineRoute.Sign) both carry the assertion, signed, and
// what they send verifies on a sender-vouches route.

// svNow is inside the SAML goldens' assertion window.
var svNow = time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)

func svVerifier(t *testing.T) *wssec.Verifier {
	return &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  staticCerts{readPEMCert(t, "../testdata/pki/ca.pem")},
		SAML: &wssec.SAMLPolicy{Trust: staticCerts{readPEMCert(t, "../testdata/pki/saml-idp.pem")},
			Audience: []string{"urn:wsgate:orders"}, Confirmation: []string{"sender-vouches"}},
		Now: func() time.Time { return svNow },
	}
}

// svSecrets writes the bridge identity and the assertion secret.
func svSecrets(t *testing.T, dir string) {
	t.Helper()
	assertion := regexp.MustCompile(`(?s)<saml2:Assertion\b.*?</saml2:Assertion>`).FindString(readTestdata(t, "testdata", "wssec", "saml-sv-direct.xml"))
	if assertion == "" {
		t.Fatal("no assertion in saml-sv-direct.xml")
	}
	writeBridgeFiles(t, dir)
	writeSecretJSON(t, dir, "wsgate/bridge/alice", map[string]string{"assertion": assertion})
}

const svBridgeRoute = `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders-bridge
    path_prefix: /bridge/orders
    oauth:
      issuer: "` + testIssuer + `"
      audience: [` + testAudience + `]
      jwks_secret: wsgate/jwks/t
      algorithms: [ES256]
    bridge:
      upstream: "UPSTREAM"
      operations:
        - {name: get-order, action: "urn:orders:GetOrder", request_template: templates/get-order.xml.tmpl}
      sign: {identity: wsgate/signing/bridge, saml_assertion: wsgate/bridge/alice}
`

func TestOfflineSignSAMLAssertion(t *testing.T) {
	dir := t.TempDir()
	svSecrets(t, dir)
	writeSecretJSON(t, dir, "wsgate/jwks/t", map[string]string{"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustPKIX(t)}))})
	path := filepath.Join(dir, "wsgate.yaml")
	writeTestFile(t, path, strings.Replace(svBridgeRoute, "UPSTREAM", "http://127.0.0.1:1/ws", 1))
	route, err := Route(loadTestConfig(t, path), "orders-bridge", Deps{BaseDir: dir, Now: func() time.Time { return svNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer route.Close()
	if err := route.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := route.Sign([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><o:Get xmlns:o="urn:o">2</o:Get></s:Body></s:Envelope>`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := svVerifier(t).Verify(context.Background(), out)
	if err != nil {
		t.Fatalf("offline sign output: %v\n%s", err, out)
	}
	defer res.Release()
	if a := res.Assertion; a == nil || a.Confirmation != wssec.ConfirmSenderVouches || a.Subject != "alice@example.com" {
		t.Fatalf("assertion = %+v", res.Assertion)
	}
}

func TestBridgeRouteSAMLAssertion(t *testing.T) {
	dir := t.TempDir()
	svSecrets(t, dir)
	clk := testclock.New(svNow)
	tokKey := bridgeTokenKey(t, dir)

	var mu sync.Mutex
	var got []*wssec.Assertion
	var errs []error
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := svVerifier(t).Verify(r.Context(), body)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got = append(got, res.Assertion)
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = io.WriteString(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ok/></s:Body></s:Envelope>`)
	}))
	defer up.Close()
	g := newTestGateway(t, dir, strings.Replace(svBridgeRoute, "UPSTREAM", up.URL+"/ws", 1), clk, &syncBuffer{})
	if err := g.current().secrets.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := serveReq(g, bridgePost(`{"orderId":"42","note":"n"}`, mintJWT(t, jose.ES256, tokKey, "", clk, nil)))
	mu.Lock()
	defer mu.Unlock()
	if w.Code != http.StatusOK || len(errs) != 0 || len(got) != 1 {
		t.Fatalf("status %d %s; upstream errors %v", w.Code, w.Body, errs)
	}
	if a := got[0]; a == nil || a.Confirmation != wssec.ConfirmSenderVouches || a.Subject != "alice@example.com" {
		t.Fatalf("assertion = %+v", a)
	}
}

func mustPKIX(t *testing.T) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(newP256(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
