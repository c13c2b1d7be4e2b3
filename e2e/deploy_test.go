package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/internal/gatewaytest"
	"wsgate/internal/pki"
	"wsgate/internal/vaulttest"
	"wsgate/redisstore/redistest"
	"wsgate/secrets"
)

// repoFile is a path under the repository root (tests run in e2e/).
func repoFile(parts ...string) string {
	return filepath.Join(append([]string{".."}, parts...)...)
}

// startEcho runs deploy/echo.py in mode on a free port and returns its base URL.
func startEcho(t *testing.T, python, mode string) string {
	t.Helper()
	cmd := exec.Command(python, repoFile("deploy", "echo.py"), mode, "--host", "127.0.0.1", "--port", "0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &gatewaytest.Buffer{}
	cmd.Stderr = logs
	cmd.SysProcAttr = gatewaytest.SysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("echo.py %s exited:\n%s", mode, logs)
		}
		return "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("echo.py %s did not start:\n%s", mode, logs)
	}
	return ""
}

// runSeed runs deploy/seed.sh against srv with vault's directory on PATH.
func runSeed(t *testing.T, vaultBin string, srv *vaulttest.Server, out string) {
	t.Helper()
	cmd := exec.Command("sh", repoFile("deploy", "seed.sh"))
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "WSGATE_") {
			env = append(env, kv)
		}
	}
	abs, err := filepath.Abs(vaultBin)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(env,
		"PATH="+filepath.Dir(abs)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.Token, "WSGATE_SEED_OUT="+out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deploy/seed.sh: %v\n%s", err, b)
	}
}

// deployConfig is deploy/wsgate.yaml with the compose host names replaced
// by the local processes. Every name must be present: a renamed service in
// the file must fail here, not silently test something else.
func deployConfig(t *testing.T, repl map[string]string) string {
	t.Helper()
	cfg := mustReadString(t, repoFile("deploy", "wsgate.yaml"))
	for from, to := range repl {
		if !strings.Contains(cfg, from) {
			t.Fatalf("deploy/wsgate.yaml no longer contains %q", from)
		}
		cfg = strings.ReplaceAll(cfg, from, to)
	}
	return cfg
}

