package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsgate/internal/testclock"
)

// backend is one upstream instance that counts what it gets; how it
// answers a path is up to its handle function.
type backend struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []string // method path body, in arrival order
	hosts  []string
	handle func(w http.ResponseWriter, r *http.Request) bool // true: answered
}

func newBackend(t *testing.T, name string) *backend {
	b := &backend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, r.Method+" "+r.URL.RequestURI()+" "+string(body))
		b.hosts = append(b.hosts, r.Host)
		h := b.handle
		b.mu.Unlock()
		if h != nil && h(w, r) {
			return
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}

func (b *backend) setHandle(h func(w http.ResponseWriter, r *http.Request) bool) {
	b.mu.Lock()
	b.handle = h
	b.mu.Unlock()
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter, _ *http.Request) bool {
	if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
		c.Close()
	}
	return true
}

// deadURL is an http URL nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func newTestPool(t *testing.T, opts PoolOptions) *Pool {
	t.Helper()
	p, err := NewPool(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// do sends one request through the pool, as ReverseProxy would address it.
func do(t *testing.T, p *Pool, method, path, body string) (string, int, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.Target()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Body = io.NopCloser(strings.NewReader(body)) // a server request's body cannot be replayed
		req.GetBody = nil
	}
	res, err := p.RoundTrip(req)
	if err != nil {
		return "", 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b), res.StatusCode, nil
}

func TestPoolRoundRobin(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	p := newTestPool(t, PoolOptions{Upstreams: []string{a.srv.URL + "/svc", b.srv.URL + "/svc", c.srv.URL + "/svc"}})
	seen := map[string]int{}
	for range 30 {
		got, _, err := do(t, p, http.MethodGet, "/x?q=1", "")
		if err != nil {
			t.Fatal(err)
		}
		seen[got]++
	}
	if seen["a"] != 10 || seen["b"] != 10 || seen["c"] != 10 {
		t.Errorf("spread = %v, want 10 each", seen)
	}
	// Each upstream sees the request unchanged but for its own host.
	if a.got[0] != "GET /svc/x?q=1 " || a.hosts[0] != strings.TrimPrefix(a.srv.URL, "http://") ||
		b.hosts[0] != strings.TrimPrefix(b.srv.URL, "http://") {
		t.Errorf("a got %q host %q; b host %q", a.got[0], a.hosts[0], b.hosts[0])
	}
}

func TestPoolLeastRequests(t *testing.T) {
	slow, fast := newBackend(t, "slow"), newBackend(t, "fast")
	release := make(chan struct{})
	slow.setHandle(func(w http.ResponseWriter, r *http.Request) bool { <-release; return false })
	p := newTestPool(t, PoolOptions{Upstreams: []string{slow.srv.URL, fast.srv.URL}, Balance: LeastRequests})
	// Hold one request on slow; every later one goes to fast, which is idle.
	p.rr.Store(1) // ties go in turn: the next is slow
	held := make(chan string, 1)
	go func() {
		got, _, _ := do(t, p, http.MethodGet, "/held", "")
		held <- got
	}()
	for slow.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range 10 {
		if got, _, err := do(t, p, http.MethodGet, "/", ""); err != nil || got != "fast" {
			t.Fatalf("request %d went to %q (%v), want fast", i, got, err)
		}
	}
	if st := p.Status(); st[0].InFlight != 1 || st[1].InFlight != 0 {
		t.Errorf("in flight = %d, %d", st[0].InFlight, st[1].InFlight)
	}
	close(release)
	if got := <-held; got != "slow" {
		t.Errorf("held request answered by %q", got)
	}
	if st := p.Status(); st[0].InFlight != 0 {
		t.Errorf("in flight after the answer = %d", st[0].InFlight)
	}
}

