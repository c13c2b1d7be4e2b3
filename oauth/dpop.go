package oauth

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Authorization schemes a resource server accepts.
const (
	SchemeBearer = "Bearer"
	SchemeDPoP   = "DPoP"
)

// CredentialsFromRequest is TokenFromRequest that also accepts the DPoP
// scheme (RFC 9449 section 7.1): it returns the scheme (SchemeBearer or
// SchemeDPoP) and the access token. The same request checks apply (no token
// in the query, one Authorization header, bounded b64token).
func CredentialsFromRequest(r *http.Request) (scheme, token string, err error) {
	tok, err := TokenFromRequest(r)
	if err == nil {
		return SchemeBearer, tok, nil
	}
	if !errors.Is(err, ErrNoToken) {
		return "", "", err
	}
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return "", "", ErrNoToken
	}
	s, rest, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(s, SchemeDPoP) {
		return "", "", ErrNoToken
	}
	tok = strings.TrimLeft(rest, " ")
	if tok == "" {
		return "", "", fmt.Errorf("%w: empty DPoP token", ErrMalformed)
	}
	if _, err := PreParse(tok); err != nil {
		return "", "", err
	}
	return SchemeDPoP, tok, nil
}

// ReplayStore remembers a fingerprint until a deadline, reporting whether
// it was already there, in one atomic step. wssec's memory cache and
// redisstore.ReplayCache satisfy it; an error must mean "refuse" (fail
// closed), never "not seen".
type ReplayStore interface {
	Remember(ctx context.Context, key [32]byte, until time.Time) (seen bool, err error)
}

// DPoP defaults.
const (
	// DefaultDPoPMaxAge is how old a proof's iat may be.
	DefaultDPoPMaxAge = 60 * time.Second
	// DefaultDPoPFutureSkew is how far in the future a proof's iat may be.
	DefaultDPoPFutureSkew = 5 * time.Second
	// MaxDPoPJTIBytes caps a proof's jti.
	MaxDPoPJTIBytes = 256
)

// DefaultDPoPAlgorithms are the asymmetric algorithms a proof may use: no
// none, no HMAC (a proof proves a public key), no RSA below 2048 bits.
var DefaultDPoPAlgorithms = []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"}

// DPoPOptions configure a DPoPVerifier.
type DPoPOptions struct {
	// MaxAge bounds how old a proof may be (and how long its jti is
	// remembered). Default DefaultDPoPMaxAge.
	MaxAge time.Duration
	// FutureSkew bounds how far in the future iat may be. Default DefaultDPoPFutureSkew.
	FutureSkew time.Duration
	// Algorithms is the proof alg allow-list; default DefaultDPoPAlgorithms.
	// Only asymmetric algorithms are accepted.
	Algorithms []string
	// Replay remembers proof jtis; required. Share it across replicas
	// (Redis), or a proof replayed to another replica passes.
	Replay ReplayStore
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DPoPVerifier checks DPoP proofs (RFC 9449 section 4.3) and the binding
// of access tokens to them. Safe for concurrent use.
type DPoPVerifier struct {
	o    DPoPOptions
	algs []jose.SignatureAlgorithm
}

// NewDPoPVerifier checks the options.
func NewDPoPVerifier(o DPoPOptions) (*DPoPVerifier, error) {
	if o.Replay == nil {
		return nil, fmt.Errorf("%w: dpop needs a replay store", ErrConfig)
	}
	if o.MaxAge < 0 || o.FutureSkew < 0 {
		return nil, fmt.Errorf("%w: dpop max_age and future skew must not be negative", ErrConfig)
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultDPoPMaxAge
	}
	if o.FutureSkew == 0 {
		o.FutureSkew = DefaultDPoPFutureSkew
	}
	if len(o.Algorithms) == 0 {
		o.Algorithms = DefaultDPoPAlgorithms
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &DPoPVerifier{o: o}
	for _, a := range o.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		if !knownAlgs[alg] || strings.HasPrefix(a, "HS") {
			return nil, fmt.Errorf("%w: dpop algorithm %q is not an asymmetric JWS algorithm", ErrConfig, a)
		}
		d.algs = append(d.algs, alg)
	}
	return d, nil
}

// Algorithms is the allow-list, for the algs parameter of a DPoP challenge.
func (d *DPoPVerifier) Algorithms() []string { return d.o.Algorithms }

// DPoPProof is what a verified proof asserts.
type DPoPProof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof key, base64url.
	JKT string
	// JTI is the proof's unique identifier.
	JTI string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
}

