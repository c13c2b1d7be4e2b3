package main

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"wsgate/internal/pki"
	"wsgate/internal/vaulttest"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/NAME, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestCheckConfigGolden runs check-config on the files in
// testdata/check-config and compares its stdout with the .golden files.
func TestCheckConfigGolden(t *testing.T) {
	tests := []struct {
		file string
		code int
	}{
		{"mistakes.yaml", exitFail}, // every kind of mistake, and a secrets.file.dir that is not there
		{"missing-dir.yaml", exitFail},
		{"ok.yaml", exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "check-config", tt.file)
			code, out, errOut := runCmd(t, "", "check-config", "-config", path)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			golden(t, filepath.Join("check-config", strings.TrimSuffix(tt.file, ".yaml")+".golden"), out)
		})
	}
}

// Five mistakes give five lines in one run.
func TestCheckConfigFiveMistakesOneRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "five.yaml")
	writeTestFile(t, path, `
listen: 127.0.0.1:8080
secrets: {backend: file, file: {dir: .}}
routes:
  - name: orders
    path_prefx: /soap/orders
    upstream: http://127.0.0.1:9001
    soap: {trust: wsgate/trust/partners, require_signed: body}
    rate_limit: {per: client_ip, rate: 10, burst: lots}
  - name: Billing
    path_prefix: /api
    upstream: http://127.0.0.1:9002
    public: true
    rate_limit: {per: route, rate: 10, burst: 10, kind: token}
`)
	code, out, _ := runCmd(t, "", "check-config", "-config", path)
	want := path + `: routes[0].path_prefx: unknown key; did you mean path_prefix? (line 6)
` + path + `: routes[0].soap.require_signed: want a list, got "body" (line 8)
` + path + `: routes[0].rate_limit.burst: want a whole number, got "lots" (line 9)
` + path + `: routes[1].name: must match [a-z0-9-]+ (line 10)
` + path + `: routes[1].rate_limit.kind: unknown key; valid here: per, rate, burst (line 14)
`
	if code != exitFail || out != want {
		t.Errorf("exit %d\n%s\nwant:\n%s", code, out, want)
	}
	for _, bad := range []string{"config.", "invalid YAML", "not found in type"} {
		if strings.Contains(out, bad) {
			t.Errorf("output says %q", bad)
		}
	}
}

// secretsFixture writes the secrets testdata/check-config/secrets.yaml
// names, good and bad, through put (a file or a Vault KV write).
func secretsFixture(t *testing.T, put func(path string, fields map[string]string)) {
	t.Helper()
	is := pki.Issuer{Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }}
	ca, err := is.Issue(pki.Options{CommonName: "test ca", IsCA: true, Key: pki.ECP256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := is.Issue(pki.Options{CommonName: "gateway", Key: pki.ECP256}, ca)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.KeyPEM(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, leafPEM := string(pki.CertPEM(ca.Cert)), string(pki.CertPEM(leaf.Cert, ca.Cert))
	put("wsgate/trust/partners", map[string]string{"certificates": caPEM})
	put("wsgate/trust/typo", map[string]string{"certificate": caPEM})
	put("wsgate/signing/nokey", map[string]string{"certificate": leafPEM})
	put("wsgate/signing/gateway", map[string]string{"certificate": leafPEM, "private_key": string(key)})
	put("wsgate/jwks/billing", map[string]string{"public_key": caPEM})
	put("wsgate/oauth/introspection", map[string]string{"client_id": "wsgate"})
}

// TestCheckConfigSecretsFile: -secrets against the file backend.
func TestCheckConfigSecretsFile(t *testing.T) {
	pkgDir := mustGetwd(t)
	dir := t.TempDir()
	secretsFixture(t, func(path string, fields map[string]string) {
		b, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, "secrets", path+".json")
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, name, string(b))
	})
	writeTestFile(t, filepath.Join(dir, "wsgate.yaml"), string(mustRead(t, "testdata/check-config/secrets.yaml")))
	t.Chdir(dir)

	code, out, errOut := runCmd(t, "", "check-config", "-config", "wsgate.yaml", "-secrets")
	if code != exitFail {
		t.Errorf("exit %d (stderr %q)", code, errOut)
	}
	t.Chdir(pkgDir)
	golden(t, filepath.Join("check-config", "secrets.golden"), out)

	// Without -secrets the same file is fine: secrets are only read on request.
	t.Chdir(dir)
	if code, out, _ := runCmd(t, "", "check-config", "-config", "wsgate.yaml"); code != exitOK || out != "wsgate.yaml: ok\n" {
		t.Errorf("without -secrets: exit %d %q", code, out)
	}
	// A secrets directory that is not there is reported once, not per secret.
	if err := os.Rename("secrets", "moved"); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, "", "check-config", "-config", "wsgate.yaml", "-secrets")
	want := "wsgate.yaml: secrets.file.dir: directory secrets does not exist (line 4)\n"
	if code != exitFail || out != want {
		t.Errorf("missing dir: exit %d %q, want %q", code, out, want)
	}
}

