package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"wsgate/internal/gatewaytest"
	"wsgate/soap"
)

// syncBuffer collects a running server's concurrent output.
type syncBuffer = gatewaytest.Buffer

// runCmd runs wsgate with args and returns exit code, stdout and stderr.
func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// runningDemo is a demo started in a temp dir.
type runningDemo struct {
	dir, base      string
	stdout, stderr *syncBuffer
	stop           func() int
}

func startDemo(t *testing.T) *runningDemo {
	t.Helper()
	return startDemoOn(t, "127.0.0.1:0")
}

// startDemoOn starts the demo with its proxy on listen.
func startDemoOn(t *testing.T, listen string) *runningDemo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	ready := make(chan string, 1)
	done := make(chan int, 1)
	go func() {
		done <- cmdDemo(ctx, []string{"-dir", dir, "-listen", listen, "-admin-listen", "127.0.0.1:0"}, stdout, stderr,
			func(addr string) { ready <- addr })
	}()
	d := &runningDemo{dir: dir, stdout: stdout, stderr: stderr}
	select {
	case addr := <-ready:
		d.base = "http://" + addr
	case code := <-done:
		cancel()
		t.Fatalf("demo exited with %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("demo did not start")
	}
	var once sync.Once
	var code int
	d.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(40 * time.Second):
				t.Error("demo did not stop")
				code = -1
			}
		})
		return code
	}
	t.Cleanup(func() { d.stop() })
	return d
}

// signed signs the demo's sample request with the partner route's identity.
func (d *runningDemo) signed(t *testing.T) []byte {
	t.Helper()
	code, out, errOut := runCmd(t, "", "sign", "-config", filepath.Join(d.dir, "wsgate.yaml"),
		"-route", "partner", "-in", filepath.Join(d.dir, "request.xml"))
	if code != exitOK {
		t.Fatalf("sign exit %d: %s", code, errOut)
	}
	return []byte(out)
}

