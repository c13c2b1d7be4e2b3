package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsgate/proxy"
)

// instance is one upstream instance under load: it records every request
// body it received, and takes a moment to answer so that requests are in
// flight on it when it dies.
type instance struct {
	srv  *httptest.Server
	name string
	mu   sync.Mutex
	got  map[string]int // body (POST) or path (GET) -> times received
}

func newInstance(t *testing.T, name string) *instance {
	in := &instance{name: name, got: map[string]int{}}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		key := string(b)
		if r.Method == http.MethodGet {
			key = r.URL.RequestURI()
		}
		in.mu.Lock()
		in.got[key]++
		in.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(in.srv.Close)
	return in
}

// kill stops the instance as a crash would: no new connections, and every
// open one (in flight or idle) cut.
func (in *instance) kill() {
	in.srv.Listener.Close()
	in.srv.CloseClientConnections()
}

func (in *instance) received() map[string]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[string]int, len(in.got))
	for k, v := range in.got {
		out[k] = v
	}
	return out
}

// An upstream killed under load: GETs never fail (one in flight on it goes
// to another instance), no POST is sent twice, only POSTs in flight on it
// at the moment it died may fail, none after; /readyz and /metrics show it
// ejected while the route stays ready.
func TestUpstreamKilledMidLoad(t *testing.T) {
	a, b, c := newInstance(t, "a"), newInstance(t, "b"), newInstance(t, "c")
	logs := &syncBuffer{}
	g := newTestGateway(t, t.TempDir(), fmt.Sprintf(`
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: pool
    path_prefix: /pool
    public: true
    upstreams: [%s/svc, %s/svc, %s/svc]
    passive_health: {failures: 2, eject_for: 1h}
`, a.srv.URL, b.srv.URL, c.srv.URL), testclockNow(), logs)
	front := httptest.NewServer(g.Handler())
	t.Cleanup(front.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	const workers = 8
	var (
		seq        atomic.Int64
		killedAt   atomic.Int64 // sequence number when b died
		mu         sync.Mutex
		getFails   []string
		postFails  []int64 // sequence numbers of failed POSTs
		postsAfter int     // POSTs started after b died
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := seq.Add(1)
				dead := killedAt.Load() != 0
				var res *http.Response
				var err error
				if i%2 == w%2 {
					res, err = client.Get(fmt.Sprintf("%s/pool/item/%d", front.URL, n))
				} else {
					res, err = client.Post(front.URL+"/pool/order", "text/plain", strings.NewReader(fmt.Sprintf("order-%d", n)))
				}
				code := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					code = res.StatusCode
				}
				mu.Lock()
				switch {
				case i%2 == w%2 && code != http.StatusOK:
					getFails = append(getFails, fmt.Sprintf("GET %d: %d %v", n, code, err))
				case i%2 != w%2 && code != http.StatusOK:
					postFails = append(postFails, n)
				}
				if i%2 != w%2 && dead {
					postsAfter++
				}
				mu.Unlock()
			}
		})
	}
	waitFor := func(n int64) {
		for seq.Load() < n {
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(300)
	b.kill()
	killedAt.Store(seq.Load())
	waitFor(killedAt.Load() + 600)
	close(stop)
	wg.Wait()

	t.Logf("b died after request %d; %d POSTs failed (in flight on b), %d POSTs after", killedAt.Load(), len(postFails), postsAfter)
	if len(getFails) > 0 {
		t.Errorf("%d GETs failed: %q", len(getFails), getFails)
	}
	// Only a POST in flight on b when it died may fail: it may have been
	// processed, so it is not sent again.
	for _, n := range postFails {
		if n > killedAt.Load()+workers {
			t.Errorf("POST %d (b died at %d) failed", n, killedAt.Load())
		}
	}
	if len(postFails) > workers {
		t.Errorf("%d POSTs failed, more than were in flight", len(postFails))
	}
	if postsAfter < 100 {
		t.Errorf("only %d POSTs after the kill: the load did not go on", postsAfter)
	}
	// No body reached the instances twice, in total.
	seen := map[string]int{}
	for _, in := range []*instance{a, b, c} {
		for k, v := range in.received() {
			seen[k] += v
		}
	}
	for k, v := range seen {
		if strings.HasPrefix(k, "order-") && v > 1 {
			t.Errorf("%s received %d times", k, v)
		}
	}
	if n := len(a.received()) + len(c.received()); n < 600 {
		t.Errorf("a and c received %d requests in all", n)
	}

	// /readyz: b ejected, the others healthy, the route still ready.
	rec := httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var st readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("/readyz %d %s", rec.Code, rec.Body)
	}
	states := map[string]string{}
	for _, rs := range st.Routes {
		for _, u := range rs.Upstreams {
			states[u.URL] = u.State
			if u.URL == b.srv.URL && (u.Healthy || u.Ejections != 1 || u.LastError == "") {
				t.Errorf("b = %+v", u)
			}
		}
	}
	want := map[string]string{a.srv.URL: proxy.StateHealthy, b.srv.URL: proxy.StateEjected, c.srv.URL: proxy.StateHealthy}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("upstream states = %v, want %v", states, want)
	}
	if !strings.Contains(logs.String(), `"msg":"upstream ejected"`) {
		t.Error("no log of the ejection")
	}
	rec = httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range []string{
		fmt.Sprintf(`wsgate_upstream_healthy{route="pool",upstream=%q} 0`, b.srv.URL),
		fmt.Sprintf(`wsgate_upstream_healthy{route="pool",upstream=%q} 1`, a.srv.URL),
		fmt.Sprintf(`wsgate_upstream_ejections_total{route="pool",upstream=%q} 1`, b.srv.URL),
	} {
		if !strings.Contains(rec.Body.String(), line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}

// health_check runs with the gateway: a failing probe shows in /readyz and
// keeps requests off the upstream; Close stops the probes.
func TestUpstreamHealthCheckServed(t *testing.T) {
	var aHealthy atomic.Bool
	mk := func(name string, ok func() bool) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && !ok() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	a := mk("a", aHealthy.Load)
	b := mk("b", func() bool { return true })
	g := newTestGateway(t, t.TempDir(), fmt.Sprintf(`
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: pool
    path_prefix: /pool
    public: true
    upstreams: [%s, %s]
    balance: least_requests
    health_check: {path: /healthz, interval: 1s}
`, a.URL, b.URL), testclockNow(), &syncBuffer{})
	g.Start(t.Context())
	t.Cleanup(g.Close)
	state := func() string {
		rec := httptest.NewRecorder()
		g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var st readiness
		_ = json.Unmarshal(rec.Body.Bytes(), &st)
		return st.Routes[0].Upstreams[0].State
	}
	deadline := time.Now().Add(10 * time.Second)
	for state() != proxy.StateUnhealthy && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := state(); s != proxy.StateUnhealthy {
		t.Fatalf("a = %s, want unhealthy", s)
	}
	for range 5 {
		w := serveReq(g, httptest.NewRequest(http.MethodGet, "/pool/x", nil))
		if w.Body.String() != "b" {
			t.Fatalf("request answered by %q", w.Body)
		}
	}
	aHealthy.Store(true)
	deadline = time.Now().Add(10 * time.Second)
	for state() != proxy.StateHealthy && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := state(); s != proxy.StateHealthy {
		t.Fatalf("a = %s after passing probes, want healthy", s)
	}
}
