package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsgate/internal/gatewaytest"
	"wsgate/internal/pki"
)

// servedGateway is a `wsgate serve` running in the test process.
type servedGateway struct {
	addr string
	logs *syncBuffer
	stop func() int // cancels serve and returns its exit code
}

// startServe runs serveFile on cfgPath until the test ends.
func startServe(t *testing.T, cfgPath string) *servedGateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	ready := make(chan string, 1)
	done := make(chan int, 1)
	go func() { done <- serveFile(ctx, cfgPath, logs, func(a, _ string) { ready <- a }) }()
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		cancel()
		t.Fatalf("serve exited %d: %s", code, logs)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("serve did not start")
	}
	stopped := false
	code := 0
	stop := func() int {
		if !stopped {
			stopped = true
			cancel()
			code = <-done
		}
		return code
	}
	t.Cleanup(func() { stop() })
	return &servedGateway{addr: addr, logs: logs, stop: stop}
}

// writeSecretJSON writes a file-backend secret under dir/secrets.
func writeSecretJSON(t *testing.T, dir, path string, fields map[string]string) {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(secretFile(filepath.Join(dir, "secrets"), path), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// identityFields is the certificate + private_key secret of id (chain: id, then parents).
func identityFields(t *testing.T, id *pki.Identity, parents ...*x509.Certificate) map[string]string {
	t.Helper()
	key, err := pki.KeyPEM(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"certificate": string(pki.CertPEM(append([]*x509.Certificate{id.Cert}, parents...)...)),
		"private_key": string(key),
	}
}

func mustIssue(t *testing.T, opts pki.Options, parent *pki.Identity) *pki.Identity {
	t.Helper()
	id, err := pki.Issuer{}.Issue(opts, parent)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The listener serves its certificate from a KV secret and requires client
// certificates chaining to the client_ca bundle: no certificate, one from
// another CA and an expired one fail the handshake; a valid one gets through
// and its subject reaches the upstream in forward_client_cert's header,
// never a copy the client sent. Old protocol versions and RSA key exchange
// are refused.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	up := newRecordingUpstream(t)
	serverCA := mustIssue(t, pki.Options{CommonName: "server-ca", IsCA: true, Key: pki.ECP256}, nil)
	clientCA := mustIssue(t, pki.Options{CommonName: "client-ca", IsCA: true, Key: pki.ECP256}, nil)
	otherCA := mustIssue(t, pki.Options{CommonName: "other-ca", IsCA: true, Key: pki.ECP256}, nil)
	server := gatewaytest.IssueServer(t, serverCA, "gw.test")
	valid := mustIssue(t, pki.Options{CommonName: "partner-1", Key: pki.ECP256}, clientCA)
	wrongCA := mustIssue(t, pki.Options{CommonName: "intruder", Key: pki.ECP256}, otherCA)
	expired := mustIssue(t, pki.Options{CommonName: "old-partner", Key: pki.ECP256,
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, clientCA)

	writeSecretJSON(t, dir, "wsgate/tls/listener", identityFields(t, server, serverCA.Cert))
	writeSecretJSON(t, dir, "wsgate/tls/clients", map[string]string{"certificates": string(pki.CertPEM(clientCA.Cert))})
	cfgPath := filepath.Join(dir, "wsgate.yaml")
	writeTestFile(t, cfgPath, `
listen: 127.0.0.1:0
log: {level: info}
tls: {secret: wsgate/tls/listener, client_ca: wsgate/tls/clients}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: pub
    path_prefix: /pub
    upstream: "`+up.URL+`"
    public: true
    forward_client_cert: X-Client-Subject
    rate_limit: {per: client_cert, rate: 1000, burst: 1000}
`)
	gw := startServe(t, cfgPath)

	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	get := func(tc *tls.Config) (*http.Response, error) {
		tc.RootCAs = roots
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, "https://"+gw.addr+"/pub/x", nil)
		req.Header.Set("X-Client-Subject", "CN=forged")
		req.Header.Set("X_Client_Subject", "CN=forged")
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
		}
		return res, err
	}
	cert := func(id *pki.Identity, parents ...*x509.Certificate) []tls.Certificate {
		c := tls.Certificate{PrivateKey: id.Key, Leaf: id.Cert, Certificate: [][]byte{id.Cert.Raw}}
		for _, p := range parents {
			c.Certificate = append(c.Certificate, p.Raw)
		}
		return []tls.Certificate{c}
	}

	tests := []struct {
		name string
		tc   *tls.Config
		ok   bool
	}{
		{"no client certificate", &tls.Config{}, false},
		{"certificate from another CA", &tls.Config{Certificates: cert(wrongCA, otherCA.Cert)}, false},
		{"expired certificate", &tls.Config{Certificates: cert(expired)}, false},
		{"TLS 1.1", &tls.Config{Certificates: cert(valid), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
		{"TLS 1.2 with RSA key exchange only", &tls.Config{Certificates: cert(valid), MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}, false},
		{"valid certificate, TLS 1.2", &tls.Config{Certificates: cert(valid), MaxVersion: tls.VersionTLS12}, true},
		{"valid certificate", &tls.Config{Certificates: cert(valid)}, true},
	}
	for _, tt := range tests {
		before := up.hits.Load()
		res, err := get(tt.tc)
		if !tt.ok {
			if err == nil {
				t.Errorf("%s: got %d, want a failed handshake", tt.name, res.StatusCode)
			}
			if up.hits.Load() != before {
				t.Errorf("%s: reached the upstream", tt.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		h := up.header()
		if res.StatusCode != http.StatusOK || h.Get("X-Client-Subject") != valid.Cert.Subject.String() ||
			len(h.Values("X-Client-Subject")) != 1 || h.Get("X_Client_Subject") != "" {
			t.Errorf("%s: %d, upstream headers %v", tt.name, res.StatusCode, h)
		}
	}

	// Rotation: a new listener certificate and a new client CA bundle apply
	// to new connections after SIGHUP, without restarting the listener.
	server2 := gatewaytest.IssueServer(t, serverCA, "gw2.test")
	clientCA2 := mustIssue(t, pki.Options{CommonName: "client-ca-2", IsCA: true, Key: pki.ECP256}, nil)
	valid2 := mustIssue(t, pki.Options{CommonName: "partner-2", Key: pki.ECP256}, clientCA2)
	writeSecretJSON(t, dir, "wsgate/tls/listener", identityFields(t, server2, serverCA.Cert))
	writeSecretJSON(t, dir, "wsgate/tls/clients", map[string]string{"certificates": string(pki.CertPEM(clientCA2.Cert))})
	if v := hangup(t, gw); !strings.Contains(v, "configuration reloaded") {
		t.Fatalf("reload: %s", v)
	}
	if _, err := get(&tls.Config{Certificates: cert(valid)}); err == nil {
		t.Error("a certificate from the rotated-out CA still gets through")
	}
	tc := &tls.Config{Certificates: cert(valid2)}
	res, err := get(tc)
	if err != nil {
		t.Fatalf("new CA: %v", err)
	}
	if got := res.TLS.PeerCertificates[0].Subject.CommonName; got != "gw2.test" {
		t.Errorf("served certificate after rotation: %s", got)
	}
	if up.header().Get("X-Client-Subject") != valid2.Cert.Subject.String() {
		t.Errorf("subject after rotation: %q", up.header().Get("X-Client-Subject"))
	}

	if code := gw.stop(); code != exitOK {
		t.Errorf("serve exit %d: %s", code, gw.logs)
	}
	if strings.Contains(gw.logs.String(), "PRIVATE KEY") {
		t.Error("a private key reached the log")
	}
}