// What is sent again, and where. The pool has a dead upstream first (never
// listening), then the two named ones.
func TestPoolFailover(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		body     string
		retries  int
		live     func(first, second *backend) // sets how the live upstreams answer
		wantErr  bool
		wantCode int
		// what each live upstream received
		wantFirst, wantSecond int
	}{
		{name: "POST to a dead upstream goes to a live one with its body", method: "POST", body: "<order/>",
			live: func(f, s *backend) {}, wantCode: 200, wantFirst: 1},
		{name: "POST dropped after it was sent is not sent again", method: "POST", body: "<order/>",
			live: func(f, s *backend) { f.setHandle(drop); s.setHandle(drop) }, wantErr: true, wantFirst: 1},
		{name: "GET dropped goes once to another upstream", method: "GET",
			live: func(f, s *backend) { f.setHandle(drop) }, wantCode: 200, wantFirst: 1, wantSecond: 1},
		{name: "GET dropped everywhere: no retries, two tries", method: "GET",
			live: func(f, s *backend) { f.setHandle(drop); s.setHandle(drop) }, wantErr: true, wantFirst: 1, wantSecond: 1},
		{name: "GET dropped everywhere with retries: 1 + failover + 2", method: "GET", retries: 2,
			live: func(f, s *backend) { f.setHandle(drop); s.setHandle(drop) }, wantErr: true, wantFirst: 2, wantSecond: 2},
		{name: "PUT with a body that was sent is not sent again", method: "PUT", body: "x",
			live: func(f, s *backend) { f.setHandle(drop) }, wantErr: true, wantFirst: 1},
		{name: "a 503 answer is returned, not retried", method: "GET",
			live: func(f, s *backend) {
				f.setHandle(func(w http.ResponseWriter, r *http.Request) bool { w.WriteHeader(503); return true })
			}, wantCode: 503, wantFirst: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, second := newBackend(t, "first"), newBackend(t, "second")
			tt.live(first, second)
			dead := deadURL(t)
			p := newTestPool(t, PoolOptions{Upstreams: []string{dead, first.srv.URL, second.srv.URL}, Retries: tt.retries})
			// Start every request at the dead upstream, so the order is known.
			p.rr.Store(uint64(len(p.eps)) - 1)
			got, code, err := do(t, p, tt.method, "/op", tt.body)
			if (err != nil) != tt.wantErr || (err == nil && code != tt.wantCode) {
				t.Fatalf("got %q %d %v, want error %v code %d", got, code, err, tt.wantErr, tt.wantCode)
			}
			if first.count() != tt.wantFirst || second.count() != tt.wantSecond {
				t.Errorf("first got %q, second got %q; want %d and %d", first.got, second.got, tt.wantFirst, tt.wantSecond)
			}
			if tt.body != "" && first.count() > 0 && first.got[0] != tt.method+" /op "+tt.body {
				t.Errorf("first received %q", first.got[0])
			}
		})
	}
}

