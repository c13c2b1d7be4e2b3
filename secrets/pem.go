package secrets

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// pemBegin left over after pem.Decode gives up means a truncated or
// malformed block, which must not be skipped silently. (Text around blocks,
// as openssl writes it, is ignored.)
var pemBegin = []byte("-----BEGIN")

// minRSABits refuses signing keys too weak to trust with the gateway's name.
const minRSABits = 2048

// ParseCertificates decodes one or more PEM CERTIFICATE blocks from a
// secret field. Errors name the secret path and field, never the content.
func ParseCertificates(path, field, data string) ([]*x509.Certificate, error) {
	rest := []byte(data)
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: %s field %s: PEM block %d is %q, want CERTIFICATE", ErrInvalidSecret, path, field, n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s field %s: certificate %d does not parse", ErrInvalidSecret, path, field, n)
		}
		certs = append(certs, c)
	}
	if bytes.Contains(rest, pemBegin) {
		return nil, fmt.Errorf("%w: %s field %s: malformed PEM block", ErrInvalidSecret, path, field)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: %s field %s: no PEM certificate", ErrInvalidSecret, path, field)
	}
	return certs, nil
}

// ParsePrivateKey decodes one PEM private key (PKCS#1 "RSA PRIVATE KEY",
// PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY"). Encrypted keys and RSA
// keys under 2048 bits are refused. Errors never quote the key.
func ParsePrivateKey(path, field, data string) (crypto.Signer, error) {
	fail := func(reason string) (crypto.Signer, error) {
		return nil, fmt.Errorf("%w: %s field %s: %s", ErrInvalidSecret, path, field, reason)
	}
	rest := []byte(data)
	var key any
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if key != nil {
			return fail("more than one private key")
		}
		if _, enc := block.Headers["Proc-Type"]; enc {
			return fail("encrypted private keys are not supported")
		}
		var err error
		switch block.Type {
		case "EC PARAMETERS": // openssl ecparam -genkey emits this before the key
			continue
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			return fail(fmt.Sprintf("PEM block is %q, want a private key", block.Type))
		}
		if err != nil {
			return fail(fmt.Sprintf("%s does not parse", block.Type))
		}
	}
	if bytes.Contains(rest, pemBegin) {
		return fail("malformed PEM block")
	}
	switch k := key.(type) {
	case nil:
		return fail("no PEM private key")
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return fail(fmt.Sprintf("RSA key of %d bits, want at least %d", k.N.BitLen(), minRSABits))
		}
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return fail(fmt.Sprintf("unsupported key type %T", key))
	}
}

// publicKeyEqual is the interface every stdlib public key implements.
type publicKeyEqual interface{ Equal(crypto.PublicKey) bool }

// checkKeyMatches refuses an identity whose key is not the leaf's.
func checkKeyMatches(path string, leaf *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(publicKeyEqual)
	if !ok || !pub.Equal(leaf.PublicKey) {
		return fmt.Errorf("%w: %s: private_key does not match the first certificate", ErrInvalidSecret, path)
	}
	return nil
}