// ProofFromRequest returns the one DPoP header's value.
func ProofFromRequest(r *http.Request) (string, error) {
	v := r.Header.Values("DPoP")
	switch len(v) {
	case 0:
		return "", fmt.Errorf("%w: no DPoP header", ErrDPoPProof)
	case 1:
		return v[0], nil
	}
	return "", fmt.Errorf("%w: more than one DPoP header", ErrDPoPProof)
}

// Verify checks a DPoP request end to end, in this order: the proof
// (RFC 9449 section 4.3: typ, alg, public jwk, signature, htm, htu, iat,
// ath), that tok's cnf.jkt names the proof's key, and last that the
// proof's jti was not seen before (so an invalid request never takes a
// replay entry). htu is the request's URI as RequestHTU computes it.
func (d *DPoPVerifier) Verify(ctx context.Context, proof, method, htu, rawToken string, tok *Token) (*DPoPProof, error) {
	p, err := d.CheckProof(proof, method, htu, rawToken)
	if err != nil {
		return nil, err
	}
	jkt, ok := Confirmation(tok, "jkt")
	if !ok {
		return nil, fmt.Errorf("%w: token has no cnf.jkt", ErrDPoPBinding)
	}
	if subtle.ConstantTimeCompare([]byte(jkt), []byte(p.JKT)) != 1 {
		return nil, ErrDPoPBinding
	}
	key := sha256.Sum256([]byte("wsgate-dpop\x00" + p.JKT + "\x00" + p.JTI))
	seen, err := d.o.Replay.Remember(ctx, key, p.IssuedAt.Add(d.o.MaxAge+d.o.FutureSkew))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReplayUnavailable, err)
	}
	if seen {
		return nil, ErrDPoPReplay
	}
	return p, nil
}

