package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tls.pki through serve, against a real Vault: the listener serves a
// certificate issued by Vault's PKI engine, and a SIGHUP reload with tls.pki
// unchanged keeps that certificate (no re-issue, no new login).
func TestServeTLSFromVaultPKI(t *testing.T) {
	srv, root := startVault(t, "pki")
	gen := vaultPKIRole(t, root)
	caPEM, _ := gen.Data["certificate"].(string)
	block, _ := pem.Decode([]byte(caPEM))
	if block == nil {
		t.Fatal("no root certificate from Vault")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", srv.Token)

	dir := t.TempDir()
	up := newRecordingUpstream(t)
	cfgPath := filepath.Join(dir, "wsgate.yaml")
	writeTestFile(t, cfgPath, fmt.Sprintf(`
listen: 127.0.0.1:0
log: {level: info}
tls: {pki: {mount: pki, role: wsgate, common_name: gw.example, ttl: 24h}}
secrets: {backend: vault, vault: {address: %q}}
routes:
  - {name: pub, path_prefix: /pub, upstream: %q, public: true}
`, srv.Addr, up.URL))
	gw := startServe(t, cfgPath)

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	get := func() (*x509.Certificate, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "gw.example"}}}
		defer c.CloseIdleConnections()
		res, err := c.Get("https://" + gw.addr + "/pub/x")
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %d", res.StatusCode)
		}
		return res.TLS.PeerCertificates[0], nil
	}
	var first *x509.Certificate
	deadline := time.Now().Add(20 * time.Second)
	for first == nil {
		if first, err = get(); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("no TLS from the PKI certificate: %v\n%s", err, gw.logs)
			}
			first = nil
			time.Sleep(100 * time.Millisecond)
		}
	}
	if first.Subject.CommonName != "gw.example" {
		t.Errorf("served certificate CN %q", first.Subject.CommonName)
	}
	if v := hangup(t, gw); !strings.Contains(v, "configuration reloaded") {
		t.Fatalf("reload: %s", v)
	}
	again, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("reload re-issued the certificate: serial %x then %x", first.SerialNumber, again.SerialNumber)
	}
	if n := strings.Count(gw.logs.String(), "listener certificate issued"); n != 1 {
		t.Errorf("%d issuances logged, want 1", n)
	}
	if code := gw.stop(); code != exitOK {
		t.Errorf("serve exit %d", code)
	}
}
