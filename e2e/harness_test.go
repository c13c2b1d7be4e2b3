package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/internal/pki"
	"wsgate/wssec"
)

// requireTool returns the path of an executable: skipped locally when
// missing, failed under CI (CI must not skip).
func requireTool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found (%s): %v", name, hint, err)
		}
		t.Skipf("%s not found (%s); skipping", name, hint)
	}
	return p
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// wsgateBinary builds cmd/wsgate once per test binary run.
func wsgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "wsgate-e2e-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "wsgate")
		cmd := exec.Command("go", "build", "-o", builtBin, "wsgate/cmd/wsgate")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build wsgate/cmd/wsgate: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// syncBuffer collects a process's output from its copying goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLines returns the JSON log records written so far.
func (s *syncBuffer) logLines() []map[string]any {
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

// gateway is a running `wsgate serve` process.
type gateway struct {
	name      string
	base      string // http://host:port of the proxy listener
	adminBase string // http://host:port of the admin listener, if any
	logs      *syncBuffer
	cmd       *exec.Cmd
	done      chan struct{}
}

// startGateway runs `wsgate serve -config cfg` and waits until it logs its
// listeners (the config must use JSON logs and may use port 0). It is
// stopped with SIGTERM when the test ends.
func startGateway(t *testing.T, name, cfg string, env ...string) *gateway {
	t.Helper()
	bin := wsgateBinary(t)
	g := &gateway{name: name, logs: &syncBuffer{}, done: make(chan struct{})}
	g.cmd = exec.Command(bin, "serve", "-config", cfg)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	g.cmd.Env = append(os.Environ(), env...)
	g.cmd.SysProcAttr = procAttr()
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() { g.stop(t) })

	deadline := time.After(60 * time.Second)
	for {
		for _, rec := range g.logs.logLines() {
			addr, _ := rec["addr"].(string)
			switch rec["msg"] {
			case "wsgate listening":
				g.base = "http://" + addr
			case "admin listening":
				g.adminBase = "http://" + addr
			}
		}
		if g.base != "" && (g.adminBase != "" || !strings.Contains(mustReadString(t, cfg), "admin_listen:")) {
			return g
		}
		select {
		case <-g.done:
			t.Fatalf("wsgate %s exited before listening (%v):\n%s", name, g.cmd.ProcessState, g.logs)
		case <-deadline:
			t.Fatalf("wsgate %s did not start listening:\n%s", name, g.logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (g *gateway) stop(t *testing.T) {
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(40 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
		t.Errorf("wsgate %s did not stop on SIGTERM", g.name)
	}
	if t.Failed() {
		t.Logf("wsgate %s log:\n%s", g.name, g.logs)
	}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

func postSOAP(t *testing.T, url string, msg []byte) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	return do(t, req)
}

func getBearer(t *testing.T, url, token string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req)
}

// auditRecord finds the log record of a request by ID. The process's
// output reaches the buffer through a pipe, so a record written before the
// response may arrive after it: wait a little.
func (g *gateway) auditRecord(id string) map[string]any {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, rec := range g.logs.logLines() {
			if rec["request_id"] == id {
				return rec
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeSecret writes a file-backend secret: <dir>/<path>.json.
func writeSecret(t *testing.T, dir, path string, fields map[string]string) {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, filepath.FromSlash(path)+".json"), b)
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustReadString(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// partnerPKI is a demo CA and a partner identity it issued.
type partnerPKI struct {
	ca, partner *pki.Identity
}

func newPartnerPKI(t *testing.T) partnerPKI {
	t.Helper()
	var is pki.Issuer
	ca, err := is.Issue(pki.Options{CommonName: "e2e CA", IsCA: true, Key: pki.ECP256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	partner, err := is.Issue(pki.Options{CommonName: "e2e partner", Key: pki.ECP256}, ca)
	if err != nil {
		t.Fatal(err)
	}
	return partnerPKI{ca: ca, partner: partner}
}

// sampleEnvelope is the SOAP 1.1 request the tests sign.
const sampleEnvelope = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/>` +
	`<soap:Body><echo:Hello xmlns:echo="urn:wsgate:demo:echo"><echo:Name>World</echo:Name></echo:Hello></soap:Body></soap:Envelope>`

// signEnvelope signs sampleEnvelope now (the gateways run on the real clock).
func signEnvelope(t *testing.T, id *pki.Identity) []byte {
	t.Helper()
	return signMessage(t, id, []byte(sampleEnvelope))
}

// signMessage signs env with id now.
func signMessage(t *testing.T, id *pki.Identity, env []byte) []byte {
	t.Helper()
	s := &wssec.Signer{Chain: []*x509.Certificate{id.Cert}, Key: id.Key}
	msg, err := s.SignBytes(env, wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// newHMACSecret is a base64 HS256 key, as the `secret` field holds it.
func newHMACSecret(t *testing.T) (raw []byte, b64 string) {
	t.Helper()
	raw = make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return raw, base64.StdEncoding.EncodeToString(raw)
}

// mintHS256 mints a bearer token valid for ten minutes.
func mintHS256(t *testing.T, key []byte, issuer, audience, subject string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer:   issuer,
		Audience: jwt.Audience{audience},
		Subject:  subject,
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(10 * time.Minute)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
