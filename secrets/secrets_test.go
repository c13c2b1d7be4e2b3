package secrets

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"wsgate/internal/pki"
)

// Local copies of the wssec interfaces: secrets must satisfy them without importing wssec.
type certificateSource interface {
	Certificates() ([]*x509.Certificate, error)
}
type passwordSource interface {
	Password(username string) (string, bool, error)
}

var (
	_ certificateSource = (*CertSet)(nil)
	_ passwordSource    = (*Passwords)(nil)
	_ Backend           = (*File)(nil)
	_ Backend           = (*Memory)(nil)
)

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	ca, leaf, leaf2 *pki.Identity
	caPEM, leafPEM  string
	keyPEM, key2PEM string
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

func getFixture(t *testing.T) fixture {
	t.Helper()
	fixOnce.Do(func() {
		is := pki.Issuer{Now: func() time.Time { return fixedNow }}
		var f fixture
		if f.ca, fixErr = is.Issue(pki.Options{CommonName: "ca", IsCA: true, Key: pki.ECP256}, nil); fixErr != nil {
			return
		}
		if f.leaf, fixErr = is.Issue(pki.Options{CommonName: "leaf", Key: pki.ECP256}, f.ca); fixErr != nil {
			return
		}
		if f.leaf2, fixErr = is.Issue(pki.Options{CommonName: "leaf2", Key: pki.ECP256}, f.ca); fixErr != nil {
			return
		}
		f.caPEM = string(pki.CertPEM(f.ca.Cert))
		f.leafPEM = string(pki.CertPEM(f.leaf.Cert, f.ca.Cert))
		var k []byte
		if k, fixErr = pki.KeyPEM(f.leaf.Key); fixErr != nil {
			return
		}
		f.keyPEM = string(k)
		if k, fixErr = pki.KeyPEM(f.leaf2.Key); fixErr != nil {
			return
		}
		f.key2PEM = string(k)
		fix = f
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func TestCheckPath(t *testing.T) {
	good := []string{"wsgate/trust/partners", "a", "a.b/c-d_e"}
	bad := []string{"", "/etc/passwd", "../x", "a/../b", "a/..", "a..b", `a\b`, "a//b", "a/", "./a", "a/./b", "a\x00b"}
	for _, p := range good {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q) = %v", p, err)
		}
	}
	for _, p := range bad {
		if err := CheckPath(p); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("CheckPath(%q) = %v, want ErrInvalidPath", p, err)
		}
	}
}