// CheckProof verifies one proof JWT for a request without touching the
// replay store. Every failure wraps ErrDPoPProof.
func (d *DPoPVerifier) CheckProof(proof, method, htu, rawToken string) (*DPoPProof, error) {
	bad := func(why string) (*DPoPProof, error) { return nil, fmt.Errorf("%w: %s", ErrDPoPProof, why) }
	if kind, err := PreParse(proof); err != nil || kind != JWS {
		return bad("not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(proof, d.algs)
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			return bad("alg not allowed")
		}
		return bad("JWS does not parse")
	}
	if len(jws.Signatures) != 1 {
		return bad("not exactly one signature")
	}
	sig := jws.Signatures[0]
	h := sig.Header
	if sig.Unprotected.Algorithm != "" || len(sig.Unprotected.ExtraHeaders) > 0 || sig.Unprotected.KeyID != "" || sig.Unprotected.JSONWebKey != nil {
		return bad("unprotected header")
	}
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !typEqual(typ, "dpop+jwt") {
		return bad("typ is not dpop+jwt")
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return bad("crit header")
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return bad("no public jwk header")
	}
	k, err := publicKey("", "", jwk.Key)
	if err != nil {
		return bad("jwk is not an acceptable public key")
	}
	if !k.compatible(h.Algorithm) {
		return bad("jwk does not fit alg")
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return bad("signature does not verify")
	}
	c, err := decodeObject(payload)
	if err != nil {
		return bad("payload is not a JSON object")
	}
	jti, _ := c["jti"].(string)
	if jti == "" || len(jti) > MaxDPoPJTIBytes {
		return bad("jti missing or too long")
	}
	if htm, _ := c["htm"].(string); htm != method {
		return bad("htm is not the request method")
	}
	claimed, _ := c["htu"].(string)
	want, err := NormalizeHTU(htu)
	if err != nil {
		return bad("request URI does not normalize")
	}
	if got, err := NormalizeHTU(claimed); err != nil || got != want {
		return bad("htu is not the request URI")
	}
	n, ok := c["iat"].(json.Number)
	if !ok {
		return bad("no numeric iat")
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > 1<<40 {
		return bad("iat out of range")
	}
	iat := time.Unix(int64(f), 0)
	now := d.o.Now()
	if iat.Before(now.Add(-d.o.MaxAge)) || iat.After(now.Add(d.o.FutureSkew)) {
		return bad("iat outside the accepted window")
	}
	ath, _ := c["ath"].(string)
	sum := sha256.Sum256([]byte(rawToken))
	if subtle.ConstantTimeCompare([]byte(ath), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
		return bad("ath is not the hash of the access token")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return bad("jwk has no thumbprint")
	}
	return &DPoPProof{JKT: base64.RawURLEncoding.EncodeToString(tp), JTI: jti, IssuedAt: iat}, nil
}

// NormalizeHTU reduces an http(s) URI to what RFC 9449 section 4.3 compares:
// scheme and host in lower case, the default port dropped, the path in one
// canonical percent-encoding (empty is "/"), no query, fragment or userinfo.
func NormalizeHTU(s string) (string, error) {
	if s == "" || len(s) > 8192 {
		return "", errors.New("empty or oversized URI")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", errors.New("not an absolute http(s) URI")
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := (&url.URL{Path: u.Path}).EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// RequestHTU is the URI a client addressed, as a proof's htu must name it:
// the scheme is https when this connection is TLS; otherwise http, unless
// trustProto (the peer is a configured trusted proxy, which terminated
// TLS) and X-Forwarded-Proto is exactly one of http or https. The host is
// the Host header (a proxy in front must preserve it) and the path the
// request's, before any prefix handling.
func RequestHTU(r *http.Request, trustProto bool) string {
	scheme := "http"
	switch {
	case r.TLS != nil:
		scheme = "https"
	case trustProto:
		if v := r.Header.Values("X-Forwarded-Proto"); len(v) == 1 {
			switch p := strings.ToLower(strings.TrimSpace(v[0])); p {
			case "http", "https":
				scheme = p
			}
		}
	}
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	return scheme + "://" + r.Host + p
}

// Confirmation returns a string member of the token's cnf claim (RFC 7800):
// jkt for DPoP, x5t#S256 for certificate-bound tokens.
func Confirmation(tok *Token, member string) (string, bool) {
	if tok == nil {
		return "", false
	}
	cnf, ok := tok.Claims["cnf"].(map[string]any)
	if !ok {
		return "", false
	}
	s, ok := cnf[member].(string)
	return s, ok && s != ""
}

// CheckCertificateBinding enforces RFC 8705 section 3: the token's
// cnf.x5t#S256 must be the base64url SHA-256 of certDER, the client
// certificate presented on this TLS connection. A missing certificate or
// confirmation is a mismatch.
func CheckCertificateBinding(tok *Token, certDER []byte) error {
	want, ok := Confirmation(tok, "x5t#S256")
	if !ok {
		return fmt.Errorf("%w: token has no cnf.x5t#S256", ErrCertificateBinding)
	}
	if len(certDER) == 0 {
		return fmt.Errorf("%w: no client certificate on this connection", ErrCertificateBinding)
	}
	sum := sha256.Sum256(certDER)
	if subtle.ConstantTimeCompare([]byte(want), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
		return ErrCertificateBinding
	}
	return nil
}
