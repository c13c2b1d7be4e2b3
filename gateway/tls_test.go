package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"wsgate/internal/gatewaytest"
	"wsgate/internal/pki"
	"wsgate/internal/testclock"
)

// upstream_tls: the upstream is trusted through the route's CA bundle
// secret (not the system roots) and wsgate presents the identity secret as
// its client certificate; both follow a refresh, per new connection.
func TestUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA := mustIssue(t, pki.Options{CommonName: "upstream-ca", IsCA: true, Key: pki.ECP256}, nil)
	otherCA := mustIssue(t, pki.Options{CommonName: "other-ca", IsCA: true, Key: pki.ECP256}, nil)
	clientCA := mustIssue(t, pki.Options{CommonName: "gateway-ca", IsCA: true, Key: pki.ECP256}, nil)
	gwClient := mustIssue(t, pki.Options{CommonName: "wsgate-client", Key: pki.ECP256}, clientCA)
	server := gatewaytest.IssueServer(t, serverCA, "upstream.test")

	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA.Cert)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // every request dials, so every request sees the current secrets
		_, _ = w.Write([]byte("hello " + r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	up.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{server.Cert.Raw}, PrivateKey: server.Key}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientPool,
	}
	up.StartTLS()
	t.Cleanup(up.Close)

	writeSecretJSON(t, dir, "wsgate/trust/upstream", map[string]string{"certificates": string(pki.CertPEM(serverCA.Cert))})
	writeSecretJSON(t, dir, "wsgate/tls/upstream-client", identityFields(t, gwClient))
	g := newTestGateway(t, dir, `
log: {level: error}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: tls
    path_prefix: /tls
    upstream: "`+up.URL+`"
    public: true
    upstream_tls: {ca: wsgate/trust/upstream, identity: wsgate/tls/upstream-client}
  - {name: roots, path_prefix: /roots, upstream: "`+up.URL+`", public: true}
`, testclock.New(time.Now()), &syncBuffer{})

	get := func(path string) (int, string) {
		w := serveReq(g, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code, w.Body.String()
	}
	if code, _ := get("/tls/x"); code != http.StatusBadGateway {
		t.Errorf("before the secrets loaded: %d", code)
	}
	if err := g.current().secrets.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/tls/x"); code != http.StatusOK || body != "hello wsgate-client" {
		t.Errorf("with upstream_tls: %d %q", code, body)
	}
	if code, _ := get("/roots/x"); code != http.StatusBadGateway {
		t.Errorf("system roots only: %d", code)
	}
	writeSecretJSON(t, dir, "wsgate/trust/upstream", map[string]string{"certificates": string(pki.CertPEM(otherCA.Cert))})
	if err := g.current().secrets.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/tls/x"); code != http.StatusBadGateway {
		t.Errorf("after the CA bundle rotated away from the upstream's CA: %d", code)
	}
}
