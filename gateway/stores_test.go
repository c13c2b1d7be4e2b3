package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsgate/internal/testclock"
)

// goldenAt is the instant the testdata/wssec golden messages are valid at.
var goldenAt = time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)

// soapProcess builds a process serving one soap route that trusts the
// golden test PKI, with the config file at dir/wsgate.yaml (for reloads).
func soapProcess(t *testing.T, replay string) (*Gateway, http.Handler, *recordingUpstream, string) {
	t.Helper()
	dir := t.TempDir()
	up := newRecordingUpstream(t)
	trust, err := os.ReadFile("../testdata/pki/trust.pem")
	if err != nil {
		t.Fatal(err)
	}
	writeSecretJSON(t, dir, "wsgate/trust/partners", map[string]string{"certificates": string(trust)})
	g := newTestGateway(t, dir, `
log: {level: info}
secrets: {backend: file, file: {dir: secrets}}
replay: `+replay+`
routes:
  - {name: orders, path_prefix: /soap/orders, upstream: "`+up.URL+`", soap: {trust: wsgate/trust/partners}}
`, testclock.New(goldenAt), &syncBuffer{})
	_ = g.Refresh(t.Context())
	return g, g.Handler(), up, filepath.Join(dir, "wsgate.yaml")
}

func postGolden(t *testing.T, h http.Handler, name string) *httptest.ResponseRecorder {
	t.Helper()
	msg, err := os.ReadFile(filepath.Join("../testdata/wssec", name))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/soap/orders", bytes.NewReader(msg))
	r.Header.Set("Content-Type", "text/xml; charset=utf-8")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// The memory replay cache survives a SIGHUP reload: a message accepted
// before it is a replay after it.
func TestReplayCacheSurvivesReload(t *testing.T) {
	p, front, up, _ := soapProcess(t, "{store: memory}")
	if w := postGolden(t, front, "valid-soap11-rsa.xml"); w.Code != http.StatusOK {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	old := p.current()
	if err := reloadFile(t, p); err != nil {
		t.Fatal(err)
	}
	if p.current() == old {
		t.Fatal("reload did not swap the gateway")
	}
	w := postGolden(t, front, "valid-soap11-rsa.xml")
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "InvalidSecurity") || up.hits.Load() != 1 {
		t.Errorf("replay after reload: %d %s (upstream hits %d)", w.Code, w.Body, up.hits.Load())
	}
}

// With replay.store: redis and Redis unreachable, the replay cache fails
// closed: a valid message gets 503 and never reaches the upstream, and
// /readyz reports the store down.
func TestRedisDownFailsClosed(t *testing.T) {
	p, front, up, _ := soapProcess(t, `{store: redis, redis: {address: "127.0.0.1:1"}}`)
	w := postGolden(t, front, "valid-soap11-rsa.xml")
	if w.Code != http.StatusServiceUnavailable || up.hits.Load() != 0 {
		t.Errorf("redis down: %d %s (upstream hits %d)", w.Code, w.Body, up.hits.Load())
	}
	rec := httptest.NewRecorder()
	p.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var st readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || st.Ready || st.Replay.Store != "redis" || st.Replay.OK || st.Replay.Error == "" {
		t.Errorf("/readyz: %d %+v", rec.Code, st.Replay)
	}
}
