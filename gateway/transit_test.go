package gateway

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"wsgate/config"
	"wsgate/internal/vaulttest"
	"wsgate/secrets"
	"wsgate/wssec"
)

type transitTrust []*x509.Certificate

func (c transitTrust) Certificates() ([]*x509.Certificate, error) { return c, nil }

// TestTransitIdentityIntegration signs a bridge message with a key that
// stays in Vault Transit, paired with the certificate from the identity
// secret, and checks the result with the inbound verifier.
func TestTransitIdentityIntegration(t *testing.T) {
	srv, root, v, dir := startTransitVault(t, "orders")
	ctx := t.Context()

	// The partner's certificate for the Transit key, self-signed through Transit.
	cert := putTransitCert(t, root, v, "orders", "wsgate/signing/orders", &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "orders via transit"},
		KeyUsage: x509.KeyUsageDigitalSignature,
	})

	mgr := secrets.NewManager(v, nil, nil)
	env := &routeEnv{secrets: mgr, vault: v}
	src, err := bridgeIdentity(env, &config.BridgeSign{Identity: "wsgate/signing/orders", TransitKey: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := src.Identity(); !errors.Is(err, secrets.ErrNotLoaded) {
		t.Fatalf("before the secret loads: %v, want ErrNotLoaded", err)
	}
	if err := mgr.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	chain, key, err := src.Identity()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := (&wssec.Signer{Chain: chain, Key: key}).SignBytes([]byte(
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><o:Get xmlns:o="urn:o">1</o:Get></s:Body></s:Envelope>`), wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	verifier := &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  transitTrust{cert},
	}
	if _, err := verifier.Verify(ctx, signed); err != nil {
		t.Fatalf("Transit-signed bridge message: %v", err)
	}

	// wsgate sign signs as the route would: through Transit.
	cfgPath := filepath.Join(dir, "wsgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(`
secrets:
  backend: vault
  vault: {address: "`+srv.Addr+`", kv_mount: secret, auth: {method: token, token_file: token}}
routes:
  - name: orders-bridge
    path_prefix: /bridge/orders
    oauth:
      issuer: https://issuer.example
      audience: [orders]
      jwks_secret: wsgate/jwks/orders
      algorithms: [ES256]
      scopes: [{methods: [POST], path: "/**", any_of: [orders.write]}]
    bridge:
      upstream: http://127.0.0.1:1/ws
      operations: [{name: get-order, action: "urn:orders:GetOrder", request_template: get-order.xml.tmpl}]
      sign: {identity: wsgate/signing/orders, transit_key: orders}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The offline signer (wsgate sign) signs through the same route builder.
	route, err := Route(loadTestConfig(t, cfgPath), "orders-bridge", Deps{BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer route.Close()
	if err := route.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := route.Sign([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><o:Get xmlns:o="urn:o">2</o:Get></s:Body></s:Envelope>`))
	if err != nil {
		t.Fatalf("offline sign with a Transit key: %v", err)
	}
	if _, err := verifier.Verify(ctx, out); err != nil {
		t.Fatalf("offline sign output: %v", err)
	}

	// A certificate for another key is refused rather than used.
	if _, err := root.KVv2("secret").Put(ctx, "wsgate/signing/orders", map[string]any{"certificate": otherCertPEM(t)}); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := src.Identity(); err == nil {
		t.Fatal("a certificate that does not match the Transit key was accepted")
	}
}

// startTransitVault starts a Vault dev server with the RSA Transit key key
// and returns it, its root client, a vault backend logged in with a token
// file, and that backend's config directory.
func startTransitVault(t *testing.T, key string) (*vaulttest.Server, *vault.Client, *secrets.Vault, string) {
	t.Helper()
	srv, root := startVault(t, "transit")
	if _, err := root.Logical().WriteWithContext(t.Context(), "transit/keys/"+key, map[string]any{"type": "rsa-2048"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(srv.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := vaultConfig(srv.Addr, config.VaultAuth{Method: "token", TokenFile: "token"})
	v, stop, err := newVaultBackend(t.Context(), cfg, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return srv, root, v, dir
}

// putTransitCert self-signs tmpl (valid for an hour either side of now)
// through the Transit key and stores it as the certificate of the KV
// secret path; it returns the certificate.
func putTransitCert(t *testing.T, root *vault.Client, v *secrets.Vault, key, path string, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	signer, err := secrets.NewTransitSigner(t.Context(), v, "", key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if _, err := root.KVv2("secret").Put(t.Context(), path, map[string]any{"certificate": certPEM}); err != nil {
		t.Fatal(err)
	}
	return cert
}

func otherCertPEM(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../testdata/pki/partner-rsa.pem")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
