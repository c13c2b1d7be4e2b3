package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// checkCase is one secret and what Check must say about it for a use.
type checkCase struct {
	name   string
	path   string
	fields map[string]string // nil: the secret does not exist
	use    Use
	want   error  // sentinel, nil when the secret is good
	msg    string // exact error text, "" when the secret is good
}

func checkCases(t *testing.T) []checkCase {
	f := getFixture(t)
	return []checkCase{
		{"trust ok", "wsgate/trust/partners", map[string]string{"certificates": f.caPEM}, UseTrust, nil, ""},
		{"trust missing secret", "wsgate/trust/none", nil, UseTrust, ErrNotFound, "secret wsgate/trust/none: not found"},
		{"trust lacks field", "wsgate/trust/wrong", map[string]string{"certificate": f.caPEM}, UseTrust, ErrNotFound,
			`secret wsgate/trust/wrong: no field "certificates"`},
		{"trust empty field", "wsgate/trust/empty", map[string]string{"certificates": ""}, UseTrust, ErrNotFound,
			`secret wsgate/trust/empty: empty field "certificates"`},
		{"trust not PEM", "wsgate/trust/junk", map[string]string{"certificates": "TOPSECRET"}, UseTrust, ErrInvalidSecret,
			"secrets: invalid secret: wsgate/trust/junk field certificates: no PEM certificate"},
		{"identity ok", "wsgate/signing/a", map[string]string{"certificate": f.leafPEM, "private_key": f.keyPEM}, UseIdentity, nil, ""},
		{"identity lacks both", "wsgate/signing/b", map[string]string{"cert": f.leafPEM}, UseIdentity, ErrNotFound,
			`secret wsgate/signing/b: no fields "certificate", "private_key"`},
		{"identity lacks key", "wsgate/signing/c", map[string]string{"certificate": f.leafPEM}, UseIdentity, ErrNotFound,
			`secret wsgate/signing/c: no field "private_key"`},
		{"identity key of another cert", "wsgate/signing/d", map[string]string{"certificate": f.leafPEM, "private_key": f.key2PEM},
			UseIdentity, ErrInvalidSecret, ""},
		{"certificate alone ok", "wsgate/signing/e", map[string]string{"certificate": f.leafPEM}, UseCertificate, nil, ""},
		{"certificate lacks it", "wsgate/signing/f", map[string]string{"private_key": f.keyPEM}, UseCertificate, ErrNotFound,
			`secret wsgate/signing/f: no field "certificate"`},
		{"users ok", "wsgate/users/a", map[string]string{"alice": "pw"}, UseUsers, nil, ""},
		{"users none", "wsgate/users/b", map[string]string{}, UseUsers, ErrNotFound,
			"secret wsgate/users/b: no users (one field per username)"},
		{"users empty password", "wsgate/users/c", map[string]string{"alice": ""}, UseUsers, ErrInvalidSecret,
			`secrets: invalid secret: wsgate/users/c: user "alice" has an empty password`},
		{"keys jwks", "wsgate/jwks/a", map[string]string{"jwks": `{"keys":[]}`}, UseKeys, nil, ""},
		{"keys public_key", "wsgate/jwks/b", map[string]string{"public_key": "pem"}, UseKeys, nil, ""},
		{"keys none", "wsgate/jwks/c", map[string]string{"jwk": "x"}, UseKeys, ErrNotFound,
			`secret wsgate/jwks/c: no field "jwks", "public_key" or "secret"`},
		{"client ok", "wsgate/oauth/a", map[string]string{"client_id": "id", "client_secret": "s"}, UseClient, nil, ""},
		{"client lacks secret", "wsgate/oauth/b", map[string]string{"client_id": "id"}, UseClient, ErrNotFound,
			`secret wsgate/oauth/b: no field "client_secret"`},
		{"unknown use", "wsgate/x", map[string]string{"a": "b"}, Use("telepathy"), ErrUnknownUse, ""},
	}
}

// assertCheck compares Check's answer with the case, and that it never
// quotes a value.
func assertCheck(t *testing.T, tc checkCase, err error) {
	t.Helper()
	if tc.want == nil {
		if err != nil {
			t.Errorf("%s: err = %v, want nil", tc.name, err)
		}
		return
	}
	if !errors.Is(err, tc.want) {
		t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		return
	}
	if tc.msg != "" && !strings.HasSuffix(err.Error(), tc.msg) {
		t.Errorf("%s: err = %q, want %q", tc.name, err, tc.msg)
	}
	if strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), "BEGIN") {
		t.Errorf("%s: error quotes the secret: %v", tc.name, err)
	}
}

