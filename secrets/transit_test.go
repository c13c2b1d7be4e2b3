package secrets

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsgate/internal/pki"
	"wsgate/wssec"
)

func TestDecodeTransitSignature(t *testing.T) {
	sig := base64.StdEncoding.EncodeToString([]byte("sig"))
	if got, err := decodeTransitSignature("vault:v3:"+sig, 3); err != nil || string(got) != "sig" {
		t.Errorf("decode = %q, %v", got, err)
	}
	for _, bad := range []string{
		"", "sig", "vault:v3", "vault:v3:", "vault:v2:" + sig, "vault:vx:" + sig, "vault:v3:***",
		"vault:v-3:" + sig, "vault:v03:" + sig + "!", "VAULT:v3:" + sig,
	} {
		if _, err := decodeTransitSignature(bad, 3); err == nil {
			t.Errorf("decode(%q) succeeded", bad)
		}
	}
}

func FuzzDecodeTransitSignature(f *testing.F) {
	f.Add("vault:v1:c2ln")
	f.Add("vault:v1:")
	f.Add("vault:v99999999999999999999:AA==")
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := decodeTransitSignature(s, 1)
		if err == nil && (len(sig) == 0 || !strings.HasPrefix(s, "vault:v")) {
			t.Fatalf("accepted %q", s)
		}
	})
}

