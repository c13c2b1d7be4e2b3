package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func entry(t *testing.T, key, sub string, scopes ...string) string {
	t.Helper()
	s := sha256.Sum256([]byte(key))
	j, err := APIKeyEntryJSON(hex.EncodeToString(s[:]), sub, scopes)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestAPIKeys(t *testing.T) {
	sec := &fakeSecret{fields: map[string]string{
		"billing-batch": entry(t, "key-one-0123456789", "svc-batch", "billing.read", "billing.write"),
		"reporting":     entry(t, "key-two-0123456789", "svc-report", "billing.read"),
	}}
	a := NewAPIKeys(sec)
	tok, err := a.Validate(context.Background(), "key-one-0123456789")
	if err != nil || tok.Subject != "svc-batch" || !tok.HasScope("billing.write") || tok.KeyID != "billing-batch" ||
		tok.Claims["sub"] != "svc-batch" || tok.Claims["scope"] != "billing.read billing.write" {
		t.Fatalf("%+v %v", tok, err)
	}
	tok, err = a.Validate(context.Background(), "key-two-0123456789")
	if err != nil || tok.Subject != "svc-report" || tok.HasScope("billing.write") {
		t.Fatalf("%+v %v", tok, err)
	}
	for _, k := range []string{"", "key-one-012345678", "key-one-0123456789 ", "KEY-ONE-0123456789", strings.Repeat("k", MaxAPIKeyBytes+1),
		hexSum("key-one-0123456789")} { // the stored hash is not the key
		if _, err := a.Validate(context.Background(), k); !errors.Is(err, ErrInvalidAPIKey) || Reason(err) != "invalid_api_key" {
			t.Errorf("%q: %v", k, err)
		}
	}
	// A rotated secret takes effect; the old key stops working.
	sec.put(map[string]string{"reporting": entry(t, "key-three-0123456789", "svc-report")})
	if _, err := a.Validate(context.Background(), "key-two-0123456789"); !errors.Is(err, ErrInvalidAPIKey) {
		t.Fatalf("rotated out: %v", err)
	}
	if tok, err := a.Validate(context.Background(), "key-three-0123456789"); err != nil || len(tok.Scopes) != 0 || tok.Claims["scope"] != nil {
		t.Fatalf("rotated in: %+v %v", tok, err)
	}
	// A broken secret is unavailable (503), not "invalid key".
	sec.put(map[string]string{"x": `{"sha256":"zz","subject":"a"}`})
	if _, err := a.Validate(context.Background(), "key-three-0123456789"); !errors.Is(err, ErrAPIKeysUnavailable) || ClientError(err) {
		t.Fatalf("broken secret: %v", err)
	}
	sec.mu.Lock()
	sec.err = errors.New("vault down")
	sec.mu.Unlock()
	if _, err := a.Validate(context.Background(), "key-three-0123456789"); !errors.Is(err, ErrAPIKeysUnavailable) {
		t.Fatalf("vault down: %v", err)
	}
}

func hexSum(s string) string {
	x := sha256.Sum256([]byte(s))
	return hex.EncodeToString(x[:])
}

func TestParseAPIKeysReportsAll(t *testing.T) {
	good := `{"sha256":"` + hexSum("k") + `","subject":"a","scopes":["r"]}`
	err := ParseAPIKeys(map[string]string{
		"a": good,
		"b": good, // same key twice
		"c": `{"sha256":"` + hexSum("c") + `","subject":""}`,
		"d": `{"sha256":"` + hexSum("d")[:10] + `","subject":"d"}`,
		"e": `{"sha256":"` + hexSum("e") + `","subject":"e","scopes":["a b"]}`,
		"f": `{"sha256":"` + hexSum("f") + `","subject":"f","key":"plaintext"}`,
		"g": `not json`,
	})
	if !errors.Is(err, ErrConfig) {
		t.Fatal(err)
	}
	for _, id := range []string{"b: same key as a", "c: subject", "d: sha256", "e: ", "f: not a JSON", "g: not a JSON"} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("missing %q in %v", id, err)
		}
	}
	if err := ParseAPIKeys(nil); !errors.Is(err, ErrConfig) {
		t.Fatal(err)
	}
}

func TestNewAPIKey(t *testing.T) {
	k1, h1, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, _, _ := NewAPIKey()
	if k1 == k2 || !strings.HasPrefix(k1, "wsgate_") || len(k1) != len("wsgate_")+43 || h1 != hexSum(k1) {
		t.Fatalf("%q %q %q", k1, k2, h1)
	}
	j, err := APIKeyEntryJSON(h1, "svc", []string{"b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	var e APIKeyEntry
	if err := json.Unmarshal([]byte(j), &e); err != nil || e.SHA256 != h1 || e.Subject != "svc" || strings.Join(e.Scopes, ",") != "a,b" {
		t.Fatalf("%s %v", j, err)
	}
	a := NewAPIKeys(&fakeSecret{fields: map[string]string{"svc": j}})
	if tok, err := a.Validate(context.Background(), k1); err != nil || tok.Subject != "svc" {
		t.Fatalf("%v", err)
	}
}
