package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
)

// API key bounds.
const (
	// MaxAPIKeyBytes caps a presented key; longer ones are refused unhashed.
	MaxAPIKeyBytes = 512
	// MaxAPIKeys caps the entries of one API-key secret.
	MaxAPIKeys = 10000
)

// APIKeyEntry is the JSON value of one field (one key id) of an API-key
// secret. The key itself is never stored, only its SHA-256: keys are long
// random strings, so a plain hash is not brute-forceable the way a password's is.
type APIKeyEntry struct {
	SHA256  string   `json:"sha256"`
	Subject string   `json:"subject"`
	Scopes  []string `json:"scopes"`
}

// APIKeys validates API keys against a secret whose fields map a key id to
// an APIKeyEntry in JSON. A valid key yields a Token whose sub and scope
// are the entry's, so scope rules, claim rules and forward_claims apply as
// for a JWT. Safe for concurrent use.
type APIKeys struct {
	src SecretFields

	mu     sync.Mutex
	fields map[string]string
	keys   []apiKey
}

type apiKey struct {
	id    string
	sum   [32]byte
	token *Token
}

// NewAPIKeys returns a validator over src; the secret is read on each use
// and re-parsed only when its fields change.
func NewAPIKeys(src SecretFields) *APIKeys { return &APIKeys{src: src} }

// ParseAPIKeys checks an API-key secret's fields, reporting every bad entry.
func ParseAPIKeys(fields map[string]string) error {
	_, err := parseAPIKeys(fields)
	return err
}

func parseAPIKeys(fields map[string]string) ([]apiKey, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: API-key secret has no entries", ErrConfig)
	}
	if len(fields) > MaxAPIKeys {
		return nil, fmt.Errorf("%w: API-key secret has more than %d entries", ErrConfig, MaxAPIKeys)
	}
	ids := slices.Sorted(maps.Keys(fields))
	var problems []string
	keys := make([]apiKey, 0, len(ids))
	seen := map[[32]byte]string{}
	for _, id := range ids {
		var e APIKeyEntry
		d := json.NewDecoder(strings.NewReader(fields[id]))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil || d.More() {
			problems = append(problems, fmt.Sprintf("%s: not a JSON object {sha256, subject, scopes}", id))
			continue
		}
		raw, err := hex.DecodeString(e.SHA256)
		if err != nil || len(raw) != sha256.Size {
			problems = append(problems, fmt.Sprintf("%s: sha256 is not 64 hex digits", id))
			continue
		}
		if e.Subject == "" {
			problems = append(problems, fmt.Sprintf("%s: subject is required", id))
			continue
		}
		bad := false
		for _, s := range e.Scopes {
			if !validScopeToken(s) {
				problems = append(problems, fmt.Sprintf("%s: %q is not a scope token", id, s))
				bad = true
			}
		}
		if bad {
			continue
		}
		var sum [32]byte
		copy(sum[:], raw)
		if other, dup := seen[sum]; dup {
			problems = append(problems, fmt.Sprintf("%s: same key as %s", id, other))
			continue
		}
		seen[sum] = id
		scopes := slices.Clone(e.Scopes)
		claims := map[string]any{"sub": e.Subject, "api_key_id": id}
		if len(scopes) > 0 {
			claims["scope"] = strings.Join(scopes, " ")
		}
		keys = append(keys, apiKey{id: id, sum: sum, token: &Token{Subject: e.Subject, Scopes: scopes, KeyID: id, Claims: claims}})
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: API-key secret: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return keys, nil
}

func (a *APIKeys) current() ([]apiKey, error) {
	f, err := a.src.Fields()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAPIKeysUnavailable, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys != nil && maps.Equal(f, a.fields) {
		return a.keys, nil
	}
	keys, err := parseAPIKeys(f)
	if err != nil {
		a.keys, a.fields = nil, nil
		return nil, fmt.Errorf("%w: %v", ErrAPIKeysUnavailable, err)
	}
	a.keys, a.fields = keys, maps.Clone(f)
	return keys, nil
}

// Validate checks a presented key. It hashes the key once and compares the
// hash with every entry in constant time, without stopping at a match, so
// the time taken does not depend on which entry (if any) matched. The
// returned Token is shared: treat it as read-only.
func (a *APIKeys) Validate(_ context.Context, key string) (*Token, error) {
	keys, err := a.current()
	if err != nil {
		return nil, err
	}
	if key == "" || len(key) > MaxAPIKeyBytes {
		return nil, fmt.Errorf("%w: empty or oversized", ErrInvalidAPIKey)
	}
	sum := sha256.Sum256([]byte(key))
	match := -1
	for i := range keys {
		eq := subtle.ConstantTimeCompare(sum[:], keys[i].sum[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil, ErrInvalidAPIKey
	}
	return keys[match].token, nil
}

// NewAPIKey returns a fresh random key (256 bits, base64url with a wsgate_
// prefix so leaked keys are easy to scan for) and the hex SHA-256 to store.
func NewAPIKey() (key, sha256Hex string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	key = "wsgate_" + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(key))
	return key, hex.EncodeToString(sum[:]), nil
}

// APIKeyEntryJSON renders the entry to store under a key id.
func APIKeyEntryJSON(sha256Hex, subject string, scopes []string) (string, error) {
	if scopes == nil {
		scopes = []string{}
	}
	sort.Strings(scopes)
	b, err := json.Marshal(APIKeyEntry{SHA256: sha256Hex, Subject: subject, Scopes: scopes})
	return string(b), err
}