func TestFileBackend(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "wsgate/users/orders.json"), `{"alice":"s3cret","bob":"pw"}`)
	mustWrite(t, filepath.Join(dir, "bad/nested.json"), `{"a":{"b":"c"}}`)
	mustWrite(t, filepath.Join(dir, "bad/syntax.json"), `{"a":"TOPSECRET`)
	mustWrite(t, filepath.Join(dir, "bad/array.json"), `["x"]`)
	mustWrite(t, filepath.Join(dir, "bad/null.json"), `null`)
	// A secret outside dir, reachable only through a symlink.
	outside := t.TempDir()
	mustWrite(t, filepath.Join(outside, "leak.json"), `{"k":"v"}`)
	if err := os.Symlink(filepath.Join(outside, "leak.json"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(outside, "escape.json"), `{"k":"v"}`)

	f := NewFile(dir)
	ctx := context.Background()
	got, err := f.Read(ctx, "wsgate/users/orders")
	if err != nil {
		t.Fatal(err)
	}
	if got["alice"] != "s3cret" || got["bob"] != "pw" || len(got) != 2 {
		t.Errorf("fields = %v", got)
	}

	tests := []struct {
		path string
		want error
	}{
		{"missing/secret", ErrNotFound},
		{"bad/nested", ErrInvalidSecret},
		{"bad/syntax", ErrInvalidSecret},
		{"bad/array", ErrInvalidSecret},
		{"bad/null", ErrInvalidSecret},
		{"../" + filepath.Base(outside) + "/escape", ErrInvalidPath},
		{"/" + strings.TrimPrefix(filepath.Join(outside, "escape"), "/"), ErrInvalidPath},
		{`wsgate\users\orders`, ErrInvalidPath},
		{"wsgate//users/orders", ErrInvalidPath},
	}
	for _, tt := range tests {
		_, err := f.Read(ctx, tt.path)
		if !errors.Is(err, tt.want) {
			t.Errorf("Read(%q) = %v, want %v", tt.path, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("Read(%q) error leaks content: %v", tt.path, err)
		}
	}
	if _, err := f.Read(ctx, "link"); err == nil {
		t.Error("symlink leaving the directory was followed")
	}
}

func TestFileBackendRefusesBeforeAccess(t *testing.T) {
	// The directory does not exist: a path error must come from CheckPath, not the OS.
	f := NewFile(filepath.Join(t.TempDir(), "nope"))
	if _, err := f.Read(context.Background(), "../x"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("err = %v, want ErrInvalidPath", err)
	}
}

func mustWrite(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestParseCertificates(t *testing.T) {
	f := getFixture(t)
	certs, err := ParseCertificates("p", "certificates", "subject=leaf\n"+f.leafPEM+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || certs[0].Subject.CommonName != "leaf" || certs[1].Subject.CommonName != "ca" {
		t.Fatalf("certs = %v", certs)
	}
	truncated := f.leafPEM[:len(f.leafPEM)-40]
	bad := []struct{ name, pem string }{
		{"empty", ""},
		{"not pem", "hello"},
		{"key instead of cert", f.keyPEM},
		{"cert then key", f.caPEM + f.keyPEM},
		{"truncated second", f.caPEM + truncated},
		{"garbage der", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCertificates("wsgate/trust/x", "certificates", tt.pem)
			if !errors.Is(err, ErrInvalidSecret) {
				t.Fatalf("err = %v, want ErrInvalidSecret", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "wsgate/trust/x") || !strings.Contains(msg, "certificates") {
				t.Errorf("error %q does not name path and field", msg)
			}
			assertNoLeak(t, msg, tt.pem)
		})
	}
}

// assertNoLeak fails if msg carries any base64 line of the PEM input.
func assertNoLeak(t *testing.T, msg, input string) {
	t.Helper()
	for _, line := range strings.Split(input, "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line) {
			t.Errorf("error %q contains input line %q", msg, line)
		}
	}
}

func TestParsePrivateKey(t *testing.T) {
	f := getFixture(t)
	rsaKey, err := pki.Issuer{}.NewKey(pki.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := pki.Issuer{}.NewKey(pki.RSA1024)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(f.leaf.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	pkcs1 := enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey)))
	sec1 := enc("EC PRIVATE KEY", ecDER)
	ok := []struct {
		name string
		pem  string
		want crypto.PublicKey
	}{
		{"pkcs8 ec", f.keyPEM, f.leaf.Key.Public()},
		{"pkcs1 rsa", pkcs1, rsaKey.Public()},
		{"sec1 ec", sec1, f.leaf.Key.Public()},
		{"sec1 with ec parameters", "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" + sec1, f.leaf.Key.Public()},
	}
	for _, tt := range ok {
		k, err := ParsePrivateKey("p", "private_key", tt.pem)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want) {
			t.Errorf("%s: wrong key", tt.name)
		}
	}

	weakPEM := enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(weak.(*rsa.PrivateKey)))
	encrypted := "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\n" +
		strings.Join(strings.Split(pkcs1, "\n")[1:], "\n")
	bad := []struct{ name, pem string }{
		{"empty", ""},
		{"certificate", f.caPEM},
		{"two keys", f.keyPEM + f.key2PEM},
		{"weak rsa", weakPEM},
		{"encrypted", encrypted},
		{"garbage pkcs8", "-----BEGIN PRIVATE KEY-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n-----END PRIVATE KEY-----\n"},
		{"truncated", f.keyPEM[:len(f.keyPEM)-30]},
		{"sec1 labelled pkcs1", strings.ReplaceAll(sec1, "EC PRIVATE KEY", "RSA PRIVATE KEY")},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePrivateKey("wsgate/signing/x", "private_key", tt.pem)
			if !errors.Is(err, ErrInvalidSecret) {
				t.Fatalf("err = %v, want ErrInvalidSecret", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "wsgate/signing/x") || !strings.Contains(msg, "private_key") {
				t.Errorf("error %q does not name path and field", msg)
			}
			assertNoLeak(t, msg, tt.pem)
		})
	}
}

// newManager returns a Manager over a Memory backend with a settable clock.
func newManager(t *testing.T) (*Manager, *Memory, *time.Time) {
	t.Helper()
	mem := NewMemory()
	now := fixedNow
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	return NewManager(mem, nil, clock), mem, &now
}

