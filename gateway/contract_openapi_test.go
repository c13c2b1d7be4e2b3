package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"wsgate/internal/testclock"
	"wsgate/rest"
	"wsgate/wssec"
)

const ordersOpenAPI = `openapi: 3.0.3
info: {title: orders, version: "1"}
security: [{bearer: []}]
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
paths:
  /orders:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 50}}
      responses: {"200": {description: ok}}
  /get-order:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [orderId]
              properties:
                orderId: {type: string, pattern: "^[0-9]{1,10}$"}
                note: {type: string, maxLength: 100}
      responses: {"200": {description: ok}}
`

// TestRESTRouteOpenAPI: a REST route's openapi document refuses, behind
// authentication, what it does not describe, and the upstream sees nothing.
func TestRESTRouteOpenAPI(t *testing.T) {
	dir := t.TempDir()
	clk := testclock.New(t0)
	up := newRecordingUpstream(t)
	hmacKey := make([]byte, 32)
	if _, err := rand.Read(hmacKey); err != nil {
		t.Fatal(err)
	}
	writeSecretJSON(t, dir, "wsgate/jwks/hmac", map[string]string{"secret": base64.StdEncoding.EncodeToString(hmacKey)})
	if err := os.MkdirAll(filepath.Join(dir, "contracts"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "contracts", "orders.yaml"), ordersOpenAPI)
	g := newTestGateway(t, dir, `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /api/orders
    upstream: "`+up.URL+`"
    openapi: contracts/orders.yaml
    oauth: {issuer: "`+testIssuer+`", audience: [`+testAudience+`], jwks_secret: wsgate/jwks/hmac, algorithms: [HS256]}
`, clk, &syncBuffer{})
	if err := g.current().secrets.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := mintJWT(t, jose.HS256, hmacKey, "", clk, nil)
	for _, tc := range []struct {
		name, method, target, token string
		status                      int
		desc, allow                 string
	}{
		{"valid", "GET", "/api/orders/orders?limit=5", good, 200, "", ""},
		{"no token, unknown path: authentication first", "GET", "/api/orders/admin", "", 401, "", ""},
		{"query out of range", "GET", "/api/orders/orders?limit=500", good, 400, "query.limit does not match the API contract", ""},
		{"scalar query repeated", "GET", "/api/orders/orders?limit=5&limit=500", good, 400, "query.limit does not match the API contract", ""},
		{"unknown path", "GET", "/api/orders/admin", good, 404, "", ""},
		{"wrong method", "DELETE", "/api/orders/orders", good, 405, "", "GET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			r := bearerGet(tc.target, tc.token)
			r.Method = tc.method
			w := serveReq(g, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Fatalf("Allow %q, want %q", got, tc.allow)
			}
			if tc.status == 200 {
				if up.hits.Load() != before+1 {
					t.Fatal("valid request did not reach the upstream")
				}
				return
			}
			if up.hits.Load() != before {
				t.Fatal("refused request reached the upstream")
			}
			var eb rest.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil {
				t.Fatal(err)
			}
			if tc.desc != "" && (eb.Error != "invalid_request" || eb.Description != tc.desc) {
				t.Fatalf("body %+v, want invalid_request %q", eb, tc.desc)
			}
		})
	}
}

// TestOpenAPIBuildErrors: a missing or invalid document fails the build.
func TestOpenAPIBuildErrors(t *testing.T) {
	for name, doc := range map[string]string{"missing": "", "invalid": "openapi: 3.0.3\npaths: {}\n"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if doc != "" {
				writeTestFile(t, filepath.Join(dir, "api.yaml"), doc)
			}
			err := newGatewayErr(t, dir, `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: a, path_prefix: /a, upstream: "http://127.0.0.1:1", openapi: api.yaml, oauth: {issuer: "`+testIssuer+`", audience: [x], jwks_secret: wsgate/jwks/x, algorithms: [ES256]}}
`)
			if err == nil || !strings.Contains(err.Error(), "openapi") {
				t.Fatalf("err %v, want an openapi build error", err)
			}
		})
	}
}

// TestBridgeRouteOpenAPI: on a bridge route the JSON body is checked
// before any SOAP is built or sent.
func TestBridgeRouteOpenAPI(t *testing.T) {
	dir := t.TempDir()
	clk := testclock.New(t0)
	tokKey := bridgeTokenKey(t, dir)
	writeBridgeFiles(t, dir)
	writeTestFile(t, filepath.Join(dir, "orders.yaml"), ordersOpenAPI)
	svc := &soapService{t: t, clk: clk, reply: `<env:Envelope xmlns:env="` + wssec.NSSOAP12 + `"><env:Body><o:R xmlns:o="urn:o"><o:Status>ok</o:Status></o:R></env:Body></env:Envelope>`}
	up := httptest.NewServer(svc)
	defer up.Close()
	g := newTestGateway(t, dir, `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders-bridge
    path_prefix: /bridge/orders
    openapi: orders.yaml
    oauth: {issuer: "`+testIssuer+`", audience: [`+testAudience+`], jwks_secret: wsgate/jwks/t, algorithms: [ES256]}
    bridge:
      upstream: "`+up.URL+`/ws"
      soap_version: "1.2"
      operations:
        - {name: get-order, action: "urn:orders:GetOrder", request_template: templates/get-order.xml.tmpl}
      sign: {identity: wsgate/signing/bridge}
`, clk, &syncBuffer{})
	if err := g.current().secrets.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok := mintJWT(t, jose.ES256, tokKey, "", clk, nil)
	calls := func() int {
		svc.mu.Lock()
		defer svc.mu.Unlock()
		return len(svc.errs)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		desc       string
	}{
		{"valid", `{"orderId":"42","note":"hi"}`, 200, ""},
		{"pattern", `{"orderId":"</ord:OrderID><x/>"}`, 400, "body.orderId does not match the API contract"},
		{"extra field", `{"orderId":"42","admin":true}`, 400, ""},
		{"duplicate key", `{"orderId":"42","orderId":"43"}`, 400, ""},
		{"missing field", `{"note":"x"}`, 400, "body.orderId does not match the API contract"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := calls()
			w := serveReq(g, bridgePost(tc.body, tok))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status == 200 {
				if calls() != before+1 {
					t.Fatal("valid request not bridged")
				}
				return
			}
			if calls() != before {
				t.Fatal("refused request reached the SOAP service")
			}
			var eb rest.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil {
				t.Fatal(err)
			}
			if eb.Error != "invalid_request" || (tc.desc != "" && eb.Description != tc.desc) {
				t.Fatalf("body %+v, want invalid_request %q", eb, tc.desc)
			}
		})
	}
}
