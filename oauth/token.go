package oauth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// MaxTokenBytes caps a bearer token; longer tokens are refused before any parsing.
const MaxTokenBytes = 8192

// Token is a validated access token: only what it holds was checked.
type Token struct {
	// Subject is the sub claim.
	Subject string
	// ClientID is the client_id claim (RFC 9068), or azp when client_id is absent.
	ClientID string
	// Issuer is the iss claim.
	Issuer string
	// Audience is the aud claim.
	Audience []string
	// Scopes are the granted scopes, from scope (space-separated) or scp (array).
	Scopes []string
	// Expiry is the exp claim; zero when introspection reported none.
	Expiry time.Time
	// KeyID is the kid of the key that verified a JWT; empty for introspection.
	KeyID string
	// Introspected is true when the token was validated by RFC 7662 introspection.
	Introspected bool
	// Claims holds every claim of the verified payload (or introspection response).
	Claims map[string]any
}

// HasScope reports whether the token was granted scope s.
func (t *Token) HasScope(s string) bool {
	for _, g := range t.Scopes {
		if g == s {
			return true
		}
	}
	return false
}

// Fingerprint is SHA-256 of a token: the only form in which a token is cached.
type Fingerprint [32]byte

// FingerprintOf hashes a raw token.
func FingerprintOf(token string) Fingerprint { return sha256.Sum256([]byte(token)) }

// LogID is a short hex prefix of the fingerprint, safe to log in place of the token.
func (f Fingerprint) LogID() string { return hex.EncodeToString(f[:8]) }

// TokenFromRequest extracts the bearer token from the Authorization header
// (RFC 6750 section 2.1). It refuses a token in the query string, more than
// one Authorization header, and oversized or ill-formed credentials. A
// request with no Authorization header, or one of another scheme, yields
// ErrNoToken.
func TokenFromRequest(r *http.Request) (string, error) {
	if r.URL != nil && r.URL.RawQuery != "" {
		if _, ok := r.URL.Query()["access_token"]; ok {
			return "", ErrTokenInQuery
		}
	}
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", ErrMultipleAuthorization
	}
	return ParseAuthorization(values[0])
}

// ParseAuthorization extracts the token from one Authorization header value
// of the form "Bearer <b64token>" (scheme case-insensitive).
func ParseAuthorization(h string) (string, error) {
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	tok := strings.TrimLeft(rest, " ")
	if tok == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrMalformed)
	}
	if _, err := PreParse(tok); err != nil {
		return "", err
	}
	return tok, nil
}

// Kind is what a token looks like before any parsing.
type Kind int

const (
	// Opaque is any token without exactly two dots.
	Opaque Kind = iota
	// JWS is a three-segment compact JWS (a JWT access token).
	JWS
)

// PreParse bounds and classifies a raw token before any library sees it: at
// most MaxTokenBytes and only RFC 6750 b64token characters. A token with two
// dots must be three non-empty unpadded base64url segments (JWS); anything
// else is Opaque, which only introspection may accept.
func PreParse(tok string) (Kind, error) {
	if len(tok) > MaxTokenBytes {
		return 0, ErrTokenTooLarge
	}
	if tok == "" {
		return 0, fmt.Errorf("%w: empty token", ErrMalformed)
	}
	// One pass, no allocation: count dots, note empty segments and
	// characters outside base64url, and enforce that padding ends the token.
	dots, nonURL, pad, emptySeg := 0, false, false, tok[0] == '.'
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '=':
			pad = true
			continue
		case pad:
			return 0, fmt.Errorf("%w: characters after padding", ErrMalformed)
		case c == '.':
			dots++
			if i+1 == len(tok) || tok[i+1] == '.' {
				emptySeg = true
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '~', c == '+', c == '/':
			nonURL = true
		default:
			return 0, fmt.Errorf("%w: character outside the b64token set", ErrMalformed)
		}
	}
	if dots != 2 {
		// Not JWT-shaped: only introspection can judge it (e.g. Vault's hvs.… tokens).
		return Opaque, nil
	}
	switch {
	case pad:
		return 0, fmt.Errorf("%w: padding in a JWT", ErrMalformed)
	case emptySeg:
		return 0, fmt.Errorf("%w: empty JWT segment", ErrMalformed)
	case nonURL:
		return 0, fmt.Errorf("%w: JWT segment is not base64url", ErrMalformed)
	}
	return JWS, nil
}
