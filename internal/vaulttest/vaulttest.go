// Package vaulttest runs a real HashiCorp Vault dev server for integration
// tests. Tests that need Vault call Harness.Require: it starts one
// `vault server -dev` per test package (on a free loopback port, with a
// random root token) the first time it is asked, and Main stops it after
// the package's tests.
//
// Which Vault is used comes from the environment:
//
//	WSGATE_VAULT_BIN=/path/to/vault          start a dev server from this binary
//	WSGATE_VAULT_ADDR=http://127.0.0.1:8200  or use a running dev server,
//	VAULT_TOKEN=...                          with its root token
//
// scripts/vault.sh builds and caches the binary and prints its path. With
// neither set, the tests skip, except when CI is set: then they fail, so a
// CI run can never hide missing Vault coverage.
package vaulttest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Environment variables that select the Vault under test.
const (
	EnvBin   = "WSGATE_VAULT_BIN"
	EnvAddr  = "WSGATE_VAULT_ADDR"
	EnvToken = "VAULT_TOKEN"
)

// startTimeout bounds how long a dev server may take to become healthy.
const startTimeout = 60 * time.Second

// Server is a Vault dev server: one this package started (Owned) or one
// named by WSGATE_VAULT_ADDR.
type Server struct {
	// Addr is the server's URL, e.g. http://127.0.0.1:38211.
	Addr string
	// Token is the root token.
	Token string
	// CACertFile is the PEM CA of a TLS server (StartTLS); empty otherwise.
	CACertFile string

	bin     string
	listen  string // host:port
	logFile string
	tlsDir  string // -dev-tls certificate directory; empty for plain HTTP
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd exits
}

// Owned reports whether this package started the server (and so can stop
// and restart it).
func (s *Server) Owned() bool { return s.bin != "" }

// Start runs `vault server -dev` from bin on a free loopback port with a
// random root token, and waits until it is unsealed and active. Its log
// goes to a file under logDir (Logs returns it).
func Start(bin, logDir string) (*Server, error) { return start(bin, logDir, false) }

// StartTLS is Start with -dev-tls: the server speaks HTTPS with a
// certificate from a CA it generates, whose PEM file is CACertFile.
func StartTLS(bin, logDir string) (*Server, error) { return start(bin, logDir, true) }

func start(bin, logDir string, useTLS bool) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	s := &Server{
		bin:     bin,
		listen:  net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Token:   "root-" + hex.EncodeToString(tok[:]),
		logFile: filepath.Join(logDir, fmt.Sprintf("vault-%d.log", port)),
	}
	s.Addr = "http://" + s.listen
	if useTLS {
		s.tlsDir = filepath.Join(logDir, fmt.Sprintf("vault-tls-%d", port))
		if err := os.MkdirAll(s.tlsDir, 0o700); err != nil {
			return nil, err
		}
		s.Addr = "https://" + s.listen
		s.CACertFile = filepath.Join(s.tlsDir, "vault-ca.pem")
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"server", "-dev",
		"-dev-listen-address=" + s.listen,
		"-dev-root-token-id=" + s.Token,
		"-dev-no-store-token", // never touch ~/.vault-token
		"-log-level=warn"}
	if s.tlsDir != "" {
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+s.tlsDir)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vaulttest: start %s: %w", s.bin, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	if err := s.waitHealthy(); err != nil {
		_ = s.Stop()
		return fmt.Errorf("%w\n%s", err, s.Logs())
	}
	return nil
}

// cleanEnv is the environment minus VAULT_* variables, which would point
// the dev server's own CLI helpers elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *Server) waitHealthy() error {
	deadline := time.Now().Add(startTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("vaulttest: vault exited during start-up")
		default:
		}
		if s.tlsDir != "" && hc.Transport == nil {
			// The CA file appears once the server has generated it.
			pem, err := os.ReadFile(s.CACertFile)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("vaulttest: %s holds no certificate", s.CACertFile)
			}
			hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		}
		resp, err := hc.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vaulttest: vault at %s not healthy after %v", s.Addr, startTimeout)
}

// Stop kills an owned server and waits for it to exit. Its data is gone.
func (s *Server) Stop() error {
	if !s.Owned() || s.cmd == nil {
		return nil
	}
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) // its process group
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("vaulttest: vault did not exit")
	}
}