func (d *runningDemo) post(t *testing.T, path string, body []byte) (*http.Response, string) {
	t.Helper()
	res, err := http.Post(d.base+path, "text/xml; charset=utf-8", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestDemoEndToEnd(t *testing.T) {
	d := startDemo(t)

	if help := d.stdout.String(); !strings.Contains(help, "sign -config "+filepath.Join(d.dir, "wsgate.yaml")+" -route partner") ||
		!strings.Contains(help, d.base+"/soap/echo") {
		t.Errorf("demo instructions lack the sign command or the URL:\n%s", help)
	}
	for _, f := range []string{"wsgate.yaml", "request.xml", "secrets/wsgate/trust/partners.json",
		"secrets/wsgate/signing/partner.json"} {
		if _, err := os.Stat(filepath.Join(d.dir, f)); err != nil {
			t.Errorf("demo dir: %v", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(d.dir, "secrets/wsgate/signing/partner.json")); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("partner key file mode = %v, want 0600", fi.Mode().Perm())
	}

	signed := d.signed(t)
	tests := []struct {
		name     string
		body     []byte
		status   int
		contains string
	}{
		{"signed", signed, http.StatusOK, "<echo:Name>World</echo:Name>"},
		{"replayed", signed, http.StatusInternalServerError, "<faultcode>wsse:InvalidSecurity</faultcode>"},
		{"tampered", bytes.Replace(d.signed(t), []byte("World"), []byte("Mallory"), 1),
			http.StatusInternalServerError, "<faultcode>wsse:FailedCheck</faultcode>"},
		{"unsigned", mustRead(t, filepath.Join(d.dir, "request.xml")),
			http.StatusInternalServerError, "<faultcode>wsse:InvalidSecurity</faultcode>"},
		{"not xml", []byte("hello"), http.StatusBadRequest, "<faultcode>wsse:InvalidSecurity</faultcode>"},
	}
	for _, tt := range tests {
		res, body := d.post(t, "/soap/echo", tt.body)
		if res.StatusCode != tt.status || !strings.Contains(body, tt.contains) {
			t.Errorf("%s: %d %s, want %d containing %s", tt.name, res.StatusCode, body, tt.status, tt.contains)
		}
		if res.Header.Get(soap.RequestIDHeader) == "" {
			t.Errorf("%s: no X-Request-ID", tt.name)
		}
		if tt.status == http.StatusOK && strings.Contains(body, "Security") {
			t.Errorf("%s: the echo saw the Security header, which should have been stripped:\n%s", tt.name, body)
		}
	}

	res, body := d.post(t, "/public/echo/hello", []byte("x"))
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"path": "/hello"`) {
		t.Errorf("public echo: %d %s", res.StatusCode, body)
	}
	// The bridge is behind its route's oauth edge: no token, no SOAP call.
	res, body = d.post(t, "/bridge/partner/hello", []byte("{}"))
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Header.Get("WWW-Authenticate"), `Bearer realm="wsgate"`) {
		t.Errorf("bridge without a token: %d %s", res.StatusCode, body)
	}
	res, _ = d.post(t, "/soap/echoX", signed)
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("/soap/echoX: %d, want 404", res.StatusCode)
	}

	if code := d.stop(); code != exitOK {
		t.Errorf("demo exit code after cancel = %d", code)
	}
}

// The demo's REST route accepts the token the demo prints and refuses the rest.
func TestDemoRESTEndToEnd(t *testing.T) {
	d := startDemo(t)
	help := d.stdout.String()
	m := regexp.MustCompile(`curl -sS -H "Authorization: Bearer ([A-Za-z0-9_.-]+)" (\S+)\n`).FindStringSubmatch(help)
	if m == nil || m[2] != d.base+"/rest/echo/hello" {
		t.Fatalf("demo instructions lack the REST curl command:\n%s", help)
	}
	token := m[1]
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("printed token is not a JWS: %q", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	// Same signature, payload edited: the signature no longer covers it.
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(
		bytes.Replace(payload, []byte(`"echo.read"`), []byte(`"echo.write"`), 1)) + "." + parts[2]

	tests := []struct {
		name, method, auth string
		status             int
		challenge          string // WWW-Authenticate, exact when it has no error, else a prefix
		errCode            string // JSON "error"
	}{
		{"no token", http.MethodGet, "", http.StatusUnauthorized, `Bearer realm="wsgate"`, "unauthorized"},
		{"demo token", http.MethodGet, "Bearer " + token, http.StatusOK, "", ""},
		{"tampered token", http.MethodGet, "Bearer " + tampered, http.StatusUnauthorized,
			`Bearer realm="wsgate", error="invalid_token", error_description=`, "invalid_token"},
		{"wrong scope", http.MethodPost, "Bearer " + token, http.StatusForbidden,
			`Bearer realm="wsgate", error="insufficient_scope", error_description="the token lacks the required scope", scope="echo.write"`,
			"insufficient_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, d.base+"/rest/echo/hello", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			req.Header.Set("X-Auth-Subject", "mallory") // a client copy is always dropped
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			id := res.Header.Get(soap.RequestIDHeader)
			if id == "" {
				t.Error("no X-Request-ID")
			}
			if tt.status == http.StatusOK {
				var echo struct {
					Path    string              `json:"path"`
					Headers map[string][]string `json:"headers"`
				}
				if err := json.Unmarshal(body, &echo); err != nil {
					t.Fatalf("echo body: %v: %s", err, body)
				}
				if got := echo.Headers["X-Auth-Subject"]; len(got) != 1 || got[0] != demoSubject {
					t.Errorf("X-Auth-Subject at the upstream = %q, want [%s]", got, demoSubject)
				}
				if got, ok := echo.Headers["Authorization"]; ok {
					t.Errorf("Authorization reached the upstream: %q", got)
				}
				if echo.Path != "/hello" {
					t.Errorf("upstream path %q", echo.Path)
				}
				return
			}
			got := res.Header.Get("WWW-Authenticate")
			if tt.errCode == "unauthorized" && got != tt.challenge || !strings.HasPrefix(got, tt.challenge) {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
			var eb map[string]string
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body: %v: %s", err, body)
			}
			if eb["error"] != tt.errCode || eb["request_id"] != id || eb["error_description"] == "" {
				t.Errorf("error body %v, want error %q and request_id %q", eb, tt.errCode, id)
			}
		})
	}

	if code := d.stop(); code != exitOK {
		t.Errorf("demo exit code after cancel = %d", code)
	}
	logs := d.stderr.String()
	for _, want := range []string{"outcome=accepted", "reason=bad_signature", "reason=insufficient_scope",
		"reason=no_token", "token_sha256=", "sub=" + demoSubject} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, parts[2]) || strings.Contains(logs, parts[1]) {
		t.Errorf("the token (or part of it) is in the log:\n%s", logs)
	}
}

// The demo prints a working bridge call (read-write token; the read-only
// one gets 403 from the route's scope rule) and its admin URLs.
func TestDemoBridgeAndAdmin(t *testing.T) {
	d := startDemo(t)
	help := d.stdout.String()
	rw := regexp.MustCompile(`curl -sS -H "Authorization: Bearer ([A-Za-z0-9_.-]+)" -H 'Content-Type: application/json' \\\n\s+-d '(\{[^']*\})' (\S+)\n`).FindStringSubmatch(help)
	ro := regexp.MustCompile(`curl -sS -H "Authorization: Bearer ([A-Za-z0-9_.-]+)" (\S+)/rest/echo/hello\n`).FindStringSubmatch(help)
	if rw == nil || ro == nil || rw[3] != d.base+"/bridge/partner/hello" {
		t.Fatalf("demo instructions lack the bridge call:\n%s", help)
	}
	call := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, rw[3], strings.NewReader(rw[2]))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := call(rw[1]); code != http.StatusOK || !strings.Contains(body, "World") {
		t.Errorf("bridge call with the read-write token: %d %s", code, body)
	}
	if code, body := call(ro[1]); code != http.StatusForbidden {
		t.Errorf("bridge call with the read-only token: %d %s, want 403", code, body)
	}
	admin := regexp.MustCompile(`curl -sS (http://\S+)/healthz\n`).FindStringSubmatch(help)
	if admin == nil || !strings.Contains(help, admin[1]+"/readyz") || !strings.Contains(help, admin[1]+"/metrics") {
		t.Fatalf("demo instructions lack the admin URLs:\n%s", help)
	}
	for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready":true`, "/metrics": "wsgate_build_info"} {
		res, err := http.Get(admin[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %.200s", path, res.StatusCode, b)
		}
	}
}

