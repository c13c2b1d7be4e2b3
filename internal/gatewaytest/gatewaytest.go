// Package gatewaytest runs the real wsgate binary for tests: it builds
// cmd/wsgate once per test binary, starts `wsgate serve` and waits for its
// listeners, stops it, and writes the files a config points at.
package gatewaytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"wsgate/internal/pki"
	"wsgate/internal/vaulttest"
)

// Buffer collects a process's output; it is safe for the concurrent writes
// of the goroutine that copies it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LogRecords returns the JSON log records written so far; other lines are skipped.
func (s *Buffer) LogRecords() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// build is the one build of cmd/wsgate per test binary: a test binary
// builds it once however many tests start gateways.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Main runs the tests and removes the built binary; call it from TestMain as
// os.Exit(gatewaytest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	return code
}

// Binary returns the path of wsgate built from wsgate/cmd/wsgate, building
// it on first use. Tests using it must run through Main.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			if root := os.Getenv("GOROOT"); root != "" {
				goTool = filepath.Join(root, "bin", "go")
			} else {
				build.err = fmt.Errorf("go command not found on PATH or in GOROOT: %v", err)
				return
			}
		}
		build.dir, build.err = os.MkdirTemp("", "wsgate-test-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "wsgate")
		cmd := exec.Command(goTool, "build", "-o", build.bin, "wsgate/cmd/wsgate")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build wsgate/cmd/wsgate: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// Gateway is a running `wsgate serve` process.
type Gateway struct {
	Name      string
	Addr      string // host:port of the proxy listener
	Base      string // http://Addr
	AdminBase string // http://host:port of the admin listener, if the config has one
	Logs      *Buffer
	Cmd       *exec.Cmd
	done      chan struct{}
}

// Start runs `wsgate serve -config cfg` with env added to the test's
// environment and waits until it logs its listeners ("wsgate listening",
// and "admin listening" when cfg sets admin_listen). The config must use
// JSON logs; it may listen on port 0. The process is stopped at cleanup.
func Start(t testing.TB, name, cfg string, env ...string) *Gateway {
	t.Helper()
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantAdmin := strings.Contains(string(raw), "admin_listen:")
	g := &Gateway{Name: name, Logs: &Buffer{}, done: make(chan struct{})}
	g.Cmd = exec.Command(Binary(t), "serve", "-config", cfg)
	g.Cmd.Stdout, g.Cmd.Stderr = g.Logs, g.Logs
	g.Cmd.Env = append(os.Environ(), env...)
	g.Cmd.SysProcAttr = SysProcAttr()
	if err := g.Cmd.Start(); err != nil {
		t.Fatalf("start wsgate %s: %v", name, err)
	}
	go func() { _ = g.Cmd.Wait(); close(g.done) }()
	t.Cleanup(func() { g.Stop(t) })

	deadline := time.After(60 * time.Second)
	for {
		for _, rec := range g.Logs.LogRecords() {
			addr, _ := rec["addr"].(string)
			switch rec["msg"] {
			case "wsgate listening":
				g.Addr, g.Base = addr, "http://"+addr
			case "admin listening":
				g.AdminBase = "http://" + addr
			}
		}
		if g.Base != "" && (g.AdminBase != "" || !wantAdmin) {
			return g
		}
		select {
		case <-g.done:
			t.Fatalf("wsgate %s exited before listening (%v):\n%s", name, g.Cmd.ProcessState, g.Logs)
		case <-deadline:
			t.Fatalf("wsgate %s did not start listening:\n%s", name, g.Logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Exited reports whether the process has ended.
func (g *Gateway) Exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits for the process to end; one that does not
// within 40s is killed and the test fails. On a failed test the log is
// written to the test's output. Stopping a stopped gateway does nothing.
func (g *Gateway) Stop(t testing.TB) {
	if g.Exited() {
		return
	}
	_ = g.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(40 * time.Second):
		_ = g.Cmd.Process.Kill()
		<-g.done
		t.Errorf("wsgate %s did not stop on SIGTERM", g.Name)
	}
	if t.Failed() {
		t.Logf("wsgate %s log:\n%s", g.Name, g.Logs)
	}
}

// WaitReady polls the admin listener's /readyz until it answers 200.
func (g *Gateway) WaitReady(t testing.TB) {
	t.Helper()
	if g.AdminBase == "" {
		t.Fatal("the gateway has no admin listener")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		res, err := client.Get(g.AdminBase + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
			last = res.Status + " " + string(b)
		} else {
			last = err.Error()
		}
		if g.Exited() {
			t.Fatalf("wsgate %s exited before ready (%v):\n%s", g.Name, g.Cmd.ProcessState, g.Logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("wsgate %s never became ready: %s", g.Name, last)
}

// FreeAddr returns a loopback address nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WriteFile writes b to name (mode 0600), creating its directories.
func WriteFile(t testing.TB, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// WriteSecret writes a file-backend secret: <dir>/<path>.json holding fields.
func WriteSecret(t testing.TB, dir, path string, fields map[string]string) {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, filepath.Join(dir, filepath.FromSlash(path)+".json"), b)
}

// IssueServer issues a TLS server certificate for 127.0.0.1 from ca (the
// test PKI issues no SANs, which TLS clients require).
func IssueServer(t testing.TB, ca *pki.Identity, cn string) *pki.Identity {
	t.Helper()
	key, err := pki.Issuer{}.NewKey(pki.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(nil, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pki.Identity{Cert: cert, Key: key}
}

// Vault starts a Vault dev server for t, stopped at cleanup, with a secrets
// engine of each type in engines mounted at its type's name, and returns it
// with a root client.
func Vault(t testing.TB, engines ...string) (*vaulttest.Server, *vault.Client) {
	t.Helper()
	srv, err := vaulttest.Start(vaulttest.Bin(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	for _, e := range engines {
		if err := srv.Mount(context.Background(), e, e, nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	return srv, root
}

// VaultPKIRole generates a root CA in the pki mount and the role "wsgate"
// allowing gw.example for up to 48h; it returns the generate response.
func VaultPKIRole(t testing.TB, root *vault.Client) *vault.Secret {
	t.Helper()
	ctx := context.Background()
	gen, err := root.Logical().WriteWithContext(ctx, "pki/root/generate/internal", map[string]any{"common_name": "test root"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "pki/roles/wsgate", map[string]any{
		"allowed_domains": "gw.example", "allow_bare_domains": true, "max_ttl": "48h",
	}); err != nil {
		t.Fatal(err)
	}
	return gen
}