func TestManagerNeverLoaded(t *testing.T) {
	m, _, _ := newManager(t)
	trust, users, id, fs := m.Trust("t"), m.Users("u"), m.Identity("i"), m.Fields("f")
	if _, err := trust.Certificates(); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Certificates err = %v", err)
	}
	if _, ok, err := users.Password("alice"); ok || !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Password = %v, %v", ok, err)
	}
	if _, _, err := id.Identity(); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Identity err = %v", err)
	}
	if _, err := fs.Field("x"); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Field err = %v", err)
	}
	// Refresh against an empty backend: every secret missing.
	err := m.Refresh(context.Background())
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Refresh err = %v, want ErrNotFound", err)
	}
	for _, st := range m.Status() {
		if st.Loaded || st.Error == "" || !st.StaleSince.Equal(fixedNow) {
			t.Errorf("status %+v", st)
		}
	}
	if _, err := trust.Certificates(); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("after failed refresh, Certificates err = %v", err)
	}
}

func TestManagerSameHandle(t *testing.T) {
	m, _, _ := newManager(t)
	t1, t2 := m.Trust("a"), m.Trust("a")
	u1, u2 := m.Users("a"), m.Users("a")
	i1, i2 := m.Identity("a"), m.Identity("a")
	f1, f2 := m.Fields("a"), m.Fields("a")
	if t1 != t2 || u1 != u2 || i1 != i2 || f1 != f2 {
		t.Error("same path returned different handles")
	}
	if m.Trust("a") == m.Trust("b") {
		t.Error("different paths share a handle")
	}
	if n := len(m.Status()); n != 5 {
		t.Errorf("%d secrets registered, want 5", n)
	}
}

func TestManagerLoadRotateAndStale(t *testing.T) {
	f := getFixture(t)
	m, mem, now := newManager(t)
	mem.Set("trust", map[string]string{"certificates": f.caPEM})
	mem.Set("users", map[string]string{"alice": "one"})
	mem.Set("id", map[string]string{"certificate": f.leafPEM, "private_key": f.keyPEM})
	mem.Set("jwks", map[string]string{"secret": "c2VjcmV0"})
	trust, users, id, fields := m.Trust("trust"), m.Users("users"), m.Identity("id"), m.Fields("jwks")
	ctx := context.Background()

	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	certs, err := trust.Certificates()
	if err != nil || len(certs) != 1 || certs[0].Subject.CommonName != "ca" {
		t.Fatalf("Certificates = %v, %v", certs, err)
	}
	if pw, ok, err := users.Password("alice"); pw != "one" || !ok || err != nil {
		t.Errorf("Password(alice) = %q %v %v", pw, ok, err)
	}
	if _, ok, err := users.Password("mallory"); ok || err != nil {
		t.Errorf("Password(mallory) = %v %v", ok, err)
	}
	chain, key, err := id.Identity()
	if err != nil || len(chain) != 2 || chain[0].Subject.CommonName != "leaf" || key == nil {
		t.Fatalf("Identity = %v %v %v", chain, key, err)
	}
	if v, err := fields.Field("secret"); v != "c2VjcmV0" || err != nil {
		t.Errorf("Field = %q %v", v, err)
	}
	if _, err := fields.Field("jwks"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing field err = %v", err)
	}

	// Rotate.
	*now = fixedNow.Add(time.Minute)
	mem.Set("trust", map[string]string{"certificates": f.caPEM + string(pki.CertPEM(f.leaf2.Cert))})
	mem.Set("users", map[string]string{"alice": "two"})
	mem.Set("id", map[string]string{"certificate": string(pki.CertPEM(f.leaf2.Cert)), "private_key": f.key2PEM})
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if certs, _ := trust.Certificates(); len(certs) != 2 {
		t.Errorf("rotated trust has %d certs", len(certs))
	}
	if pw, _, _ := users.Password("alice"); pw != "two" {
		t.Errorf("rotated password = %q", pw)
	}
	if chain, _, _ := id.Identity(); chain[0].Subject.CommonName != "leaf2" {
		t.Errorf("rotated identity = %s", chain[0].Subject.CommonName)
	}
	for _, st := range m.Status() {
		if !st.Loaded || !st.LoadedAt.Equal(fixedNow.Add(time.Minute)) || !st.StaleSince.IsZero() || st.Error != "" {
			t.Errorf("status after rotation %+v", st)
		}
	}

	// Backend down: last good kept, stale since the failure.
	outage := errors.New("vault unreachable")
	mem.Fail(outage)
	*now = fixedNow.Add(2 * time.Minute)
	if err := m.Refresh(ctx); !errors.Is(err, outage) {
		t.Errorf("Refresh err = %v, want outage", err)
	}
	*now = fixedNow.Add(3 * time.Minute)
	_ = m.Refresh(ctx)
	if pw, ok, err := users.Password("alice"); pw != "two" || !ok || err != nil {
		t.Errorf("during outage Password = %q %v %v", pw, ok, err)
	}
	if chain, _, err := id.Identity(); err != nil || chain[0].Subject.CommonName != "leaf2" {
		t.Errorf("during outage Identity err = %v", err)
	}
	for _, st := range m.Status() {
		if !st.Loaded || !st.LoadedAt.Equal(fixedNow.Add(time.Minute)) ||
			!st.StaleSince.Equal(fixedNow.Add(2*time.Minute)) || st.Error == "" {
			t.Errorf("status during outage %+v", st)
		}
	}

	// Back up, but one secret now invalid: it stays stale on its old value; values never appear in status.
	mem.Fail(nil)
	mem.Set("id", map[string]string{"certificate": f.leafPEM, "private_key": f.key2PEM}) // mismatched key
	mem.Set("users", map[string]string{"alice": ""})
	*now = fixedNow.Add(4 * time.Minute)
	err = m.Refresh(ctx)
	if !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("Refresh err = %v, want ErrInvalidSecret", err)
	}
	if chain, _, _ := id.Identity(); chain[0].Subject.CommonName != "leaf2" {
		t.Error("invalid identity replaced the last good one")
	}
	if pw, _, _ := users.Password("alice"); pw != "two" {
		t.Error("invalid users secret replaced the last good one")
	}
	for _, st := range m.Status() {
		stale := st.Path == "id" || st.Path == "users"
		if stale != !st.StaleSince.IsZero() {
			t.Errorf("status %+v: stale = %v", st, stale)
		}
		for _, v := range []string{f.keyPEM[40:80], f.key2PEM[40:80], "two"} {
			if strings.Contains(st.Error, v) {
				t.Errorf("status error leaks a value: %q", st.Error)
			}
		}
	}
}