func TestDemoReusesKeys(t *testing.T) {
	dir := t.TempDir()
	created, err := ensureDemoKeys(dir)
	if err != nil || !created {
		t.Fatalf("first: created=%v err=%v", created, err)
	}
	partner := filepath.Join(dir, "secrets/wsgate/signing/partner.json")
	before := mustRead(t, partner)
	created, err = ensureDemoKeys(dir)
	if err != nil || created {
		t.Fatalf("second: created=%v err=%v", created, err)
	}
	if !bytes.Equal(before, mustRead(t, partner)) {
		t.Error("keys were regenerated")
	}
	if err := os.Remove(partner); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureDemoKeys(dir); err == nil {
		t.Error("a half-present key set was accepted")
	}
}

func TestVerifyCommand(t *testing.T) {
	d := startDemo(t)
	cfg := filepath.Join(d.dir, "wsgate.yaml")
	signedFile := filepath.Join(t.TempDir(), "signed.xml")
	if err := os.WriteFile(signedFile, d.signed(t), 0o600); err != nil {
		t.Fatal(err)
	}
	signed := string(mustRead(t, signedFile))
	tampered := strings.Replace(signed, "World", "Mallory", 1)
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		out   string
	}{
		{"ok from file", "", []string{"-in", signedFile}, exitOK, "OK signer=CN=demo partner,O=wsgate demo\n"},
		{"ok from stdin, twice (no replay cache)", signed, nil, exitOK, "OK signer=CN=demo partner"},
		{"tampered", tampered, nil, exitFail, "FAIL FailedCheck: "},
		{"expired at a later instant", signed, []string{"-at", later}, exitFail, "FAIL MessageExpired: "},
		{"not xml", "hello", nil, exitFail, "FAIL InvalidSecurity: "},
		{"bad -at", signed, []string{"-at", "yesterday"}, exitUsage, ""},
		{"not a soap route", signed, []string{"-route", "rest-echo"}, exitFail, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"verify", "-config", cfg, "-route", "echo"}, tt.args...)
			code, out, errOut := runCmd(t, tt.stdin, args...)
			if code != tt.code || !strings.HasPrefix(out, tt.out) {
				t.Errorf("exit %d, stdout %q (stderr %s); want %d, %q", code, out, errOut, tt.code, tt.out)
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil { // check-config reports a missing one
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	unknown := filepath.Join(dir, "unknown.yaml")
	writeTestFile(t, good, `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: pub, path_prefix: /pub, upstream: "http://127.0.0.1:9000", public: true}
`)
	writeTestFile(t, bad, `
listen: nonsense
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: Bad_Name, path_prefix: /pub, upstream: "http://127.0.0.1:9000", public: true}
  - {name: orders, path_prefix: /soap/orders, upstream: "http://127.0.0.1:9001", soap: {}}
`)
	writeTestFile(t, unknown, "listen: 127.0.0.1:8080\nsurprise: true\n")

	code, out, _ := runCmd(t, "", "check-config", "-config", good)
	if code != exitOK || out != good+": ok\n" {
		t.Errorf("good: exit %d, %q", code, out)
	}

	code, out, _ = runCmd(t, "", "check-config", "-config", bad)
	if code != exitFail {
		t.Errorf("bad: exit %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 {
		t.Errorf("bad: want every problem, got %q", out)
	}
	for _, want := range []string{bad + ": listen: ", bad + ": routes[0].name: ", bad + ": routes[1].soap.trust: "} {
		if !strings.Contains(out, want) {
			t.Errorf("bad: output lacks %q:\n%s", want, out)
		}
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, bad+": ") {
			t.Errorf("bad: line %q is not FILE: path: reason", l)
		}
	}

	code, out, _ = runCmd(t, "", "check-config", "-config", unknown)
	if code != exitFail || !strings.HasPrefix(out, unknown+": ") || !strings.Contains(out, "surprise") {
		t.Errorf("unknown key: exit %d, %q", code, out)
	}

	code, out, _ = runCmd(t, "", "check-config", "-config", filepath.Join(dir, "missing.yaml"))
	if code != exitFail || !strings.HasPrefix(out, filepath.Join(dir, "missing.yaml")+": ") {
		t.Errorf("missing file: exit %d, %q", code, out)
	}

	if code, _, _ := runCmd(t, "", "check-config"); code != exitUsage {
		t.Errorf("no -config: exit %d", code)
	}
}

func TestDemoConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil { // check-config reports a missing one
		t.Fatal(err)
	}
	path := filepath.Join(dir, "wsgate.yaml")
	writeTestFile(t, path, demoConfigFor("127.0.0.1:8080", "http://127.0.0.1:1", "http://127.0.0.1:2", "127.0.0.1:9090"))
	code, out, _ := runCmd(t, "", "check-config", "-config", path)
	if code != exitOK {
		t.Errorf("demo config: exit %d\n%s", code, out)
	}
}