// TestCheckConfigSecretsVault: -secrets against a real Vault dev server's
// KV v2, with the same secrets and the same expected output as the file backend.
func TestCheckConfigSecretsVault(t *testing.T) {
	pkgDir := mustGetwd(t)
	srv, err := vaulttest.Start(vaulttest.Bin(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	root, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	secretsFixture(t, func(path string, fields map[string]string) {
		data := map[string]any{}
		for k, v := range fields {
			data[k] = v
		}
		if _, err := root.KVv2("secret").Put(t.Context(), path, data); err != nil {
			t.Fatal(err)
		}
	})
	doc := strings.Replace(string(mustRead(t, "testdata/check-config/secrets.yaml")),
		"secrets: {backend: file, file: {dir: secrets}}",
		`secrets: {backend: vault, vault: {address: "`+srv.Addr+`", kv_mount: secret}}`, 1)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "wsgate.yaml"), doc)
	t.Setenv("VAULT_TOKEN", srv.Token)
	t.Chdir(dir)
	code, out, errOut := runCmd(t, "", "check-config", "-config", "wsgate.yaml", "-secrets")
	if code != exitFail {
		t.Errorf("exit %d (stderr %q)", code, errOut)
	}
	t.Chdir(pkgDir)
	golden(t, filepath.Join("check-config", "secrets.golden"), out) // the same as the file backend's

	// A token Vault refuses is reported at each secret, and check-config fails.
	t.Setenv("VAULT_TOKEN", "not-a-token")
	t.Chdir(dir)
	code, out, _ = runCmd(t, "", "check-config", "-config", "wsgate.yaml", "-secrets")
	if code != exitFail || !strings.Contains(out, "wsgate.yaml: routes[0].soap.trust: ") || !strings.Contains(out, "permission denied") {
		t.Errorf("bad token: exit %d\n%s", code, out)
	}
	// Vault without a token is a problem of the secrets section.
	t.Setenv("VAULT_TOKEN", "")
	code, out, _ = runCmd(t, "", "check-config", "-config", "wsgate.yaml", "-secrets")
	if code != exitFail || !strings.HasPrefix(out, "wsgate.yaml: secrets.vault: ") {
		t.Errorf("no token: exit %d\n%s", code, out)
	}

	// A response-wrapped AppRole secret ID is not spent by a check.
	if err := srv.EnableAuth(t.Context(), "approle", "approle"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/wsgate", map[string]any{"token_policies": "default"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/wsgate/role-id")
	if err != nil {
		t.Fatal(err)
	}
	wrapper, err := root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	wrapper.SetToken(srv.Token)
	wrapper.SetWrappingLookupFunc(func(string, string) string { return "120s" })
	sid, err := wrapper.Logical().Write("auth/approle/role/wsgate/secret-id", nil)
	if err != nil || sid == nil || sid.WrapInfo == nil {
		t.Fatalf("wrapped secret-id: %v", err)
	}
	writeTestFile(t, "secret_id", sid.WrapInfo.Token+"\n")
	writeTestFile(t, "approle.yaml", strings.Replace(doc, "kv_mount: secret}",
		`kv_mount: secret, auth: {method: approle, role_id: "`+rid.Data["role_id"].(string)+`", secret_id_file: secret_id}}`, 1))
	code, out, _ = runCmd(t, "", "check-config", "-config", "approle.yaml", "-secrets")
	want := "approle.yaml: secrets.vault.auth.secret_id_file: holds a response-wrapped secret ID, which works once: " +
		"secrets not read (check with a plain secret ID or a token) (line 4)\n"
	if code != exitFail || out != want {
		t.Errorf("wrapped secret ID: exit %d %q, want %q", code, out, want)
	}
	if _, err := root.Logical().Write("sys/wrapping/lookup", map[string]any{"token": sid.WrapInfo.Token}); err != nil {
		t.Errorf("the check spent the wrapping token: %v", err)
	}
}

