// Package pki issues the certificates wsgate's embedded demo and its tests
// need: a CA, partner and gateway leaves, and deliberately bad variants
// (expired, weak key, wrong key usage). It is not a general-purpose CA.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"time"
)

// KeyType selects the key algorithm of an issued certificate.
type KeyType string

const (
	RSA2048 KeyType = "rsa2048"
	RSA1024 KeyType = "rsa1024" // too weak: for rejection tests
	RSA3072 KeyType = "rsa3072"
	ECP256  KeyType = "ecp256"
	ECP384  KeyType = "ecp384"
)

// Identity is a certificate with its private key.
type Identity struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Options describe a certificate to issue. Zero values take sensible defaults.
type Options struct {
	CommonName string
	Key        KeyType   // default RSA2048
	NotBefore  time.Time // default: Now - 1h
	NotAfter   time.Time // default: NotBefore + 1 year
	IsCA       bool
	// KeyUsage overrides the default (DigitalSignature for leaves, CertSign for CAs).
	KeyUsage x509.KeyUsage
	Serial   int64 // default: random
}

// Issuer issues certificates. Rand and Now are injected so tests are repeatable.
type Issuer struct {
	Rand io.Reader        // default crypto/rand
	Now  func() time.Time // default time.Now
}

func (is Issuer) rand() io.Reader {
	if is.Rand != nil {
		return is.Rand
	}
	return rand.Reader
}

func (is Issuer) now() time.Time {
	if is.Now != nil {
		return is.Now()
	}
	return time.Now()
}

// NewKey generates a private key of the given type.
func (is Issuer) NewKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case "", RSA2048:
		return rsa.GenerateKey(is.rand(), 2048)
	case RSA1024:
		return rsa.GenerateKey(is.rand(), 1024)
	case RSA3072:
		return rsa.GenerateKey(is.rand(), 3072)
	case ECP256:
		return ecdsa.GenerateKey(elliptic.P256(), is.rand())
	case ECP384:
		return ecdsa.GenerateKey(elliptic.P384(), is.rand())
	}
	return nil, fmt.Errorf("pki: unknown key type %q", kt)
}

// Issue creates a certificate signed by parent, or self-signed when parent is nil.
func (is Issuer) Issue(opts Options, parent *Identity) (*Identity, error) {
	key, err := is.NewKey(opts.Key)
	if err != nil {
		return nil, err
	}
	notBefore := opts.NotBefore
	if notBefore.IsZero() {
		notBefore = is.now().Add(-time.Hour)
	}
	notAfter := opts.NotAfter
	if notAfter.IsZero() {
		notAfter = notBefore.AddDate(1, 0, 0)
	}
	serial := big.NewInt(opts.Serial)
	if opts.Serial == 0 {
		serial, err = rand.Int(is.rand(), new(big.Int).Lsh(big.NewInt(1), 62))
		if err != nil {
			return nil, err
		}
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	ski := sha1.Sum(pubDER) // RFC 5280 method 1 identifier, not a security use of SHA-1
	usage := opts.KeyUsage
	if usage == 0 {
		usage = x509.KeyUsageDigitalSignature
		if opts.IsCA {
			usage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName, Organization: []string{"wsgate demo"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              usage,
		BasicConstraintsValid: true,
		IsCA:                  opts.IsCA,
		SubjectKeyId:          ski[:],
	}
	if !opts.IsCA {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(is.rand(), tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Identity{Cert: cert, Key: key}, nil
}

// CertPEM encodes certificates as PEM, in order.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
