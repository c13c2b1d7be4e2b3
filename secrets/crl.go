package secrets

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// checkCRL reports whether a crl field holds a CRL that parses: PEM "X509
// CRL" blocks, or one DER CRL. Whether it verifies and is current is the
// gateway's check, against the route's trust sets.
func checkCRL(path, text string) error {
	if !strings.Contains(text, "-----BEGIN") {
		if _, err := x509.ParseRevocationList([]byte(text)); err != nil {
			return fmt.Errorf("%w: %s field crl: not a PEM or DER CRL", ErrInvalidSecret, path)
		}
		return nil
	}
	rest, n := []byte(text), 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		if block.Type != "X509 CRL" {
			return fmt.Errorf("%w: %s field crl: PEM block %d is %q, not X509 CRL", ErrInvalidSecret, path, n, block.Type)
		}
		if _, err := x509.ParseRevocationList(block.Bytes); err != nil {
			return fmt.Errorf("%w: %s field crl: CRL %d does not parse", ErrInvalidSecret, path, n)
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: %s field crl: no PEM block", ErrInvalidSecret, path)
	}
	return nil
}