func TestCheckConfigExitCodes(t *testing.T) {
	ok := filepath.Join("testdata", "check-config", "ok.yaml")
	bad := filepath.Join("testdata", "check-config", "mistakes.yaml")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"ok", []string{"-config", ok}, exitOK},
		{"ok with -secrets (names none)", []string{"-config", ok, "-secrets"}, exitOK},
		{"problems", []string{"-config", bad}, exitFail},
		{"missing file", []string{"-config", "testdata/check-config/nope.yaml"}, exitFail},
		{"a directory", []string{"-config", "testdata"}, exitFail},
		{"no -config", nil, exitUsage},
		{"unknown flag", []string{"-config", ok, "-strict"}, exitUsage},
		{"stray argument", []string{"-config", ok, "extra"}, exitUsage},
		{"help", []string{"-h"}, exitOK},
		{"help after a flag", []string{"-config", ok, "--help"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "", append([]string{"check-config"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout %s\nstderr %s", code, tt.code, out, errOut)
			}
		})
	}
	code, out, _ := runCmd(t, "", "check-config", "-config", "testdata/check-config/nope.yaml")
	if want := "testdata/check-config/nope.yaml: cannot read the file: no such file or directory\n"; code != exitFail || out != want {
		t.Errorf("missing file: %q, want %q", out, want)
	}
}

