package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wsgate encrypt signs and encrypts as the route would; wsgate verify on a
// route with soap.decrypt decrypts and verifies it, and refuses a plaintext
// Body where require_encrypted says body.
func TestEncryptVerifyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join("../../testdata", p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	secret := func(path string, fields map[string]string) {
		data, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "secrets", path+".json")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	secret("wsgate/trust/partners", map[string]string{"certificates": read("pki/ca.pem")})
	secret("wsgate/signing/partner", map[string]string{"certificate": read("pki/partner-rsa.pem"), "private_key": read("pki/partner-rsa.key.pem")})
	secret("wsgate/encryption/orders", map[string]string{"certificate": read("wssec/xmlenc/gateway-enc.pem"), "private_key": read("wssec/xmlenc/gateway-enc.key.pem")})
	secret("wsgate/partners/orders-enc", map[string]string{"certificate": read("wssec/xmlenc/gateway-enc.pem")})
	cfg := filepath.Join(dir, "wsgate.yaml")
	if err := os.WriteFile(cfg, []byte(`
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: http://127.0.0.1:9/ws
    soap:
      trust: wsgate/trust/partners
      sign_response: wsgate/signing/partner
      encrypt_response: {certificate: wsgate/partners/orders-enc}
      decrypt: {identity: wsgate/encryption/orders, require_encrypted: [body]}
  - {name: plain, path_prefix: /soap/plain, upstream: "http://127.0.0.1:9/ws", soap: {trust: wsgate/trust/partners}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:Ping xmlns:m="urn:wsgate:test">secret order</m:Ping></soap:Body></soap:Envelope>`

	code, enc, errOut := runCmd(t, plain, "encrypt", "-config", cfg, "-route", "orders")
	if code != exitOK || strings.Contains(enc, "secret order") || !strings.Contains(enc, "EncryptedData") {
		t.Fatalf("encrypt: exit %d, %s\n%s", code, errOut, enc)
	}
	code, out, errOut := runCmd(t, enc, "verify", "-config", cfg, "-route", "orders")
	if code != exitOK || !strings.HasPrefix(out, "OK signer=") || !strings.Contains(out, "partner rsa") {
		t.Errorf("verify encrypted: exit %d, %s %s", code, out, errOut)
	}
	code, signed, errOut := runCmd(t, plain, "sign", "-config", cfg, "-route", "orders")
	if code != exitOK {
		t.Fatalf("sign: %d %s", code, errOut)
	}
	if code, out, _ := runCmd(t, signed, "verify", "-config", cfg, "-route", "orders"); code != exitFail || !strings.HasPrefix(out, "FAIL InvalidSecurity") {
		t.Errorf("verify plaintext on require_encrypted: exit %d, %s", code, out)
	}
	if code, _, errOut := runCmd(t, plain, "encrypt", "-config", cfg, "-route", "plain"); code != exitFail || !strings.Contains(errOut, "no encryption certificate") {
		t.Errorf("encrypt on a route without a certificate: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCmd(t, "", "encrypt", "-config", cfg); code != exitUsage {
		t.Errorf("encrypt without -route: exit %d", code)
	}
}
