package redisstore

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"wsgate/internal/testclock"
	"wsgate/redisstore/redistest"
)

// slowRate refills one token per 100 s: no refill happens during a test.
const slowRate = 0.01

func newTestLimiter(t *testing.T, addr, route string, rate float64, burst int, logs *syncBuffer) *Limiter {
	t.Helper()
	c := NewClient(addr)
	t.Cleanup(func() { c.Close() })
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	l, err := NewLimiter(c, "wsgate:", route, rate, burst, logger)
	if err != nil {
		t.Fatal(err)
	}
	l.Timeout = testTimeout
	return l
}

func TestLimiterSharedAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a := newTestLimiter(t, srv.Addr, "billing", slowRate, 3, nil)
	b := newTestLimiter(t, srv.Addr, "billing", slowRate, 3, nil)
	other := newTestLimiter(t, srv.Addr, "orders", slowRate, 3, nil)

	steps := []struct {
		name string
		l    *Limiter
		key  string
		ok   bool
	}{
		{"A 1", a, "sub:alice", true},
		{"B 2", b, "sub:alice", true},
		{"A 3", a, "sub:alice", true},
		{"B 4: the burst of 3 is spent in total", b, "sub:alice", false},
		{"A 5", a, "sub:alice", false},
		{"another key has its own bucket", b, "sub:bob", true},
		{"another route has its own bucket", other, "sub:alice", true},
	}
	for _, s := range steps {
		ok, retry := s.l.Allow(s.key)
		if ok != s.ok {
			t.Fatalf("%s: Allow = %v, want %v", s.name, ok, s.ok)
		}
		switch {
		case ok && retry != 0:
			t.Fatalf("%s: admitted with retryAfter %v", s.name, retry)
		case !ok && (retry < 90*time.Second || retry > 100*time.Second):
			t.Fatalf("%s: retryAfter %v, want up to 100s (one token per 100s)", s.name, retry)
		}
	}

	// The bucket is in Redis under the route's namespace, the caller's key hashed.
	k := a.Key("sub:alice")
	if !strings.HasPrefix(k, "wsgate:ratelimit:billing:") || strings.Contains(k, "alice") {
		t.Fatalf("key %q: want wsgate:ratelimit:billing:<sha256 hex>, no subject in clear", k)
	}
	c := NewClient(srv.Addr)
	t.Cleanup(func() { c.Close() })
	if n, err := c.Exists(context.Background(), "rate:"+k).Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS rate:%s = %d, %v; want 1", k, n, err)
	}
}

func TestLimiterRefills(t *testing.T) {
	srv := redistest.Start(t)
	a := newTestLimiter(t, srv.Addr, "fast", 20, 1, nil) // one token per 50 ms
	b := newTestLimiter(t, srv.Addr, "fast", 20, 1, nil)
	if ok, _ := a.Allow("route"); !ok {
		t.Fatal("first request refused")
	}
	ok, retry := b.Allow("route")
	if ok || retry <= 0 || retry > 50*time.Millisecond {
		t.Fatalf("second request: %v, %v; want refused with retryAfter in (0, 50ms]", ok, retry)
	}
	// Refill is judged by the Redis server's clock, so this waits for real.
	time.Sleep(retry + 20*time.Millisecond)
	if ok, retry := b.Allow("route"); !ok {
		t.Fatalf("after the refill: refused, retryAfter %v", retry)
	}
}

func TestLimiterFallsBackWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	logs := &syncBuffer{}
	l := newTestLimiter(t, srv.Addr, "billing", slowRate, 3, logs)
	clk := testclock.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	l.Now = clk.Now

	// Spend the shared bucket while Redis is up.
	for i := range 3 {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatalf("request %d refused with Redis up", i+1)
		}
	}
	if ok, _ := l.Allow("k"); ok {
		t.Fatal("4th request admitted with Redis up")
	}

	srv.Stop()
	// The fallback is a fresh per-replica bucket with the same rate and burst.
	want := []bool{true, true, true, false, false}
	for i, w := range want {
		start := time.Now()
		ok, retry := l.Allow("k")
		if ok != w {
			t.Fatalf("fallback request %d: Allow = %v, want %v", i+1, ok, w)
		}
		if !ok && retry <= 0 {
			t.Fatalf("fallback request %d refused without retryAfter", i+1)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("fallback request %d took %v", i+1, d)
		}
	}
	if n := strings.Count(logs.String(), "redis rate limiter unavailable"); n != 1 {
		t.Fatalf("outage logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `"route":"billing"`) {
		t.Fatalf("outage log does not name the route:\n%s", logs)
	}

	// Back on Redis once the retry interval has passed; recovery is logged once.
	srv.Restart()
	if ok, _ := l.Allow("other"); !ok { // still inside the retry interval: fallback, fresh key
		t.Fatal("fallback refused a fresh key")
	}
	if strings.Contains(logs.String(), "recovered") {
		t.Fatal("recovered before the retry interval passed")
	}
	clk.Add(DefaultRetryInterval)
	for i := range 3 { // Redis restarted empty: a fresh shared bucket
		if ok, _ := l.Allow("k"); !ok {
			t.Fatalf("request %d after recovery refused", i+1)
		}
	}
	if ok, _ := l.Allow("k"); ok {
		t.Fatal("4th request after recovery admitted")
	}
	if n := strings.Count(logs.String(), "redis rate limiter recovered"); n != 1 {
		t.Fatalf("recovery logged %d times, want once:\n%s", n, logs)
	}
	if n := strings.Count(logs.String(), "redis rate limiter unavailable"); n != 1 {
		t.Fatalf("outage logged %d times in total, want once:\n%s", n, logs)
	}
}

func TestLimiterHungRedisUsesFallbackQuickly(t *testing.T) {
	srv := redistest.Start(t)
	l := newTestLimiter(t, srv.Addr, "billing", slowRate, 2, &syncBuffer{})
	l.Timeout = 200 * time.Millisecond
	if ok, _ := l.Allow("warm-up"); !ok {
		t.Fatal("warm-up refused")
	}
	admin := NewClient(srv.Addr)
	t.Cleanup(func() { admin.Close() })
	// CLIENT PAUSE ALL holds every command, the limiter's script included.
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Do(context.Background(), "CLIENT", "UNPAUSE").Err() })
	start := time.Now()
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.Allow("k"); ok != want {
			t.Fatalf("request %d on a hung Redis: %v, want %v", i+1, ok, want)
		}
	}
	// One probe waits for the timeout; the others skip Redis until the retry interval.
	if d := time.Since(start); d > time.Second {
		t.Fatalf("3 requests took %v on a hung Redis", d)
	}
}

func TestNewLimiterRefusesBadLimits(t *testing.T) {
	c := NewClient("127.0.0.1:1")
	t.Cleanup(func() { c.Close() })
	cases := []struct {
		rate  float64
		burst int
	}{
		{0, 1}, {-1, 1}, {math.NaN(), 1}, {math.Inf(1), 1}, {1, 0}, {1, -1}, {1e12, 1},
	}
	for _, tc := range cases {
		if _, err := NewLimiter(c, "wsgate:", "r", tc.rate, tc.burst, nil); err == nil {
			t.Errorf("NewLimiter(rate %v, burst %d) accepted", tc.rate, tc.burst)
		}
	}
}
