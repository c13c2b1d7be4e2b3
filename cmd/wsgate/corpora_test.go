package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// corpusDir holds signed requests made by real WS-Security stacks (see its
// README): CXF and Metro (SOAP 1.1) and Axis2/Rampart (SOAP 1.2), RSA-SHA1,
// Body only, signer referenced by X509IssuerSerial. Copied into the repo so
// the tests do not depend on anything outside it.
const corpusDir = "../../testdata/corpora/rub-nds"

// corpusAt is inside the signer certificate's validity (2016-07-26..2016-10-24).
const corpusAt = "2016-10-04T12:00:00Z"

var corpusMessages = []struct {
	file, soapNS string
}{
	{"CXF-Sign.xml", "http://schemas.xmlsoap.org/soap/envelope/"},
	{"Axis2-Sign.xml", "http://www.w3.org/2003/05/soap-envelope"},
	{"Metro-Sign.xml", "http://schemas.xmlsoap.org/soap/envelope/"},
}

// writeCorpusConfig writes a config whose route "corpus" pins client-2016.pem
// and requires only a signed Body, as the corpus messages have no Timestamp.
func writeCorpusConfig(t *testing.T, allowSHA1 bool) string {
	t.Helper()
	dir := t.TempDir()
	pem, err := os.ReadFile(filepath.Join(corpusDir, "client-2016.pem"))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := json.Marshal(map[string]string{"certificates": string(pem)})
	if err != nil {
		t.Fatal(err)
	}
	secretsDir := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(filepath.Join(secretsDir, "corpus"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secretsDir, "corpus", "trust.json"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	// verify never binds the listeners, so the default addresses are fine.
	cfg := fmt.Sprintf(`secrets:
  backend: file
  file:
    dir: %q
routes:
  - name: corpus
    path_prefix: /soap/corpus
    upstream: http://127.0.0.1:9/ws
    soap:
      trust: corpus/trust
      require_signed: [body]
      algorithms: {allow_sha1: %t}
`, secretsDir, allowSHA1)
	path := filepath.Join(dir, "wsgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tamperCorpus changes one byte of the Body's operation name.
func tamperCorpus(t *testing.T, msg []byte) []byte {
	t.Helper()
	const op = "getAdminToken"
	if n := bytes.Count(msg, []byte(op)); n != 1 {
		t.Fatalf("corpus message carries %q %d times, want 1", op, n)
	}
	return bytes.Replace(msg, []byte(op), []byte("getAdminTokeN"), 1)
}

func TestVerifyCorpora(t *testing.T) {
	cfgSHA1 := writeCorpusConfig(t, true)
	cfgNoSHA1 := writeCorpusConfig(t, false)
	tests := []struct {
		name     string
		cfg      string
		at       string
		tamper   bool
		wantCode int
		// wantFault is the WS-Security fault code (wssec.FaultCode) verify
		// names after FAIL, so each rejection is shown to be for its reason.
		wantFault string
	}{
		{name: "valid", cfg: cfgSHA1, at: corpusAt, wantCode: 0},
		{name: "sha1 not allowed", cfg: cfgNoSHA1, at: corpusAt, wantCode: 1, wantFault: "UnsupportedAlgorithm"},
		{name: "certificate expired", cfg: cfgSHA1, at: "2026-10-04T12:00:00Z", wantCode: 1, wantFault: "InvalidSecurityToken"},
		{name: "body tampered", cfg: cfgSHA1, at: corpusAt, tamper: true, wantCode: 1, wantFault: "FailedCheck"},
	}
	for _, m := range corpusMessages {
		msg, err := os.ReadFile(filepath.Join(corpusDir, m.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range tests {
			t.Run(m.file+"/"+tc.name, func(t *testing.T) {
				in := filepath.Join(corpusDir, m.file)
				if tc.tamper {
					in = filepath.Join(t.TempDir(), m.file)
					if err := os.WriteFile(in, tamperCorpus(t, msg), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				var stdout, stderr bytes.Buffer
				code := run(t.Context(), []string{"verify", "-config", tc.cfg, "-route", "corpus", "-in", in, "-at", tc.at},
					strings.NewReader(""), &stdout, &stderr)
				if code != tc.wantCode {
					t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout.String(), stderr.String())
				}
				out := strings.TrimSpace(stdout.String())
				if tc.wantCode == 0 {
					if out != "OK signer=CN=client" {
						t.Errorf("stdout = %q, want %q", out, "OK signer=CN=client")
					}
				} else if f := strings.Fields(out); len(f) < 2 || f[0] != "FAIL" || strings.TrimSuffix(f[1], ":") != tc.wantFault {
					t.Errorf("stdout = %q, want FAIL %s: <reason>", out, tc.wantFault)
				}
			})
		}
	}
}

// TestCorpusSoundWithXmlsec1 checks the corpus itself with xmlsec1, the
// README's command, so a wsgate failure above cannot be blamed on the data.
func TestCorpusSoundWithXmlsec1(t *testing.T) {
	xmlsec1, err := exec.LookPath("xmlsec1")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("xmlsec1 not found (%v) and CI is set; install with: apt-get install -y xmlsec1", err)
		}
		t.Skipf("xmlsec1 not found (%v); install with: apt-get install -y xmlsec1", err)
	}
	for _, m := range corpusMessages {
		t.Run(m.file, func(t *testing.T) {
			out, err := exec.Command(xmlsec1, "--verify",
				"--pubkey-cert-pem", filepath.Join(corpusDir, "client-2016.pem"),
				"--id-attr:Id", m.soapNS+":Body",
				filepath.Join(corpusDir, m.file)).CombinedOutput()
			if err != nil {
				t.Fatalf("xmlsec1 --verify: %v\n%s", err, out)
			}
			if !bytes.HasPrefix(out, []byte("OK")) {
				t.Errorf("xmlsec1 --verify output does not start with OK:\n%s", out)
			}
		})
	}
}