// TestHelp: wsgate -h, wsgate help, wsgate help CMD and wsgate CMD -h print
// help on stdout and exit 0; a wrong command line still exits 2.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		code, out, errOut := runCmd(t, "", args...)
		if code != exitOK || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
		golden(t, "help/wsgate.golden", out)
	}
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "-h"}, {c.name, "--help"}, {"help", c.name}} {
			code, out, errOut := runCmd(t, "", args...)
			if code != exitOK || errOut != "" || !strings.HasPrefix(out, "usage: wsgate "+c.name) {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
			}
			if c.name == "check-config" {
				golden(t, "help/check-config.golden", out)
			}
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"help", "frobnicate"}, {"version", "-x"}, {"sign", "-config", "x"}} {
		if code, _, errOut := runCmd(t, "", args...); code != exitUsage || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 with a message", args, code, errOut)
		}
	}
	// A flag error prints the command's help to stderr, not stdout.
	code, out, errOut := runCmd(t, "", "check-config", "-bogus")
	if code != exitUsage || out != "" || !strings.Contains(errOut, "flag provided but not defined: -bogus") ||
		!strings.Contains(errOut, "usage: wsgate check-config") {
		t.Errorf("flag error: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestVersionFlag(t *testing.T) {
	_, want, _ := runCmd(t, "", "version")
	for _, args := range [][]string{{"--version"}, {"-version"}} {
		code, out, _ := runCmd(t, "", args...)
		if code != exitOK || out != want {
			t.Errorf("%v: exit %d %q, want %q", args, code, out, want)
		}
	}
	if strings.Contains(strings.SplitN(want, "\n", 2)[0], "(devel)") {
		t.Errorf("version headline says (devel): %q", want)
	}
}

// TestVersionStamp: the version is the release stamp, else Go's module
// version, else the VCS revision; never a bare (devel).
func TestVersionStamp(t *testing.T) {
	checkout := &debug.BuildInfo{
		GoVersion: "go1.26.0", Path: "wsgate/cmd/wsgate",
		Main: debug.Module{Path: "wsgate", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "2c314ad0e1f3b5d6c7a8f9e0d1c2b3a4f5e6d7c8"},
			{Key: "vcs.time", Value: "2026-12-04T21:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	pseudo := *checkout
	pseudo.Main.Version = "v0.0.0-20261204210000-2c314ad0e1f3+dirty"
	bare := &debug.BuildInfo{GoVersion: "go1.26.0", Path: "wsgate/cmd/wsgate", Main: debug.Module{Path: "wsgate", Version: "(devel)"}}
	tests := []struct {
		name             string
		ldVer, ldRev     string
		info             *debug.BuildInfo
		golden, headline string
	}{
		{"release", "v1.4.0", "2c314ad0e1f3b5d6c7a8f9e0d1c2b3a4f5e6d7c8", bare, "version/release.golden", "wsgate v1.4.0"},
		{"checkout", "", "", checkout, "version/checkout.golden", "wsgate devel-2c314ad0e1f3+modified"},
		{"checkout with module version", "", "", &pseudo, "", "wsgate v0.0.0-20261204210000-2c314ad0e1f3+dirty"},
		{"image built with a revision only", "", "2c314ad0e1f3b5d6c7a8f9e0d1c2b3a4f5e6d7c8", bare, "", "wsgate devel-2c314ad0e1f3"},
		{"nothing recorded", "", "", bare, "version/bare.golden",
			`wsgate devel (no version or VCS revision recorded: build from a git checkout, or with -ldflags "-X main.version=...")`},
		{"no build info", "", "", nil, "", `wsgate devel (no version or VCS revision recorded: build from a git checkout, or with -ldflags "-X main.version=...")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stampOf(tt.ldVer, tt.ldRev, tt.info, "go1.26.0", "linux/amd64")
			out := s.String()
			if got := strings.SplitN(out, "\n", 2)[0]; got != tt.headline {
				t.Errorf("headline %q, want %q", got, tt.headline)
			}
			if tt.golden != "" {
				golden(t, tt.golden, out)
			}
		})
	}
}

// TestVersionOfBuiltBinary builds wsgate from this checkout, as a user
// would, and checks that --version names the checkout's revision.
func TestVersionOfBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head := func() string {
		out, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil {
			t.Skipf("not a git checkout: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	before := head()
	bin := filepath.Join(t.TempDir(), "wsgate")
	// -buildvcs=true: Go's default (auto) in a checkout, spelled out because
	// a GOFLAGS=-buildvcs=false in the environment would turn it off.
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	after := head() // teammates may commit meanwhile
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "revision: "+before) && !strings.Contains(string(out), "revision: "+after) ||
		strings.HasPrefix(string(out), "wsgate (devel)") || strings.HasPrefix(string(out), "wsgate devel (") {
		t.Errorf("--version of a build at %s:\n%s", before, out)
	}

	// A release build: the linker stamps win.
	build = exec.Command("go", "build", "-buildvcs=false", "-o", bin, "-ldflags", "-X main.version=v9.9.9 -X main.revision=abc123", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "wsgate v9.9.9\nrevision: abc123\n") {
		t.Errorf("release build:\n%s", out)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
