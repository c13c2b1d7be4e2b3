package gateway

import (
	"errors"
	"fmt"
	"time"

	"wsgate/config"
	"wsgate/wssec"
)

// ErrNoEncryption means the route encrypts nothing (no bridge.encrypt, no
// soap.encrypt_response).
var ErrNoEncryption = errors.New("gateway: route has no encryption certificate")

// encryptionSource is the certificate a route encrypts for, as the route
// itself would: bridge.encrypt, else soap.encrypt_response.
func encryptionSource(env *routeEnv, route *config.Route) (*certificateSource, error) {
	if b := route.Bridge; b != nil && b.Encrypt != nil {
		return newCertificateSource(env.secrets, b.Encrypt.Certificate), nil
	}
	if s := route.SOAP; s != nil && s.EncryptResponse != nil {
		return newCertificateSource(env.secrets, s.EncryptResponse.Certificate), nil
	}
	return nil, fmt.Errorf("%w: route %q (bridge.encrypt or soap.encrypt_response)", ErrNoEncryption, route.Name)
}

// CanEncrypt reports whether the route has an encryption certificate.
func (o *OfflineRoute) CanEncrypt() error { return o.encErr }

// Encrypt protects msg the way the route's outbound messages are: signed
// with its signing identity when it has one, then its Body content
// encrypted for the route's certificate (sign-then-encrypt, WSS4J's
// default order), rsa-oaep-mgf1p and AES-128-GCM.
func (o *OfflineRoute) Encrypt(msg []byte) ([]byte, error) {
	if o.encErr != nil {
		return nil, o.encErr
	}
	cert, err := o.encCert.Certificate()
	if err != nil {
		return nil, fmt.Errorf("encryption certificate: %w", err)
	}
	opts := wssec.EncryptOptions{Now: o.env.now}
	if o.signErr != nil {
		return wssec.EncryptBodyBytes(msg, xmlLimits(o.cfg), cert, opts)
	}
	chain, key, err := o.signer.Identity()
	if err != nil {
		return nil, fmt.Errorf("signing identity: %w", err)
	}
	ttl := o.signTTL()
	env, err := wssec.ParseEnvelope(msg, xmlLimits(o.cfg))
	if err != nil {
		return nil, err
	}
	defer env.Release()
	return wssec.SignThenEncrypt(env, &wssec.Signer{Chain: chain, Key: key, TTL: ttl, Now: o.env.now}, cert, opts)
}

// signTTL is the outbound Timestamp lifetime Sign uses.
func (o *OfflineRoute) signTTL() (ttl time.Duration) {
	if o.route.SOAP != nil {
		return o.route.SOAP.Timestamp.TTL.D()
	}
	return 0
}
