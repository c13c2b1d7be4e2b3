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
	"strings"
	"testing"
	"time"

	"wsgate/config"
	"wsgate/secrets"
	"wsgate/wssec"
)

// TestTransitDecryptionIntegration: soap.decrypt.transit_key unwraps the
// session key in Vault Transit (RSA-OAEP SHA-256), paired with the
// certificate of the identity secret; the sender's OAEP with SHA-1 (the
// rsa-oaep-mgf1p default) is wsse:UnsupportedAlgorithm, not a failure to
// decrypt, and Vault down is the gateway's failure.
func TestTransitDecryptionIntegration(t *testing.T) {
	srv, root := startVault(t, "transit")
	ctx := t.Context()
	if _, err := root.Logical().WriteWithContext(ctx, "transit/keys/orders-enc", map[string]any{"type": "rsa-2048"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(srv.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := vaultConfig(srv.Addr, config.VaultAuth{Method: "token", TokenFile: "token"})
	v, stop, err := newVaultBackend(ctx, cfg, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	signer, err := secrets.NewTransitSigner(ctx, v, "", "orders-enc")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "gateway encryption via transit"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if _, err := root.KVv2("secret").Put(ctx, "wsgate/encryption/orders", map[string]any{"certificate": certPEM}); err != nil {
		t.Fatal(err)
	}

	mgr := secrets.NewManager(v, nil, nil)
	env := &routeEnv{secrets: mgr, vault: v}
	id, err := decryptionIdentity(env, &config.Decrypt{Identity: "wsgate/encryption/orders", TransitKey: "orders-enc"})
	if err != nil {
		t.Fatal(err)
	}
	if id.Certificate() != nil {
		t.Fatal("certificate before the secret loaded")
	}
	if err := mgr.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !id.Certificate().Equal(cert) {
		t.Fatal("identity certificate is not the secret's")
	}
	pol := &wssec.DecryptPolicy{Identity: id, RequireEncrypted: []wssec.Part{wssec.PartBody}}
	msg := []byte(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:Ping xmlns:m="urn:wsgate:test">hello</m:Ping></soap:Body></soap:Envelope>`)
	decrypt := func(opts wssec.EncryptOptions) (string, error) {
		opts.KeyReference = wssec.KeyRefIssuerSerial
		enc, err := wssec.EncryptBodyBytes(msg, wssec.Limits{}, cert, opts)
		if err != nil {
			t.Fatal(err)
		}
		e, err := wssec.ParseEnvelope(enc, wssec.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Release()
		if _, err := pol.Decrypt(e, wssec.Limits{}); err != nil {
			return "", err
		}
		var b strings.Builder
		_, err = e.Doc.WriteTo(&b)
		return b.String(), err
	}
	out, err := decrypt(wssec.EncryptOptions{KeyTransport: wssec.AlgRSAOAEP, OAEPDigest: wssec.AlgSHA256, MGF: wssec.AlgMGF1SHA256})
	if err != nil || !strings.Contains(out, ">hello<") {
		t.Fatalf("rsa-oaep sha256 through Transit: %v\n%s", err, out)
	}
	if _, err := decrypt(wssec.EncryptOptions{}); !errors.Is(err, wssec.ErrUnsupportedAlgorithm) || wssec.FaultCode(err) != "UnsupportedAlgorithm" {
		t.Errorf("rsa-oaep-mgf1p (SHA-1): %v, want UnsupportedAlgorithm", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := decrypt(wssec.EncryptOptions{KeyTransport: wssec.AlgRSAOAEP, OAEPDigest: wssec.AlgSHA256, MGF: wssec.AlgMGF1SHA256}); wssec.ClientError(err) {
		t.Errorf("Vault down: %v, want the gateway's failure", err)
	}
}
