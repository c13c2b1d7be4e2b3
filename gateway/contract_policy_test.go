package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsgate/wssec"
)

// policyWSDL is contract/wspolicy's asymmetric-x509 golden WSDL (plus its
// input message); plain
// drops its EncryptedParts and signed WS-Addressing headers, leaving
// AsymmetricBinding, X509Token, Basic256Sha256, IncludeTimestamp and
// SignedParts/Body: a policy the signed test messages can meet.
func policyWSDL(t *testing.T, dir string, plain bool) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "contract", "wspolicy", "testdata", "asymmetric-x509.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	// The golden file is a policy fixture without wsdl:message, which
	// soap.wsdl needs: GetOrder's input is the test messages' Body element.
	portType := `<wsdl:portType name="Orders">`
	if !strings.Contains(string(b), portType) {
		t.Fatal("golden WSDL lacks its portType")
	}
	text := strings.Replace(string(b), portType, `<wsdl:message name="GetOrder"><wsdl:part name="p" element="tns:GetOrder"/></wsdl:message>`+portType, 1)
	if plain {
		for _, cut := range []string{`<sp:EncryptedParts><sp:Body/></sp:EncryptedParts>`, `<sp:Header Namespace="http://www.w3.org/2005/08/addressing"/>`} {
			if !strings.Contains(text, cut) {
				t.Fatalf("golden WSDL lacks %s", cut)
			}
			text = strings.Replace(text, cut, "", 1)
		}
	}
	path := filepath.Join(dir, "orders.wsdl")
	writeTestFile(t, path, text)
	return path
}

// TestSOAPPolicyFromWSDL: soap.policy: from_wsdl makes the WSDL's
// IncludeTimestamp a requirement although the route asks only for a signed
// Body: a signed message without a Timestamp is refused and the upstream
// gets nothing; the same route without the policy forwards it.
func TestSOAPPolicyFromWSDL(t *testing.T) {
	wsdlPath := policyWSDL(t, t.TempDir(), true)
	for _, tc := range []struct {
		name, policy, message string
		status                int
	}{
		{"no policy: unsigned-timestamp message passes", "", "no-timestamp.xml", 200},
		{"policy: Timestamp missing", "\n      policy: from_wsdl", "no-timestamp.xml", 500}, // SOAP 1.1 Fault
		{"policy: signed Timestamp", "\n      policy: from_wsdl", "valid-soap11-rsa.xml", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			g, up, _ := securityGateway(t, "      require_signed: [body]\n      wsdl: "+wsdlPath+tc.policy, logs)
			w := postTestdata(t, g, tc.message, nil)
			if checkForwarded(t, w, tc.status, up) {
				return
			}
			if !strings.Contains(w.Body.String(), "<faultcode>wsse:InvalidSecurity</faultcode>") {
				t.Fatalf("not the WS-Security fault: %s", w.Body)
			}
			if !strings.Contains(logs.String(), wssec.ErrTimestampMissing.Error()) {
				t.Fatalf("log does not name %v:\n%s", wssec.ErrTimestampMissing, logs)
			}
		})
	}
}

// TestSOAPPolicyFromWSDLBuild: a policy the route cannot meet fails the
// route's build naming the assertion and the setting; an assertion wsgate
// cannot enforce fails it naming the assertion.
func TestSOAPPolicyFromWSDLBuild(t *testing.T) {
	legacy, err := filepath.Abs(filepath.Join("..", "contract", "wspolicy", "testdata", "legacy-username.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, wsdl, extra string
		want              []string
	}{
		{"encrypted Body needs decrypt", "golden", "", []string{"sp:EncryptedParts/sp:Body", "soap.decrypt"}},
		{"encrypted Body needs CBC allowed", "golden", "\n      decrypt: {identity: wsgate/encryption/orders}",
			[]string{"sp:EncryptedParts/sp:Body", "soap.decrypt.algorithms.allow_cbc"}},
		{"unenforceable assertions", legacy, "\n      username_token: wsgate/users/orders\n      algorithms: {allow_sha1: true}",
			[]string{"cannot enforce sp:ProtectTokens", "cannot enforce sp:Wss11/sp:RequireSignatureConfirmation"}},
		{"SHA-1 suite needs allow_sha1", legacy, "\n      username_token: wsgate/users/orders", []string{"SHA-1", "soap.algorithms.allow_sha1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			wsdl := tc.wsdl
			if wsdl == "golden" {
				wsdl = policyWSDL(t, dir, false)
			}
			err := newGatewayErr(t, dir, `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: http://127.0.0.1:1
    soap:
      trust: wsgate/trust/partners
      wsdl: `+wsdl+`
      policy: from_wsdl`+tc.extra+"\n")
			if err == nil {
				t.Fatal("route built")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q: %v", w, err)
				}
			}
		})
	}
}

// TestSOAPPolicyFromWSDLOffline: wsgate verify (gateway.Route) applies the
// policy as serving does: the message without a Timestamp is refused with
// the same sentinel, a signed one with a Timestamp verifies.
func TestSOAPPolicyFromWSDLOffline(t *testing.T) {
	dir := t.TempDir()
	wsdlPath := policyWSDL(t, dir, true)
	writeSecretJSON(t, dir, "wsgate/trust/partners", map[string]string{"certificates": readTestdata(t, "testdata", "pki", "trust.pem")})
	path := filepath.Join(dir, "wsgate.yaml")
	writeTestFile(t, path, `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: http://127.0.0.1:1
    soap:
      trust: wsgate/trust/partners
      require_signed: [body]
      wsdl: `+wsdlPath+`
      policy: from_wsdl
`)
	route, err := Route(loadTestConfig(t, path), "orders", Deps{BaseDir: dir, Now: func() time.Time { return goldenAt }})
	if err != nil {
		t.Fatal(err)
	}
	defer route.Close()
	if err := route.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := route.Verify(t.Context(), []byte(readTestdata(t, "testdata", "wssec", "no-timestamp.xml"))); !errors.Is(err, wssec.ErrTimestampMissing) {
		t.Fatalf("no Timestamp: %v, want %v", err, wssec.ErrTimestampMissing)
	}
	if _, err := route.Verify(t.Context(), []byte(readTestdata(t, "testdata", "wssec", "valid-soap11-rsa.xml"))); err != nil {
		t.Fatalf("signed Timestamp: %v", err)
	}
}
