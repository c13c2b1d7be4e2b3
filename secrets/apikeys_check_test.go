package secrets

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckAPIKeys(t *testing.T) {
	good := `{"sha256":"` + strings.Repeat("ab", 32) + `","subject":"svc","scopes":["a"]}`
	if err := CheckFields("wsgate/apikeys", map[string]string{"k1": good}, UseAPIKeys); err != nil {
		t.Fatal(err)
	}
	if err := CheckFields("wsgate/apikeys", nil, UseAPIKeys); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty: %v", err)
	}
	err := CheckFields("wsgate/apikeys", map[string]string{
		"k1": good,
		"k2": `{"sha256":"` + strings.Repeat("zz", 32) + `","subject":"svc"}`,
		"k3": `{"sha256":"` + strings.Repeat("ab", 32) + `"}`,
		"k4": `{"key":"wsgate_plaintext","subject":"svc"}`,
	}, UseAPIKeys)
	if !errors.Is(err, ErrInvalidSecret) || !strings.Contains(err.Error(), `"k2", "k3", "k4"`) || strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("bad entries: %v", err)
	}
}