// Restart starts a stopped owned server again on the same address with the
// same root token. Dev mode keeps nothing: mounts and data must be seeded again.
func (s *Server) Restart() error {
	if !s.Owned() {
		return errors.New("vaulttest: cannot restart a server this package did not start")
	}
	if err := s.Stop(); err != nil {
		return err
	}
	var err error
	for range 50 { // the port may linger briefly after the kill
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Logs returns the server's log so far (owned servers only).
func (s *Server) Logs() string {
	if s.logFile == "" {
		return ""
	}
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		return ""
	}
	return string(b)
}

// Client returns a new API client with the root token.
func (s *Server) Client() (*vault.Client, error) {
	cfg := vault.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = s.Addr
	if s.CACertFile != "" {
		if err := cfg.ConfigureTLS(&vault.TLSConfig{CACert: s.CACertFile}); err != nil {
			return nil, err
		}
	}
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(s.Token)
	return c, nil
}

// Mount enables a secrets engine of type typ at path unless one of that
// type is already there.
func (s *Server) Mount(ctx context.Context, path, typ string, opts map[string]string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	mounts, err := c.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return err
	}
	if m, ok := mounts[path+"/"]; ok {
		if m.Type != typ {
			return fmt.Errorf("vaulttest: %s is mounted as %s, want %s", path, m.Type, typ)
		}
		return nil
	}
	return c.Sys().MountWithContext(ctx, path, &vault.MountInput{
		Type: typ, Options: opts,
		Config: vault.MountConfigInput{MaxLeaseTTL: "87600h"},
	})
}

// EnableAuth enables an auth method of type typ at path unless present.
func (s *Server) EnableAuth(ctx context.Context, path, typ string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	auths, err := c.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return err
	}
	if a, ok := auths[path+"/"]; ok {
		if a.Type != typ {
			return fmt.Errorf("vaulttest: auth %s is %s, want %s", path, a.Type, typ)
		}
		return nil
	}
	return c.Sys().EnableAuthWithOptionsWithContext(ctx, path, &vault.EnableAuthOptions{Type: typ})
}

// Harness is one test package's Vault: started lazily by Require, stopped by Main.
type Harness struct {
	once   sync.Once
	srv    *Server
	err    error
	logDir string
}

// Main runs the package's tests and then stops the Vault they started.
// Use it from TestMain: os.Exit(vaulttest.Main(m, &harness)).
func Main(m *testing.M, h *Harness) int {
	dir, err := os.MkdirTemp("", "vaulttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vaulttest:", err)
		return 1
	}
	h.logDir = dir
	code := m.Run()
	if h.srv != nil {
		if err := h.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if code == 0 || h.srv == nil || !h.srv.Owned() {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "vaulttest: Vault logs kept in", dir)
	}
	return code
}

// Require returns the package's Vault, starting it on first use. Without
// WSGATE_VAULT_BIN or WSGATE_VAULT_ADDR it skips the test, or fails it when
// CI is set.
func (h *Harness) Require(t testing.TB) *Server {
	t.Helper()
	h.once.Do(func() {
		switch bin, addr := os.Getenv(EnvBin), os.Getenv(EnvAddr); {
		case bin != "":
			h.srv, h.err = Start(bin, h.dir())
		case addr != "":
			if os.Getenv(EnvToken) == "" {
				h.err = fmt.Errorf("vaulttest: %s is set but %s is not", EnvAddr, EnvToken)
				return
			}
			h.srv = &Server{Addr: addr, Token: os.Getenv(EnvToken)}
		}
	})
	if h.err != nil {
		t.Fatal(h.err)
	}
	if h.srv == nil {
		Missing(t, "no Vault to test against: set "+EnvBin+binHint+
			" or "+EnvAddr+"=<address of a dev server> with "+EnvToken+"=<its root token>")
	}
	return h.srv
}

func (h *Harness) dir() string {
	if h.logDir == "" { // Main was not used
		h.logDir = os.TempDir()
	}
	return h.logDir
}

// Bin returns WSGATE_VAULT_BIN, for tests that must own (stop, restart) a
// server of their own; it skips, or fails under CI, when unset.
func Bin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(EnvBin)
	if bin == "" {
		Missing(t, "this test starts and stops its own Vault: set "+EnvBin+binHint)
	}
	return bin
}

const binHint = "=<path of vault> (scripts/vault.sh builds it and prints the path)"

// Missing skips t with msg (which says how to enable it), or fails it when CI is set.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set, so Vault integration tests must run: " + msg)
	}
	t.Skip(msg)
}
