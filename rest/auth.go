package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"wsgate/oauth"
)

// APIKeyValidator validates a presented API key; *oauth.APIKeys satisfies it.
type APIKeyValidator interface {
	Validate(ctx context.Context, key string) (*oauth.Token, error)
}

// Credential failures the rest edge adds.
var (
	// ErrMultipleCredentials refuses a request carrying both an API key
	// and an Authorization header, or the key header twice: only one
	// credential is checked, so none may ride along unchecked (400).
	ErrMultipleCredentials = errors.New("rest: more than one credential")
	// ErrNoAPIKey is ErrNoToken on a route that takes API keys only.
	ErrNoAPIKey = fmt.Errorf("%w: no API key", oauth.ErrNoToken)
)

// dpopChallenge marks an error answered with a DPoP challenge (RFC 9449
// section 7.1) instead of a Bearer one; algs lists the proof algorithms.
type dpopChallenge struct {
	err  error
	algs []string
}

func (e *dpopChallenge) Error() string { return e.err.Error() }
func (e *dpopChallenge) Unwrap() error { return e.err }

// credential is what authenticate found.
type credential struct {
	tok    *oauth.Token
	fp     oauth.Fingerprint
	has    bool   // a credential was presented (fp is set)
	scheme string // oauth.SchemeBearer, oauth.SchemeDPoP, or "api_key"
}

const schemeAPIKey = "api_key"

// authenticate finds and checks the request's one credential: an API key
// in the configured header (when the route takes keys), else a Bearer or
// DPoP access token. For tokens it then enforces proof of possession: a
// DPoP-bound token (cnf.jkt) only with a valid proof, a certificate-bound
// one (cnf.x5t#S256) only on the mTLS connection of that certificate, and
// the route's requirements (dpop.required, require_certificate_binding).
func (h *handler) authenticate(r *http.Request) (credential, error) {
	var c credential
	if h.o.APIKeys != nil {
		vals := r.Header.Values(h.o.APIKeyHeader)
		if len(vals) > 0 {
			if len(vals) > 1 || len(r.Header.Values("Authorization")) > 0 {
				return c, ErrMultipleCredentials
			}
			c.has, c.fp, c.scheme = true, oauth.FingerprintOf(vals[0]), schemeAPIKey
			tok, err := h.o.APIKeys.Validate(r.Context(), vals[0])
			c.tok = tok
			return c, err
		}
		if h.o.Validator == nil {
			return c, ErrNoAPIKey
		}
	}
	scheme, raw, err := oauth.CredentialsFromRequest(r)
	if err != nil {
		return c, err
	}
	c.scheme = scheme
	if scheme == oauth.SchemeDPoP && h.o.DPoP == nil {
		return c, fmt.Errorf("%w: DPoP is not enabled on this route", oauth.ErrNoToken)
	}
	c.has, c.fp = true, oauth.FingerprintOf(raw)
	if scheme == oauth.SchemeDPoP {
		// The proof's shape is checked before the token costs a signature
		// check or an introspection call.
		if _, err := oauth.ProofFromRequest(r); err != nil {
			return c, err
		}
	}
	tok, err := h.o.Validator.Validate(r.Context(), raw)
	if err != nil {
		return c, err
	}
	c.tok = tok
	_, jktBound := oauth.Confirmation(tok, "jkt")
	switch {
	case scheme == oauth.SchemeDPoP:
		proof, _ := oauth.ProofFromRequest(r)
		trusted := h.o.TrustForwardedProto != nil && h.o.TrustForwardedProto(r)
		if _, err := h.o.DPoP.Verify(r.Context(), proof, r.Method, oauth.RequestHTU(r, trusted), raw, tok); err != nil {
			return c, err
		}
	case jktBound:
		return c, fmt.Errorf("%w: a DPoP-bound token was sent as a bearer token", oauth.ErrDPoPRequired)
	case h.o.DPoPRequired:
		return c, oauth.ErrDPoPRequired
	}
	if _, x5tBound := oauth.Confirmation(tok, "x5t#S256"); x5tBound || h.o.RequireCertificateBinding {
		var der []byte
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			der = r.TLS.PeerCertificates[0].Raw
		}
		if err := oauth.CheckCertificateBinding(tok, der); err != nil {
			return c, err
		}
	}
	return c, nil
}

// challengeFor marks err for a DPoP challenge when the route takes DPoP
// and the client used it, or must, or the failure is DPoP's.
func (h *handler) challengeFor(err error, scheme string) error {
	if h.o.DPoP == nil {
		return err
	}
	if h.o.DPoPRequired || scheme == oauth.SchemeDPoP || errors.Is(err, oauth.ErrDPoPProof) ||
		errors.Is(err, oauth.ErrDPoPReplay) || errors.Is(err, oauth.ErrDPoPBinding) || errors.Is(err, oauth.ErrDPoPRequired) {
		return &dpopChallenge{err: err, algs: h.o.DPoP.Algorithms()}
	}
	return err
}

// dropCredentialHeaders removes, from an accepted request, the API key
// header in every spelling an upstream may fold into it (it is a secret and
// reaches no upstream), and the DPoP proof with the Authorization header.
func (h *handler) dropCredentialHeaders(r *http.Request) {
	if h.o.APIKeys != nil {
		want := http.CanonicalHeaderKey(strings.ReplaceAll(h.o.APIKeyHeader, "_", "-"))
		for k := range r.Header {
			if http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")) == want {
				delete(r.Header, k)
			}
		}
	}
	if !h.o.KeepAuthorization {
		r.Header.Del("DPoP")
	}
}