// Passive health: failures in a row eject an upstream for eject_for; after
// it, one failure ejects it again and one success restores it.
func TestPoolPassiveHealth(t *testing.T) {
	clk := testclock.New(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	good, bad := newBackend(t, "good"), newBackend(t, "bad")
	var failing atomic.Bool
	failing.Store(true)
	bad.setHandle(func(w http.ResponseWriter, r *http.Request) bool {
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	p := newTestPool(t, PoolOptions{Upstreams: []string{good.srv.URL, bad.srv.URL}, EjectAfter: 2,
		EjectFor: 10 * time.Second, Now: clk.Now})
	for range 4 { // two reach bad: the second ejects it
		_, _, _ = do(t, p, http.MethodGet, "/", "")
	}
	st := p.Status()[1]
	if st.State != StateEjected || st.Healthy || st.Ejections != 1 || !st.EjectedUntil.Equal(clk.Now().Add(10*time.Second)) ||
		st.LastError != "502 Bad Gateway" || st.URL != bad.srv.URL {
		t.Fatalf("bad after two failures = %+v", st)
	}
	before := bad.count()
	for range 10 {
		if got, _, _ := do(t, p, http.MethodGet, "/", ""); got != "good" {
			t.Fatalf("an ejected upstream got a request")
		}
	}
	if bad.count() != before {
		t.Fatal("ejected upstream reached")
	}
	clk.Add(10 * time.Second)
	for range 2 { // back, on probation: its first failure ejects it again
		_, _, _ = do(t, p, http.MethodGet, "/", "")
	}
	if st := p.Status()[1]; st.State != StateEjected || st.Ejections != 2 {
		t.Fatalf("after probation failure = %+v", st)
	}
	clk.Add(10 * time.Second)
	failing.Store(false)
	for range 4 {
		_, _, _ = do(t, p, http.MethodGet, "/", "")
	}
	if st := p.Status()[1]; st.State != StateHealthy || st.Failures != 0 {
		t.Fatalf("after a success = %+v", st)
	}
	// Two failures are needed again, not one.
	failing.Store(true)
	p.rr.Store(0) // next pick: bad
	_, _, _ = do(t, p, http.MethodGet, "/", "")
	if st := p.Status()[1]; st.State != StateHealthy || st.Failures != 1 {
		t.Fatalf("one failure after recovery = %+v", st)
	}
}

// The client leaving says nothing about the upstream; the route's timeout does.
func TestPoolContextEnds(t *testing.T) {
	slow := newBackend(t, "slow")
	slow.setHandle(func(w http.ResponseWriter, r *http.Request) bool { <-r.Context().Done(); return true })
	other := newBackend(t, "other")
	p := newTestPool(t, PoolOptions{Upstreams: []string{slow.srv.URL, other.srv.URL}, EjectAfter: 1})
	for _, tc := range []struct {
		cause    error
		wantFail bool
	}{{nil, false}, {ErrUpstreamTimeout, true}} {
		ctx, cancel := context.WithCancelCause(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.Target()+"/", nil)
		p.rr.Store(1) // next pick: slow
		time.AfterFunc(50*time.Millisecond, func() { cancel(tc.cause) })
		if _, err := p.RoundTrip(req); err == nil {
			t.Fatal("no error")
		}
		if st := p.Status()[0]; (st.State == StateEjected) != tc.wantFail {
			t.Errorf("cause %v: state %s", tc.cause, st.State)
		}
		if other.count() != 0 {
			t.Errorf("cause %v: an ended request was sent again", tc.cause)
		}
	}
}

// While every upstream is out, requests go to all of them in turn, and an
// answer puts one back.
func TestPoolAllOut(t *testing.T) {
	clk := testclock.New(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	a, b := newBackend(t, "a"), newBackend(t, "b")
	fail := func(w http.ResponseWriter, r *http.Request) bool { w.WriteHeader(503); return true }
	a.setHandle(fail)
	b.setHandle(fail)
	p := newTestPool(t, PoolOptions{Upstreams: []string{a.srv.URL, b.srv.URL}, EjectAfter: 1, Now: clk.Now})
	p.rr.Store(1)
	_, _, _ = do(t, p, http.MethodGet, "/", "") // a out
	clk.Add(time.Second)
	_, _, _ = do(t, p, http.MethodGet, "/", "") // b out
	// Both out and still failing: the requests go to both, not piled on one.
	before := a.count() + b.count()
	for range 4 {
		if _, code, _ := do(t, p, http.MethodGet, "/", ""); code != http.StatusServiceUnavailable {
			t.Fatalf("all out: %d", code)
		}
	}
	if a.count()+b.count() != before+4 || a.count() != b.count() {
		t.Errorf("all out: a got %d, b got %d, want the same", a.count(), b.count())
	}
	// An answer puts the upstream that gave it back in rotation.
	a.setHandle(nil)
	p.rr.Store(1)
	if got, code, err := do(t, p, http.MethodGet, "/", ""); err != nil || code != 200 || got != "a" {
		t.Fatalf("all out: %q %d %v", got, code, err)
	}
	if st := p.Status(); st[0].State != StateHealthy || st[1].State != StateEjected {
		t.Errorf("after a's answer: %+v", st)
	}
}

// Active health: a failed probe takes an upstream out until one passes.
func TestPoolHealthCheck(t *testing.T) {
	clk := testclock.New(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	a, b := newBackend(t, "a"), newBackend(t, "b")
	var healthy atomic.Bool
	b.setHandle(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/healthz" && !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
		return false
	})
	p := newTestPool(t, PoolOptions{Upstreams: []string{a.srv.URL + "/base?k=secret", b.srv.URL + "/base?k=secret"}, Now: clk.Now,
		Check: &HealthCheck{Path: "/healthz", Interval: time.Hour, Timeout: time.Second}})
	p.Probe(context.Background())
	st := p.Status()
	if st[0].State != StateHealthy || st[1].State != StateUnhealthy || !st[1].CheckedAt.Equal(clk.Now()) ||
		st[1].LastError != "health check answered 500 Internal Server Error" || strings.Contains(fmt.Sprint(st), "secret") {
		t.Fatalf("status = %+v", st)
	}
	if b.got[0] != "GET /healthz " { // on the host, not under the upstream's path
		t.Errorf("probe = %q", b.got[0])
	}
	for range 6 {
		if got, _, _ := do(t, p, http.MethodGet, "/", ""); got != "a" {
			t.Fatalf("request went to the unhealthy upstream")
		}
	}
	healthy.Store(true)
	p.Probe(context.Background())
	seen := map[string]int{}
	for range 6 {
		got, _, _ := do(t, p, http.MethodGet, "/", "")
		seen[got]++
	}
	if seen["b"] != 3 {
		t.Errorf("after a passing probe: %v", seen)
	}
	// Run probes at once and stops with its context.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	healthy.Store(false)
	go func() { p.Run(ctx); close(done) }()
	for p.Status()[1].State != StateUnhealthy {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

func TestNewPoolRefuses(t *testing.T) {
	for _, opts := range []PoolOptions{
		{},
		{Upstreams: []string{"http://a/x", "http://b/y"}},
		{Upstreams: []string{"http://a/x", "https://b/x"}},
		{Upstreams: []string{"http://a/x", "http://A/x"}},
		{Upstreams: []string{"http://a/x"}, Balance: "random"},
		{Upstreams: []string{"ftp://a/x"}},
		{Upstreams: []string{"http://a/x"}, Check: &HealthCheck{Path: "healthz", Interval: time.Second, Timeout: time.Second}},
		{Upstreams: []string{"http://a/x"}, Transports: []http.RoundTripper{nil, nil}},
	} {
		if _, err := NewPool(opts); err == nil {
			t.Errorf("NewPool(%+v) accepted", opts)
		}
	}
}

// heldBody: a body no attempt read goes to the next one; one that was read
// does not; it is closed once, by the last attempt, never under it.
func TestHeldBody(t *testing.T) {
	rc := &closeCounter{Reader: bytes.NewReader([]byte("payload"))}
	b := &heldBody{rc: rc}
	first := b.attempt()
	_ = first.Close() // a transport that could not dial closes it
	if rc.closes != 0 || !b.untouched() {
		t.Fatalf("closes %d untouched %v", rc.closes, b.untouched())
	}
	second := b.attempt()
	got, _ := io.ReadAll(second)
	if string(got) != "payload" || b.untouched() {
		t.Fatalf("read %q untouched %v", got, b.untouched())
	}
	_ = first.Close()
	b.finish() // the second attempt's transport may still be writing: no close yet
	if rc.closes != 0 {
		t.Errorf("closes after finish = %d, want 0", rc.closes)
	}
	_ = second.Close()
	_ = second.Close()
	if rc.closes != 1 {
		t.Errorf("closes after the last attempt's close = %d, want 1", rc.closes)
	}
	if !(*heldBody)(nil).untouched() {
		t.Error("no body counts as untouched")
	}
}

type closeCounter struct {
	io.Reader
	closes int
}

func (c *closeCounter) Close() error { c.closes++; return nil }

// A body read into memory (GetBody set, as readSmallBody does) is had afresh
// for the next upstream after a failed dial, not wrapped.
func TestPoolReplayableBody(t *testing.T) {
	live := newBackend(t, "live")
	p := newTestPool(t, PoolOptions{Upstreams: []string{deadURL(t), live.srv.URL}})
	p.rr.Store(1) // next pick: the dead one
	req, err := http.NewRequest(http.MethodPost, p.Target()+"/op", strings.NewReader("<order/>"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if live.count() != 1 || live.got[0] != "POST /op <order/>" {
		t.Errorf("live got %q", live.got)
	}
}

// An answer to a request sent before the upstream was ejected (it was in
// flight when the others failed) does not bring it back.
func TestPoolLateAnswerKeepsEjection(t *testing.T) {
	clk := testclock.New(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	a, other := newBackend(t, "a"), newBackend(t, "other")
	release := make(chan struct{})
	var n atomic.Int32
	a.setHandle(func(w http.ResponseWriter, r *http.Request) bool {
		if n.Add(1) == 1 {
			<-release // the slow one: answers after the ejection
			return false
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	p := newTestPool(t, PoolOptions{Upstreams: []string{a.srv.URL, other.srv.URL}, EjectAfter: 1, Now: clk.Now})
	p.rr.Store(1) // next pick: a
	slow := make(chan int, 1)
	go func() { _, code, _ := do(t, p, http.MethodGet, "/slow", ""); slow <- code }()
	for a.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.rr.Store(1)
	if _, code, _ := do(t, p, http.MethodGet, "/fail", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("second request: %d", code)
	}
	if st := p.Status()[0]; st.State != StateEjected {
		t.Fatalf("a = %+v, want ejected", st)
	}
	close(release)
	if code := <-slow; code != http.StatusOK {
		t.Fatalf("slow request: %d", code)
	}
	if st := p.Status()[0]; st.State != StateEjected || st.Ejections != 1 {
		t.Errorf("a after a late answer = %+v, want still ejected", st)
	}
}