func TestServeRefusesInvalidConfigAndVaultWithoutToken(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	vault := filepath.Join(dir, "vault.yaml")
	writeTestFile(t, bad, "routes: []\n")
	writeTestFile(t, vault, `
secrets: {backend: vault, vault: {address: "http://127.0.0.1:8200"}}
routes:
  - {name: pub, path_prefix: /pub, upstream: "http://127.0.0.1:9000", public: true}
`)
	code, _, errOut := runCmd(t, "", "serve", "-config", bad)
	if code != exitFail || !strings.Contains(errOut, bad+": routes: ") {
		t.Errorf("bad: exit %d, %q", code, errOut)
	}
	t.Setenv("VAULT_TOKEN", "")
	code, _, errOut = runCmd(t, "", "serve", "-config", vault)
	if code != exitFail || !strings.Contains(errOut, "token_file or VAULT_TOKEN") {
		t.Errorf("vault: exit %d, %q", code, errOut)
	}
}

// A soap route whose trust secret never loaded answers 503; serve keeps running.
func TestServeMissingSecretIs503(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wsgate.yaml")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("upstream reached: %s", r.URL)
	}))
	defer upstream.Close()
	writeTestFile(t, path, `
listen: 127.0.0.1:0
log: {level: error}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: orders, path_prefix: /soap/orders, upstream: "`+upstream.URL+`", soap: {trust: wsgate/trust/none}}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan int, 1)
	stderr := &syncBuffer{}
	go func() { done <- serveFile(ctx, path, stderr, func(a, _ string) { ready <- a }) }()
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, stderr)
	}
	d := &runningDemo{base: "http://" + addr}
	// Any parseable envelope reaches trust; the verifier needs a signature first.
	demoDir := t.TempDir()
	if _, err := ensureDemoKeys(demoDir); err != nil {
		t.Fatal(err)
	}
	signCfg := filepath.Join(demoDir, "wsgate.yaml")
	writeTestFile(t, signCfg, demoConfigFor("127.0.0.1:8080", "http://127.0.0.1:1", "http://127.0.0.1:2", "127.0.0.1:9090"))
	writeTestFile(t, filepath.Join(demoDir, "request.xml"), demoSample)
	signed := (&runningDemo{dir: demoDir}).signed(t)
	res, body := d.post(t, "/soap/orders", signed)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "service unavailable") {
		t.Errorf("status %d: %s", res.StatusCode, body)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("serve exit %d", code)
	}
}

func TestUsageAndVersion(t *testing.T) {
	if code, _, _ := runCmd(t, ""); code != exitUsage {
		t.Errorf("no args: exit %d", code)
	}
	if code, _, errOut := runCmd(t, "", "frobnicate"); code != exitUsage || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown: exit %d %q", code, errOut)
	}
	code, out, _ := runCmd(t, "", "version")
	if code != exitOK || !strings.HasPrefix(out, "wsgate ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: exit %d %q", code, out)
	}
	if code, _, _ := runCmd(t, "", "sign", "-config", "x"); code != exitUsage {
		t.Errorf("sign without -route: exit %d", code)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTestFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
