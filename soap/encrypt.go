package soap

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"wsgate/wssec"
)

// CertificateSource yields the certificate a response is encrypted for, as
// it is now (a refreshed secret is used from the next request on).
type CertificateSource interface {
	Certificate() (*x509.Certificate, error)
}

// Errors of encrypt_response. errEncryptionUnavailable is answered 503
// before the upstream is called; errResponseEncrypt is the upstream's (502).
var (
	errEncryptionUnavailable = errors.New("soap: the response encryption certificate is not available")
	errResponseEncrypt       = errors.New("soap: encrypting the upstream response failed")
)

// protection is what is done to an upstream response before the client
// gets it: signed, encrypted for a certificate, or signed then encrypted
// (WSS4J's default order: the signature covers the plaintext, and the
// partner decrypts before it verifies).
type protection struct {
	signer  *wssec.Signer
	cert    *x509.Certificate
	encOpts wssec.EncryptOptions
}

// responseProtection builds the protection of one request's response from
// the identities as they are now; nil when the route protects nothing.
func (h *Handler) responseProtection() (*protection, error) {
	if h.opts.SignResponse == nil && h.opts.EncryptResponse == nil {
		return nil, nil
	}
	p := &protection{encOpts: wssec.EncryptOptions{Now: h.opts.Now}}
	if h.opts.SignResponse != nil {
		s, err := h.responseSigner()
		if err != nil {
			return nil, err
		}
		p.signer = s
	}
	if h.opts.EncryptResponse != nil {
		cert, err := h.opts.EncryptResponse.Certificate()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errEncryptionUnavailable, err)
		}
		p.cert = cert
	}
	return p, nil
}

// apply protects a parsed upstream response.
func (p *protection) apply(env *wssec.Envelope) ([]byte, error) {
	switch {
	case p.signer != nil && p.cert != nil:
		out, err := wssec.SignThenEncrypt(env, p.signer, p.cert, p.encOpts)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errResponseEncrypt, err)
		}
		return out, nil
	case p.cert != nil:
		out, err := wssec.EncryptBody(env, p.cert, p.encOpts)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errResponseEncrypt, err)
		}
		return out, nil
	}
	out, err := p.signer.Sign(env)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errResponseSign, err)
	}
	return out, nil
}

// forwardAttributes sets the upstream headers of ForwardAttributes from a
// verified assertion: every configured header is first removed (a client's
// copy never passes, whatever the front door did), then set from the
// assertion's values, comma-separated. A value that could not be told
// apart from several (a comma in one of several values) or that is not a
// valid header value is not forwarded, and the log says so.
func (h *Handler) forwardAttributes(r *http.Request, a *wssec.Assertion, id string) {
	for attr, header := range h.opts.ForwardAttributes {
		r.Header.Del(header)
		if a == nil {
			continue
		}
		vals := a.Values(attr)
		if len(vals) == 0 {
			continue
		}
		ok := true
		for _, v := range vals {
			if len(vals) > 1 && strings.Contains(v, ",") || !headerValue(v) {
				ok = false
			}
		}
		if !ok {
			h.log.LogAttrs(r.Context(), slog.LevelWarn, "saml attribute not forwarded: not a valid header value",
				slog.String("route", h.opts.Route), slog.String("request_id", id),
				slog.String("attribute", attr), slog.String("header", header))
			continue
		}
		r.Header.Set(header, strings.Join(vals, ","))
	}
}

// maxAttributeValue caps a forwarded attribute value.
const maxAttributeValue = 4096

func headerValue(v string) bool {
	if len(v) > maxAttributeValue {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
