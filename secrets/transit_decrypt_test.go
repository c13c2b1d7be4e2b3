package secrets

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"wsgate/wssec"
)

// TestTransitDecrypterIntegration unwraps RSA-OAEP (SHA-256) session keys
// with a Transit RSA key in a real Vault dev server, refuses what Transit
// cannot do before asking it, and decrypts an XML Encryption message
// through wssec with the private key never leaving Vault.
func TestTransitDecrypterIntegration(t *testing.T) {
	v, mount := transitKeys(t)
	ctx := vaultCtx(t)
	d, err := NewTransitDecrypter(ctx, v, mount, "rsa")
	if err != nil {
		t.Fatal(err)
	}
	pub := d.Public().(*rsa.PublicKey)
	key := bytes.Repeat([]byte{0x42}, 16)
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []*rsa.OAEPOptions{{Hash: crypto.SHA256}, {Hash: crypto.SHA256, MGFHash: crypto.SHA256}} {
		got, err := d.Decrypt(nil, ct, opts)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("Decrypt(%+v) = %x, %v", opts, got, err)
		}
	}
	for name, opts := range map[string]crypto.DecrypterOpts{
		"sha1":     &rsa.OAEPOptions{Hash: crypto.SHA1},
		"mgf sha1": &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1},
		"label":    &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("x")},
		"pkcs1v15": &rsa.PKCS1v15DecryptOptions{},
		"nil":      nil,
	} {
		if _, err := d.Decrypt(nil, ct, opts); !errors.Is(err, ErrTransitUnsupported) {
			t.Errorf("%s: %v, want ErrTransitUnsupported", name, err)
		}
	}
	garbage := make([]byte, len(ct))
	garbage[1] = 1
	if _, err := d.Decrypt(nil, garbage, &rsa.OAEPOptions{Hash: crypto.SHA256}); !errors.Is(err, ErrTransitDecrypt) || errors.Is(err, ErrUnavailable) {
		t.Errorf("garbage: %v, want ErrTransitDecrypt", err)
	}
	if _, err := d.Decrypt(nil, ct[1:], &rsa.OAEPOptions{Hash: crypto.SHA256}); !errors.Is(err, ErrTransitDecrypt) {
		t.Errorf("short: %v, want ErrTransitDecrypt", err)
	}
	if _, err := NewTransitDecrypter(ctx, v, mount, "ec"); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("ecdsa key: %v, want ErrInvalidSecret", err)
	}

	// XML Encryption end to end: a certificate for the Transit key,
	// self-signed through Transit, and a Body encrypted for it.
	signer, err := NewTransitSigner(ctx, v, mount, "rsa")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "wsgate transit decryption"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(transitEnvelope)
	enc, err := wssec.EncryptBodyBytes(msg, wssec.Limits{}, cert, wssec.EncryptOptions{
		KeyTransport: wssec.AlgRSAOAEP, OAEPDigest: wssec.AlgSHA256, MGF: wssec.AlgMGF1SHA256,
		KeyReference: wssec.KeyRefIssuerSerial,
	})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc, []byte("hello")) {
		t.Fatal("Body not encrypted")
	}
	env, err := wssec.ParseEnvelope(enc, wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Release()
	pol := &wssec.DecryptPolicy{Identity: wssec.StaticIdentity{Cert: cert, Key: d}, RequireEncrypted: []wssec.Part{wssec.PartBody}}
	if _, err := pol.Decrypt(env, wssec.Limits{}); err != nil {
		t.Fatalf("decrypt through Transit: %v", err)
	}
	var out bytes.Buffer
	if _, err := env.Doc.WriteTo(&out); err != nil || !bytes.Contains(out.Bytes(), []byte(">hello<")) {
		t.Errorf("decrypted: %s, %v", out.Bytes(), err)
	}
}

// What Transit cannot do is refused before Vault is asked (no Vault here:
// a call would panic on the nil client).
func TestTransitDecrypterRefusesLocally(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	d := &TransitDecrypter{pub: &k.PublicKey, key: "k", mount: "transit", version: 1}
	ct := make([]byte, k.Size())
	for name, tt := range map[string]struct {
		ct   []byte
		opts crypto.DecrypterOpts
		want error
	}{
		"sha1":     {ct, &rsa.OAEPOptions{Hash: crypto.SHA1}, ErrTransitUnsupported},
		"sha512":   {ct, &rsa.OAEPOptions{Hash: crypto.SHA512, MGFHash: crypto.SHA512}, ErrTransitUnsupported},
		"mgf sha1": {ct, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1}, ErrTransitUnsupported},
		"label":    {ct, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("l")}, ErrTransitUnsupported},
		"pkcs1v15": {ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}, ErrTransitUnsupported},
		"nil opts": {ct, nil, ErrTransitUnsupported},
		"short":    {ct[1:], &rsa.OAEPOptions{Hash: crypto.SHA256}, ErrTransitDecrypt},
		"long":     {append(ct, 0), &rsa.OAEPOptions{Hash: crypto.SHA256}, ErrTransitDecrypt},
	} {
		if _, err := d.Decrypt(nil, tt.ct, tt.opts); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", name, err, tt.want)
		}
	}
}
