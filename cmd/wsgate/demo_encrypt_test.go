package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The demo's encrypted route accepts what its printed "wsgate encrypt"
// one-liner produces, hands the echo only the plaintext Body, and refuses a
// plaintext Body before the upstream.
func TestDemoEncryptedRoute(t *testing.T) {
	d := startDemoOn(t, freeLoopbackAddr(t))
	help := d.stdout.String()
	m := regexp.MustCompile(`go run \./cmd/wsgate (encrypt -config \S+ -route \S+ -in \S+) \\\n\s+\| curl -sS -H 'Content-Type: ([^']+)' --data-binary @- (\S+)\n`).FindStringSubmatch(help)
	if m == nil || m[3] != d.base+"/soap/encrypted" {
		t.Fatalf("demo instructions lack the encrypt one-liner for /soap/encrypted:\n%s", help)
	}
	for _, f := range []string{"secrets/wsgate/encryption/gateway.json", "secrets/wsgate/partners/gateway-enc.json"} {
		fi, err := os.Stat(filepath.Join(d.dir, f))
		if err != nil {
			t.Fatalf("demo dir: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, fi.Mode().Perm())
		}
	}
	admin := regexp.MustCompile(`curl -sS (http://\S+)/healthz\n`).FindStringSubmatch(help)
	if admin == nil {
		t.Fatalf("demo instructions lack the admin URL:\n%s", help)
	}
	upstreamCalls := func() int {
		t.Helper()
		res, err := http.Get(admin[1] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		c := regexp.MustCompile(`(?m)^wsgate_upstream_duration_seconds_count\{route="encrypted"\} (\d+)$`).FindSubmatch(b)
		if c == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(c[1]))
		return n
	}
	post := func(body []byte, contentType string) (int, string) {
		t.Helper()
		res, err := http.Post(m[3], contentType, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	// The printed step, through the real command.
	code, encrypted, errOut := runCmd(t, "", strings.Fields(m[1])...)
	if code != exitOK {
		t.Fatalf("%s: exit %d: %s", m[1], code, errOut)
	}
	if !strings.Contains(encrypted, "EncryptedData") || !strings.Contains(encrypted, "EncryptedKey") || strings.Contains(encrypted, "World") {
		t.Fatalf("wsgate encrypt did not encrypt the Body:\n%s", encrypted)
	}
	status, body := post([]byte(encrypted), m[2])
	if status != http.StatusOK || !strings.Contains(body, "<echo:Name>World</echo:Name>") {
		t.Fatalf("encrypted request: %d %s", status, body)
	}
	for _, s := range []string{"EncryptedData", "CipherValue", "EncryptedKey", "Security"} {
		if strings.Contains(body, s) {
			t.Errorf("the echo received %s, not just the plaintext Body:\n%s", s, body)
		}
	}
	if n := upstreamCalls(); n != 1 {
		t.Fatalf("upstream calls after the encrypted request = %d, want 1", n)
	}

	refused := []struct {
		name  string
		body  []byte
		fault string
	}{
		{"signed, not encrypted", d.signed(t), "<faultcode>wsse:InvalidSecurity</faultcode>"},
		{"neither", mustRead(t, filepath.Join(d.dir, "request.xml")), "<faultcode>wsse:InvalidSecurity</faultcode>"},
		{"replayed", []byte(encrypted), "<faultcode>wsse:InvalidSecurity</faultcode>"},
	}
	for _, tt := range refused {
		status, body := post(tt.body, m[2])
		if status != http.StatusInternalServerError || !strings.Contains(body, tt.fault) || strings.Contains(body, "World") {
			t.Errorf("%s: %d %s, want 500 with %s", tt.name, status, body, tt.fault)
		}
	}
	if n := upstreamCalls(); n != 1 {
		t.Errorf("upstream calls after the refused requests = %d, want still 1", n)
	}

	// The same route as a live bridge: JSON in, signed and encrypted through
	// this gateway's /soap/encrypted, JSON out.
	rw := regexp.MustCompile(`curl -sS -H "Authorization: Bearer ([A-Za-z0-9_.-]+)" -H 'Content-Type: application/json' \\\n\s+-d '(\{[^']*\})' (\S+/bridge/partner-encrypted/hello)\n`).FindStringSubmatch(help)
	if rw == nil || rw[3] != d.base+"/bridge/partner-encrypted/hello" {
		t.Fatalf("demo instructions lack the encrypting bridge call:\n%s", help)
	}
	req, _ := http.NewRequest(http.MethodPost, rw[3], strings.NewReader(rw[2]))
	req.Header.Set("Authorization", "Bearer "+rw[1])
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), "World") {
		t.Errorf("encrypting bridge: %d %s", res.StatusCode, b)
	}
	if n := upstreamCalls(); n != 2 {
		t.Errorf("upstream calls after the bridge call = %d, want 2", n)
	}
}

// freeLoopbackAddr is a loopback address free a moment ago, for the demo
// whose partner-encrypted bridge must know the proxy's own port.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// A demo directory made before the encrypted route gains its keys on the
// next run; later runs keep them.
func TestDemoEncryptionKeysAddedAndKept(t *testing.T) {
	dir := t.TempDir()
	if _, err := ensureDemoKeys(dir); err != nil {
		t.Fatal(err)
	}
	id := filepath.Join(dir, "secrets/wsgate/encryption/gateway.json")
	certOnly := filepath.Join(dir, "secrets/wsgate/partners/gateway-enc.json")
	if _, err := os.Stat(id); err == nil {
		t.Fatal("ensureDemoKeys wrote the encryption identity; the upgrade path below would test nothing")
	}
	if err := ensureDemoEncryptionKeys(dir); err != nil {
		t.Fatal(err)
	}
	fields, err := readSecretFile(filepath.Join(dir, "secrets"), demoDecryptPath)
	if err != nil || fields["certificate"] == "" || fields["private_key"] == "" {
		t.Fatalf("identity: %v %v", fields, err)
	}
	pub, err := readSecretFile(filepath.Join(dir, "secrets"), demoGatewayEncPath)
	if err != nil || len(pub) != 1 || pub["certificate"] != fields["certificate"] {
		t.Fatalf("certificate-only secret: %v %v", pub, err)
	}
	before := mustRead(t, id)
	if err := ensureDemoEncryptionKeys(dir); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, mustRead(t, id)) {
		t.Error("the encryption identity was regenerated")
	}
	if err := os.Remove(certOnly); err != nil {
		t.Fatal(err)
	}
	if err := ensureDemoEncryptionKeys(dir); err != nil || !bytes.Contains(mustRead(t, certOnly), []byte("BEGIN CERTIFICATE")) {
		t.Errorf("certificate-only secret not rewritten from the identity: %v", err)
	}
	if err := os.WriteFile(id, []byte(`{"private_key": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ensureDemoEncryptionKeys(dir); err == nil {
		t.Error("an identity without a certificate was accepted")
	}
}