func TestManagerConcurrentReaders(t *testing.T) {
	f := getFixture(t)
	m, mem, _ := newManager(t)
	id := m.Identity("id")
	users := m.Users("users")
	pairs := []map[string]string{
		{"certificate": string(pki.CertPEM(f.leaf.Cert)), "private_key": f.keyPEM},
		{"certificate": string(pki.CertPEM(f.leaf2.Cert)), "private_key": f.key2PEM},
	}
	mem.Set("id", pairs[0])
	mem.Set("users", map[string]string{"u": "0", "v": "0"})
	ctx := context.Background()
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				chain, key, err := id.Identity()
				if err != nil {
					errs <- err
					return
				}
				// A reader must never see the leaf of one version with the key of another.
				if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(chain[0].PublicKey) {
					errs <- errors.New("mixed identity version")
					return
				}
				if _, ok, err := users.Password("u"); !ok || err != nil {
					errs <- errors.New("user vanished during refresh")
					return
				}
			}
		}()
	}
	for i := range 50 {
		mem.Set("id", pairs[i%2])
		mem.Set("users", map[string]string{"u": string(rune('a' + i%26))})
		if err := m.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestManagerRun(t *testing.T) {
	m, mem, _ := newManager(t)
	mem.Set("u", map[string]string{"a": "b"})
	users := m.Users("u")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx, time.Millisecond); close(done) }()
	deadline := time.After(5 * time.Second)
	for {
		if _, ok, _ := users.Password("a"); ok {
			break
		}
		select {
		case <-deadline:
			t.Fatal("Run never refreshed")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
}

func FuzzParsePEM(f *testing.F) {
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n")
	f.Add("-----BEGIN EC PRIVATE KEY-----\n\n-----END EC PRIVATE KEY-----")
	f.Fuzz(func(t *testing.T, data string) {
		if certs, err := ParseCertificates("p", "f", data); err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
		if k, err := ParsePrivateKey("p", "f", data); err == nil && k == nil {
			t.Fatal("no error and no key")
		}
	})
}
