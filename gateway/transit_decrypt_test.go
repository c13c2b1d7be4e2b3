package gateway

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"

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
	srv, root, v, _ := startTransitVault(t, "orders-enc")
	ctx := t.Context()
	cert := putTransitCert(t, root, v, "orders-enc", "wsgate/encryption/orders", &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "gateway encryption via transit"},
		KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
	})

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
