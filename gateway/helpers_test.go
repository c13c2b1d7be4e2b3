package gateway

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"wsgate/config"
	"wsgate/internal/gatewaytest"
	"wsgate/internal/pki"
	"wsgate/internal/testclock"
)

func TestMain(m *testing.M) {
	// gin decides its mode at init, before the test flags exist; keep its
	// debug banner out of the test output.
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

type syncBuffer = gatewaytest.Buffer

// loadTestConfig loads and validates the config file at path, failing the
// test with every problem.
func loadTestConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(data)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// newTestGateway writes yaml as DIR/wsgate.yaml, loads it like serve does and
// builds the gateway with clk, logging JSON to logs.
func newTestGateway(t *testing.T, dir, yaml string, clk *testclock.Clock, logs *syncBuffer) *Gateway {
	t.Helper()
	path := filepath.Join(dir, "wsgate.yaml")
	writeTestFile(t, path, yaml)
	cfg := loadTestConfig(t, path)
	g, err := New(cfg, Deps{Logger: testLogger(cfg.Log, logs), Now: clk.Now, BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// newGatewayErr writes yaml as dir/wsgate.yaml, loads it and returns the
// error New gives building it (for configs that must fail the build).
func newGatewayErr(t *testing.T, dir, yaml string) error {
	t.Helper()
	path := filepath.Join(dir, "wsgate.yaml")
	writeTestFile(t, path, yaml)
	cfg := loadTestConfig(t, path)
	_, err := New(cfg, Deps{Logger: testLogger(cfg.Log, &syncBuffer{}), Now: testclockNow().Now, BaseDir: dir})
	return err
}

// serveReq runs one request through the gateway's front door.
func serveReq(g *Gateway, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	g.Handler().ServeHTTP(w, r)
	return w
}

// reloadFile re-reads the gateway's config file (dir/wsgate.yaml) and reloads it.
func reloadFile(t *testing.T, g *Gateway) error {
	t.Helper()
	return g.Reload(t.Context(), loadTestConfig(t, filepath.Join(g.baseDir, "wsgate.yaml")))
}

func writeTestFile(t *testing.T, name, content string) {
	t.Helper()
	gatewaytest.WriteFile(t, name, []byte(content))
}

// writeSecretJSON writes a file-backend secret under dir/secrets.
func writeSecretJSON(t *testing.T, dir, path string, fields map[string]string) {
	t.Helper()
	gatewaytest.WriteSecret(t, filepath.Join(dir, "secrets"), path, fields)
}

func mustIssue(t *testing.T, opts pki.Options, parent *pki.Identity) *pki.Identity {
	t.Helper()
	id, err := pki.Issuer{}.Issue(opts, parent)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// identityFields is the certificate + private_key secret of id (chain: id, then parents).
func identityFields(t *testing.T, id *pki.Identity, parents ...*x509.Certificate) map[string]string {
	t.Helper()
	key, err := pki.KeyPEM(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"certificate": string(pki.CertPEM(append([]*x509.Certificate{id.Cert}, parents...)...)),
		"private_key": string(key),
	}
}

// logRecords are the JSON log records in logs whose msg is msg.
func logRecords(logs *syncBuffer, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// testLogger is the logger config.log asks for (JSON unless text), writing to w.
func testLogger(l config.Log, w io.Writer) *slog.Logger {
	lv := &slog.LevelVar{}
	SetLevel(lv, l.Level)
	opts := &slog.HandlerOptions{Level: lv}
	if l.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// testclockNow is a settable clock starting at the real now.
func testclockNow() *testclock.Clock { return testclock.New(time.Now()) }
