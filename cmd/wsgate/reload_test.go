package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"wsgate/internal/testclock"
)

// jwksFields is a jwks secret publishing the public halves of keys by kid.
func jwksFields(t *testing.T, keys map[string]any) map[string]string {
	t.Helper()
	var set jose.JSONWebKeySet
	for kid, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"jwks": string(b)}
}

// namedUpstream answers with its name, so a test sees where a route points.
func namedUpstream(t *testing.T, name string, delay time.Duration) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

// hangup sends SIGHUP to this process (the running serve reloads) and
// waits for the reload's verdict in the log.
func hangup(t *testing.T, gw *servedGateway) string {
	t.Helper()
	count := func() int {
		s := gw.logs.String()
		return strings.Count(s, `"configuration reloaded"`) + strings.Count(s, `"reload refused`)
	}
	before := count()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for count() == before {
		if time.Now().After(deadline) {
			t.Fatalf("no reload verdict: %s", gw.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(gw.logs.String()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], `"configuration reloaded"`) || strings.Contains(lines[i], `"reload refused`) {
			return lines[i]
		}
	}
	return ""
}

// SIGHUP rotates config and secrets while a load loop runs on loopback:
// the new routes, upstreams and keys apply at once, bad new configs
// (invalid, or naming a secret that cannot be loaded) are refused with
// their reasons while the old one keeps serving, and not one request of
// the loop fails. SIGTERM then lets an in-flight request finish.
func TestSIGHUPReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	a := namedUpstream(t, "A", 0)
	b := namedUpstream(t, "B", 0)
	slow := namedUpstream(t, "slow", 400*time.Millisecond)
	k1, k2 := newP256(t), newP256(t)
	clk := testclock.New(time.Now())
	writeSecretJSON(t, dir, "wsgate/jwks/orders", jwksFields(t, map[string]any{"k1": &k1.PublicKey}))

	cfgPath := filepath.Join(dir, "wsgate.yaml")
	config := func(pubUpstream, extra string) string {
		return fmt.Sprintf(`
listen: 127.0.0.1:0
log: {level: info}
secrets: {backend: file, file: {dir: secrets}, refresh_interval: 1h}
routes:
  - {name: pub, path_prefix: /pub, upstream: %q, public: true}
  - {name: slow, path_prefix: /slow, upstream: %q, public: true}
  - name: api
    path_prefix: /api
    upstream: %q
    oauth: {issuer: %q, audience: [%s], jwks_secret: wsgate/jwks/orders, algorithms: [ES256]}
%s`, pubUpstream, slow.URL, a.URL, testIssuer, testAudience, extra)
	}
	writeTestFile(t, cfgPath, config(a.URL, ""))
	gw := startServe(t, cfgPath)
	base := "http://" + gw.addr
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path, token string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body), nil
	}
	tok1 := mintJWT(t, jose.ES256, k1, "k1", clk, nil)
	tok2 := mintJWT(t, jose.ES256, k2, "k2", clk, nil)

	// The load loop: 4 workers, pub and api alternately, until stopped.
	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				path, token := "/pub/x", ""
				if (i+w)%2 == 1 {
					path, token = "/api/x", tok1
				}
				code, _, err := get(path, token)
				sent.Add(1)
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s: %d %v", path, code, err))
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	waitSent := func(n int64) {
		deadline := time.Now().Add(10 * time.Second)
		for target := sent.Load() + n; sent.Load() < target; {
			if time.Now().After(deadline) {
				t.Fatal("the load loop stalled")
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitSent(50)

	if code, _, _ := get("/api/x", tok2); code != http.StatusUnauthorized {
		t.Errorf("k2 before rotation: %d", code)
	}

	// 1. Rotate: pub moves to B, a route is added, k2 joins the key set.
	writeSecretJSON(t, dir, "wsgate/jwks/orders", jwksFields(t, map[string]any{"k1": &k1.PublicKey, "k2": &k2.PublicKey}))
	writeTestFile(t, cfgPath, config(b.URL, fmt.Sprintf("  - {name: pub2, path_prefix: /pub2, upstream: %q, public: true}\n", b.URL)))
	if v := hangup(t, gw); !strings.Contains(v, "configuration reloaded") {
		t.Fatalf("reload 1: %s", v)
	}
	for _, c := range []struct{ path, token, want string }{
		{"/pub/x", "", "B"}, {"/pub2/x", "", "B"}, {"/api/x", tok2, "A"},
	} {
		if code, body, err := get(c.path, c.token); code != http.StatusOK || body != c.want {
			t.Errorf("after reload 1, %s: %d %q %v", c.path, code, body, err)
		}
	}
	waitSent(50)

	// 2. An invalid config is refused, with its reasons; B keeps serving.
	writeTestFile(t, cfgPath, config(b.URL, "  - {name: BAD NAME, path_prefix: nope, public: true}\n"))
	v := hangup(t, gw)
	if !strings.Contains(v, "reload refused") || !strings.Contains(v, "routes[3].name") || !strings.Contains(v, "routes[3].path_prefix") {
		t.Errorf("reload 2: %s", v)
	}
	waitSent(50)

	// 3. A config whose new secret cannot be loaded is refused as a whole.
	writeTestFile(t, cfgPath, config(a.URL,
		"  - {name: orders, path_prefix: /soap/orders, upstream: \"http://127.0.0.1:1\", soap: {trust: wsgate/trust/absent}}\n"))
	if v := hangup(t, gw); !strings.Contains(v, "reload refused") || !strings.Contains(v, "wsgate/trust/absent") {
		t.Errorf("reload 3: %s", v)
	}
	if code, body, _ := get("/pub/x", ""); code != http.StatusOK || body != "B" {
		t.Errorf("after refused reloads: %d %q", code, body)
	}
	if code, _, _ := get("/pub2/x", ""); code != http.StatusOK {
		t.Errorf("pub2 after refused reloads: %d", code)
	}
	waitSent(50)

	stopLoad()
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %v", n, sent.Load(), firstFailure.Load())
	}

	// SIGTERM (ctx cancel): a request in flight still completes.
	inflight := make(chan string, 1)
	go func() {
		code, body, err := get("/slow/x", "")
		inflight <- fmt.Sprintf("%d %s %v", code, body, err)
	}()
	time.Sleep(100 * time.Millisecond)
	if code := gw.stop(); code != exitOK {
		t.Errorf("serve exit %d", code)
	}
	if got := <-inflight; got != "200 slow <nil>" {
		t.Errorf("in-flight request during shutdown: %s", got)
	}
	if strings.Contains(gw.logs.String(), tok1) {
		t.Error("a token reached the log")
	}
}
