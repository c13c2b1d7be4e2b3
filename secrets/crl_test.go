package secrets

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"wsgate/internal/pki"
)

func TestCheckFieldsCRLAndDeny(t *testing.T) {
	ca, err := pki.Issuer{}.Issue(pki.Options{CommonName: "crl ca", IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
		ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	crlPEM := string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
	for name, tt := range map[string]struct {
		use    Use
		fields map[string]string
		want   error
	}{
		"crl pem":           {UseCRL, map[string]string{"crl": crlPEM}, nil},
		"crl der":           {UseCRL, map[string]string{"crl": string(der)}, nil},
		"crl missing":       {UseCRL, map[string]string{"x": "y"}, ErrNotFound},
		"crl garbage":       {UseCRL, map[string]string{"crl": "garbage"}, ErrInvalidSecret},
		"crl wrong pem":     {UseCRL, map[string]string{"crl": string(pki.CertPEM(ca.Cert))}, ErrInvalidSecret},
		"deny sha256":       {UseDeny, map[string]string{"sha256": "ab"}, nil},
		"deny certificates": {UseDeny, map[string]string{"certificates": string(pki.CertPEM(ca.Cert))}, nil},
		"deny empty":        {UseDeny, map[string]string{"other": "x"}, ErrNotFound},
	} {
		err := CheckFields("wsgate/trust/x", tt.fields, tt.use)
		if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: %v, want %v", name, err, tt.want)
		}
	}
}