func TestParseTransitPublicKey(t *testing.T) {
	weak, err := pki.Issuer{}.NewKey(pki.RSA1024)
	if err != nil {
		t.Fatal(err)
	}
	weakDER, _ := x509.MarshalPKIXPublicKey(weak.Public())
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	pemOf := func(der []byte) string {
		return "-----BEGIN PUBLIC KEY-----\n" + base64.StdEncoding.EncodeToString(der) + "\n-----END PUBLIC KEY-----\n"
	}
	if k, err := parseTransitPublicKey("ed25519", base64.StdEncoding.EncodeToString(edPub)); err != nil || !edPub.Equal(k) {
		t.Errorf("ed25519: %v", err)
	}
	for name, tt := range map[string]struct{ typ, text string }{
		"weak rsa":           {"rsa-2048", pemOf(weakDER)},
		"not pem":            {"rsa-2048", "hello"},
		"garbage der":        {"ecdsa-p256", pemOf([]byte("junk"))},
		"ed25519 short":      {"ed25519", "AAAA"},
		"ed25519 as pem pkx": {"rsa-2048", pemOf(edDER)},
	} {
		if _, err := parseTransitPublicKey(tt.typ, tt.text); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// transitKeys creates a Transit mount with one key per type under test.
func transitKeys(t *testing.T) (*Vault, string) {
	t.Helper()
	srv := vaultHarness.Require(t)
	ctx := vaultCtx(t)
	mount := "transit-" + randSuffix(t)
	if err := srv.Mount(ctx, mount, "transit", nil); err != nil {
		t.Fatal(err)
	}
	root := rootClient(t, srv)
	for name, typ := range map[string]string{
		"rsa": "rsa-2048", "rsa3072": "rsa-3072", "ec": "ecdsa-p256", "ec384": "ecdsa-p384",
		"ed": "ed25519", "aes": "aes256-gcm96",
	} {
		mustWrite2(t, root, mount+"/keys/"+name, map[string]any{"type": typ})
	}
	return tokenVault(t, srv), mount
}

func TestTransitSignerIntegration(t *testing.T) {
	v, mount := transitKeys(t)
	ctx := vaultCtx(t)
	msg := []byte("<SignedInfo>wsgate</SignedInfo>")
	d256 := sha256.Sum256(msg)
	d384 := sha512.Sum384(msg)
	d512 := sha512.Sum512(msg)

	tests := []struct {
		key    string
		opts   crypto.SignerOpts
		digest []byte
	}{
		{"rsa", crypto.SHA256, d256[:]},
		{"rsa", crypto.SHA384, d384[:]},
		{"rsa", crypto.SHA512, d512[:]},
		{"rsa", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, d256[:]},
		{"rsa3072", crypto.SHA256, d256[:]},
		{"ec", crypto.SHA256, d256[:]},
		{"ec384", crypto.SHA384, d384[:]},
		{"ed", crypto.Hash(0), msg},
	}
	for _, tt := range tests {
		name := tt.key + "-message"
		if h := tt.opts.HashFunc(); h != 0 {
			name = tt.key + "-" + h.String()
		}
		if _, ok := tt.opts.(*rsa.PSSOptions); ok {
			name += "-pss"
		}
		t.Run(name, func(t *testing.T) {
			s, err := NewTransitSigner(ctx, v, mount, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if s.KeyVersion() != 1 {
				t.Errorf("version %d", s.KeyVersion())
			}
			sig, err := s.Sign(nil, tt.digest, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			// Verified independently with the standard library.
			switch pub := s.Public().(type) {
			case *rsa.PublicKey:
				if pss, ok := tt.opts.(*rsa.PSSOptions); ok {
					err = rsa.VerifyPSS(pub, pss.Hash, tt.digest, sig, pss)
				} else {
					err = rsa.VerifyPKCS1v15(pub, tt.opts.HashFunc(), tt.digest, sig)
				}
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, tt.digest, sig) {
					err = errors.New("ecdsa.VerifyASN1 failed")
				}
			case ed25519.PublicKey:
				if !ed25519.Verify(pub, tt.digest, sig) {
					err = errors.New("ed25519.Verify failed")
				}
			default:
				err = errors.New("unexpected key type")
			}
			if err != nil {
				t.Errorf("signature does not verify: %v", err)
			}
			flipped := bytes.Clone(tt.digest)
			flipped[0] ^= 1
			if pub, ok := s.Public().(*ecdsa.PublicKey); ok && ecdsa.VerifyASN1(pub, flipped, sig) {
				t.Error("signature verifies over another digest")
			}
		})
	}

	s, err := NewTransitSigner(ctx, v, mount, "rsa")
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"short digest", d256[:31], crypto.SHA256},
		{"md5", d256[:16], crypto.MD5},
		{"no hash", d256[:], crypto.Hash(0)},
		{"pss fixed salt", d256[:], &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA256}},
	}
	for _, tt := range bad {
		if _, err := s.Sign(nil, tt.digest, tt.opts); !errors.Is(err, ErrTransit) {
			t.Errorf("%s: err = %v, want ErrTransit", tt.name, err)
		}
	}

	if _, err := NewTransitSigner(ctx, v, mount, "aes"); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("aes key: %v, want ErrInvalidSecret", err)
	}
	if _, err := NewTransitSigner(ctx, v, mount, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: %v, want ErrNotFound", err)
	}
	if _, err := NewTransitSigner(ctx, v, mount, "a/b"); !errors.Is(err, ErrVaultConfig) {
		t.Errorf("key with a slash: %v, want ErrVaultConfig", err)
	}

	// Rotation in Vault: the old signer stays on its version, so its
	// signatures keep matching its Public(); a new signer takes version 2.
	srv := vaultHarness.Require(t)
	mustWrite2(t, rootClient(t, srv), mount+"/keys/rsa/rotate", nil)
	sig, err := s.Sign(nil, d256[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(s.Public().(*rsa.PublicKey), crypto.SHA256, d256[:], sig); err != nil {
		t.Errorf("pinned signer after rotation: %v", err)
	}
	s2, err := NewTransitSigner(ctx, v, mount, "rsa")
	if err != nil {
		t.Fatal(err)
	}
	if s2.KeyVersion() != 2 || s2.Public().(*rsa.PublicKey).Equal(s.Public()) {
		t.Errorf("after rotation: version %d, same key %v", s2.KeyVersion(), s2.Public().(*rsa.PublicKey).Equal(s.Public()))
	}
}

// staticTrust pins certificates for wssec.Verifier.
type staticTrust []*x509.Certificate

func (s staticTrust) Certificates() ([]*x509.Certificate, error) { return s, nil }

const transitEnvelope = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">` +
	`<soap:Body><m:Ping xmlns:m="urn:wsgate:test">hello</m:Ping></soap:Body></soap:Envelope>`

// TestTransitWSSecurityIntegration signs a SOAP envelope with a
// wssec.Signer whose key lives in Transit, and checks the signature with
// wssec.Verifier and with xmlsec1. The certificate itself is self-signed
// through Transit too.
func TestTransitWSSecurityIntegration(t *testing.T) {
	v, mount := transitKeys(t)
	ctx := vaultCtx(t)
	for _, key := range []string{"rsa", "ec"} {
		t.Run(key, func(t *testing.T) {
			s, err := NewTransitSigner(ctx, v, mount, key)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(1),
				Subject:      pkix.Name{CommonName: "wsgate transit " + key},
				NotBefore:    now.Add(-time.Hour),
				NotAfter:     now.Add(time.Hour),
				KeyUsage:     x509.KeyUsageDigitalSignature,
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
			if err != nil {
				t.Fatalf("self-sign through Transit: %v", err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
				t.Fatalf("Transit-signed certificate does not verify: %v", err)
			}

			signer := &wssec.Signer{Chain: []*x509.Certificate{cert}, Key: s}
			signed, err := signer.SignBytes([]byte(transitEnvelope), wssec.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			verifier := &wssec.Verifier{
				Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
				Trust:  staticTrust{cert},
			}
			got, err := verifier.Verify(ctx, signed)
			if err != nil {
				t.Fatalf("wssec.Verify: %v\n%s", err, signed)
			}
			if !got.Signer.Equal(cert) {
				t.Errorf("Signer = %s", got.Signer.Subject)
			}
			tampered := bytes.Replace(signed, []byte(">hello<"), []byte(">hellO<"), 1)
			if _, err := verifier.Verify(ctx, tampered); !errors.Is(err, wssec.ErrDigestMismatch) {
				t.Errorf("tampered body: %v, want ErrDigestMismatch", err)
			}

			xmlsecVerify(t, cert, signed)
		})
	}
}

// xmlsecVerify checks msg's signature with xmlsec1 against cert's key.
func xmlsecVerify(t *testing.T, cert *x509.Certificate, msg []byte) {
	t.Helper()
	xmlsec1, err := exec.LookPath("xmlsec1")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("xmlsec1 not found (%v) and CI is set; install with: apt-get install -y xmlsec1", err)
		}
		t.Skipf("xmlsec1 not found (%v); install with: apt-get install -y xmlsec1", err)
	}
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cert.pem")
	msgFile := filepath.Join(dir, "msg.xml")
	if err := os.WriteFile(certFile, pki.CertPEM(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(msgFile, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmlsec1, "--verify",
		"--pubkey-cert-pem", certFile,
		"--id-attr:Id", wssec.NSSOAP11+":Body",
		"--id-attr:Id", wssec.NSWSU+":Timestamp",
		msgFile).CombinedOutput()
	if err != nil || !bytes.HasPrefix(out, []byte("OK")) {
		t.Fatalf("xmlsec1 --verify: %v\n%s\nmessage:\n%s", err, out, msg)
	}
}