// TestComposeTopologyAsProcesses runs docker-compose.yml's topology without
// Docker: a real Vault dev server seeded by deploy/seed.sh, a real Redis,
// the demo upstreams of deploy/echo.py, and wsgate on deploy/wsgate.yaml
// (Vault backend, AppRole auth, Redis replay store).
func TestComposeTopologyAsProcesses(t *testing.T) {
	vaultBin := vaulttest.Bin(t)
	python := requireTool(t, "python3", "apt-get install python3")
	requireTool(t, "sh", "a POSIX shell")
	rds := redistest.Start(t)

	srv, err := vaulttest.Start(vaultBin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	soapURL := startEcho(t, python, "soap")
	restURL := startEcho(t, python, "rest")

	dir := t.TempDir()
	auth := filepath.Join(dir, "run")
	runSeed(t, vaultBin, srv, auth)
	if got := strings.TrimSpace(mustReadString(t, filepath.Join(auth, "role_id"))); got != "wsgate-demo" {
		t.Fatalf("role_id file holds %q, want wsgate-demo (deploy/wsgate.yaml names it)", got)
	}

	// What a partner and a token issuer hold, read back from Vault.
	vc, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	readKV := func(path string) map[string]string {
		s, err := vc.KVv2("secret").Get(ctx, path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		out := map[string]string{}
		for k, v := range s.Data {
			out[k], _ = v.(string)
		}
		return out
	}
	partner := readKV("wsgate/signing/partner")
	chain, err := secrets.ParseCertificates("wsgate/signing/partner", "certificate", partner["certificate"])
	if err != nil {
		t.Fatal(err)
	}
	key, err := secrets.ParsePrivateKey("wsgate/signing/partner", "private_key", partner["private_key"])
	if err != nil {
		t.Fatal(err)
	}
	hmacKey, err := base64.StdEncoding.DecodeString(readKV("wsgate/jwks/demo")["secret"])
	if err != nil || len(hmacKey) != 32 {
		t.Fatalf("wsgate/jwks/demo secret: %d bytes, %v; want 32 bytes of base64", len(hmacKey), err)
	}

	// Seeding again keeps the identities (clients hold them) and succeeds.
	runSeed(t, vaultBin, srv, auth)
	if again := readKV("wsgate/signing/partner"); again["certificate"] != partner["certificate"] {
		t.Fatal("a second seed run replaced the partner identity")
	}

	adminPort := gatewaytest.FreeAddr(t)
	cfg := deployConfig(t, map[string]string{
		"listen: 0.0.0.0:8080":                  "listen: 127.0.0.1:0",
		"admin_listen: 0.0.0.0:9090":            "admin_listen: " + adminPort,
		"address: http://vault:8200":            "address: " + srv.Addr,
		`address: "redis:6379"`:                 `address: "` + rds.Addr + `"`,
		"http://soap-echo:9001":                 soapURL,
		"http://rest-echo:9002":                 restURL,
		"secret_id_file: /run/wsgate/secret_id": "secret_id_file: " + filepath.Join(auth, "secret_id"),
	})
	cfgPath := filepath.Join(dir, "wsgate.yaml")
	gatewaytest.WriteFile(t, cfgPath, []byte(cfg))
	gatewaytest.WriteFile(t, filepath.Join(dir, "templates", "hello.xml.tmpl"), []byte(mustReadString(t, repoFile("deploy", "templates", "hello.xml.tmpl"))))

	g := gatewaytest.Start(t, "compose-wsgate", cfgPath)
	g.WaitReady(t)

	// SOAP: signed by the partner identity Vault's PKI issued.
	signer := &pki.Identity{Cert: chain[0], Key: key}
	msg := signMessage(t, signer, []byte(mustReadString(t, repoFile("deploy", "request.xml")))) // the README's sample
	r := postSOAP(t, g.Base+"/soap/echo", msg)
	if r.status != http.StatusOK || !strings.Contains(r.body, "Echo") || !strings.Contains(r.body, "World") {
		t.Fatalf("signed SOAP request: %d %q, want 200 with the echo", r.status, r.body)
	}
	if r := postSOAP(t, g.Base+"/soap/echo", msg); r.status != http.StatusInternalServerError ||
		!strings.Contains(r.body, "wsse:InvalidSecurity") {
		t.Fatalf("replayed SOAP request: %d %q, want 500 wsse:InvalidSecurity", r.status, r.body)
	}

	// REST: a token keyed by the seeded HMAC secret.
	tok := mintDemoToken(t, hmacKey, "echo.read")
	r = getBearer(t, g.Base+"/rest/echo/hello", tok)
	if r.status != http.StatusOK || !strings.Contains(r.body, `"X-Auth-Subject"`) {
		t.Fatalf("REST request with a token: %d %q, want 200 with X-Auth-Subject forwarded", r.status, r.body)
	}
	if r := getBearer(t, g.Base+"/rest/echo/hello", mintDemoToken(t, hmacKey, "other")); r.status != http.StatusForbidden {
		t.Fatalf("REST request without the scope: %d %q, want 403", r.status, r.body)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.Base+"/rest/echo/hello", nil)
	if r := do(t, req); r.status != http.StatusUnauthorized {
		t.Fatalf("REST request without a token: %d, want 401", r.status)
	}

	// Public route: straight through.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, g.Base+"/public/echo/ping", nil)
	if r := do(t, req); r.status != http.StatusOK || !strings.Contains(r.body, `"path": "/ping"`) {
		t.Fatalf("public request: %d %q, want 200 echoing /ping", r.status, r.body)
	}
}

// mintDemoToken mints an HS256 token as deploy/wsgate.yaml's rest-echo
// route expects it (issuer, audience) with the given scope.
func mintDemoToken(t *testing.T, key []byte, scope string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer:   "https://idp.demo.invalid/",
		Audience: jwt.Audience{"wsgate-demo"},
		Subject:  "demo-user",
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(10 * time.Minute)),
	}).Claims(map[string]any{"scope": scope}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