func TestCheckMemoryBackend(t *testing.T) {
	m := NewMemory()
	cases := checkCases(t)
	for _, tc := range cases {
		if tc.fields != nil {
			m.Set(tc.path, tc.fields)
		}
	}
	for _, tc := range cases {
		assertCheck(t, tc, Check(context.Background(), m, tc.path, tc.use))
	}
}

func TestCheckFileBackend(t *testing.T) {
	dir := t.TempDir()
	cases := checkCases(t)
	for _, tc := range cases {
		if tc.fields != nil {
			b, err := json.Marshal(tc.fields)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(dir, tc.path+".json"), string(b))
		}
	}
	f := NewFile(dir)
	for _, tc := range cases {
		assertCheck(t, tc, Check(context.Background(), f, tc.path, tc.use))
	}
	mustWrite(t, filepath.Join(dir, "bad/syntax.json"), `{"certificates":"TOPSECRET`)
	err := Check(context.Background(), f, "bad/syntax", UseTrust)
	if !errors.Is(err, ErrInvalidSecret) || strings.Contains(err.Error(), "TOPSECRET") {
		t.Errorf("unparsable file: %v", err)
	}
	// A directory that is not there is a read failure, not "not found".
	gone := NewFile(filepath.Join(dir, "nope"))
	if err := Check(context.Background(), gone, "wsgate/trust/partners", UseTrust); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("missing directory: %v", err)
	}
}

// TestCheckVault runs the same cases against a real Vault dev server's KV v2.
func TestCheckVault(t *testing.T) {
	srv := vaultHarness.Require(t)
	prefix := "check-" + randSuffix(t) + "/"
	cases := checkCases(t)
	for _, tc := range cases {
		if tc.fields != nil {
			data := map[string]any{}
			for k, v := range tc.fields {
				data[k] = v
			}
			if len(data) == 0 {
				data["placeholder"] = "x" // KV v2 refuses an empty write; see below
			}
			putKV(t, srv, prefix+tc.path, data)
		}
	}
	v := tokenVault(t, srv)
	for _, tc := range cases {
		if len(tc.fields) == 0 && tc.fields != nil {
			continue // "no users" is covered by the other backends
		}
		tc.path = prefix + tc.path
		tc.msg = strings.ReplaceAll(tc.msg, "wsgate/", prefix+"wsgate/")
		assertCheck(t, tc, Check(vaultCtx(t), v, tc.path, tc.use))
	}
	// A token without read access is a backend failure, not a missing secret.
	bad, err := NewVault(VaultOptions{Address: srv.Addr, Token: "not-a-token", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(vaultCtx(t), bad, prefix+"wsgate/trust/partners", UseTrust); !errors.Is(err, ErrUnavailable) {
		t.Errorf("bad token: err = %v, want ErrUnavailable", err)
	}
}

// TestSecretIDWrappedIntegration: a wrapped secret ID is recognized without
// being spent, so the gateway can still log in with it afterwards.
func TestSecretIDWrappedIntegration(t *testing.T) {
	srv := vaultHarness.Require(t)
	f := newAppRole(t, srv, "1h", "2h")
	putKV(t, srv, f.base+"/db", map[string]any{"password": "pw1"})

	plain := f.vault(t, srv, writeFile(t, "sid", f.secretID(t, srv, false)+"\n"))
	if w, err := plain.SecretIDWrapped(vaultCtx(t)); err != nil || w {
		t.Errorf("plain secret ID: wrapped %v, %v", w, err)
	}
	wrapped := f.vault(t, srv, writeFile(t, "wsid", f.secretID(t, srv, true)+"\n"))
	for range 2 { // looking does not spend it
		if w, err := wrapped.SecretIDWrapped(vaultCtx(t)); err != nil || !w {
			t.Fatalf("wrapped secret ID: wrapped %v, %v", w, err)
		}
	}
	if got, err := wrapped.Read(vaultCtx(t), f.base+"/db"); err != nil || got["password"] != "pw1" {
		t.Errorf("login with the looked-at wrapping token: %v, %v", got, err)
	}
	if w, err := tokenVault(t, srv).SecretIDWrapped(vaultCtx(t)); err != nil || w {
		t.Errorf("token auth: wrapped %v, %v", w, err)
	}
}
