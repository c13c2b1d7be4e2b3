package redisstore

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wsgate/internal/gatewaytest"
	"wsgate/internal/pki"
	"wsgate/internal/ratelimit"
	"wsgate/internal/testclock"
	"wsgate/redisstore/redistest"
	"wsgate/wssec"
)

// The package's types satisfy the interfaces the gateway consumes.
var (
	_ wssec.ReplayCache = (*ReplayCache)(nil)
	_ ratelimit.Limiter = (*Limiter)(nil)
)

// syncBuffer collects log output from concurrent writers.
type syncBuffer = gatewaytest.Buffer

// testTimeout replaces DefaultOpTimeout in tests that are not about
// timeouts: a loaded CI machine must not turn them into flakes.
const testTimeout = 10 * time.Second

func TestMain(m *testing.M) {
	// go-redis prints dial failures to stderr; the outage tests cause many.
	redis.SetLogger(LogAdapter{L: slog.New(slog.DiscardHandler)})
	os.Exit(m.Run())
}

// newReplay is a ReplayCache on c with the test timeout and clock.
func newReplay(c redis.UniversalClient, prefix string, now func() time.Time) *ReplayCache {
	r := NewReplayCache(c, prefix)
	r.Now, r.Timeout = now, testTimeout
	return r
}

func fingerprint(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func TestReplaySharedAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := NewClient(srv.Addr), NewClient(srv.Addr)
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := context.Background()
	clk := testclock.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	ra, rb := newReplay(a, "wsgate:", clk.Now), newReplay(b, "wsgate:", clk.Now)
	other := newReplay(b, "other:", clk.Now) // another fleet on the same Redis
	until := clk.Now().Add(5 * time.Minute)

	steps := []struct {
		name  string
		cache *ReplayCache
		key   string
		seen  bool
	}{
		{"first sight on replica A", ra, "m1", false},
		{"replay to replica B", rb, "m1", true},
		{"replay to replica A", ra, "m1", true},
		{"another message on B", rb, "m2", false},
		{"another prefix is another namespace", other, "m1", false},
	}
	for _, s := range steps {
		seen, err := s.cache.Remember(ctx, fingerprint(s.key), until)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if seen != s.seen {
			t.Fatalf("%s: seen = %v, want %v", s.name, seen, s.seen)
		}
	}

	// The key is what the contract says, and it expires when the message does.
	k := ra.Key(fingerprint("m1"))
	if want := "wsgate:replay:"; !strings.HasPrefix(k, want) || len(k) != len(want)+64 {
		t.Fatalf("key %q, want %s + 64 hex digits", k, want)
	}
	ttl, err := a.PTTL(ctx, k).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 4*time.Minute || ttl > 5*time.Minute {
		t.Fatalf("PTTL = %v, want about 5m", ttl)
	}
}

func TestReplayConcurrentFirstSightIsUnique(t *testing.T) {
	srv := redistest.Start(t)
	clients := []*ReplayCache{}
	for range 4 {
		c := NewClient(srv.Addr)
		t.Cleanup(func() { c.Close() })
		clients = append(clients, newReplay(c, "wsgate:", nil))
	}
	until := time.Now().Add(time.Minute)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			seen, err := clients[i%len(clients)].Remember(context.Background(), fingerprint("race"), until)
			if err != nil {
				t.Error(err)
				return
			}
			if !seen {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if n := fresh.Load(); n != 1 {
		t.Fatalf("%d of 32 concurrent Remember calls saw the message first, want exactly 1", n)
	}
}

func TestReplayExpiry(t *testing.T) {
	srv := redistest.Start(t)
	c := NewClient(srv.Addr)
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	clk := testclock.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	r := newReplay(c, "wsgate:", clk.Now)

	// Expiry is Redis's: a real (short) wait is the honest test.
	key := fingerprint("short-lived")
	if seen, err := r.Remember(ctx, key, clk.Now().Add(150*time.Millisecond)); err != nil || seen {
		t.Fatalf("first Remember = %v, %v; want false, nil", seen, err)
	}
	if seen, err := r.Remember(ctx, key, clk.Now().Add(150*time.Millisecond)); err != nil || !seen {
		t.Fatalf("second Remember = %v, %v; want true, nil", seen, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.Exists(ctx, r.Key(key)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replay key did not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if seen, err := r.Remember(ctx, key, clk.Now().Add(time.Minute)); err != nil || seen {
		t.Fatalf("Remember after expiry = %v, %v; want false, nil", seen, err)
	}

	// A deadline already past is still stored briefly, never skipped.
	past := fingerprint("past")
	if seen, err := r.Remember(ctx, past, clk.Now().Add(-time.Hour)); err != nil || seen {
		t.Fatalf("Remember(past) = %v, %v; want false, nil", seen, err)
	}
}

func TestReplayFailsClosedWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	c := NewClient(srv.Addr)
	t.Cleanup(func() { c.Close() })
	r := newReplay(c, "wsgate:", nil)
	ctx := context.Background()
	until := time.Now().Add(time.Minute)
	if _, err := r.Remember(ctx, fingerprint("before"), until); err != nil {
		t.Fatal(err)
	}
	if err := Ping(ctx, c); err != nil {
		t.Fatalf("Ping while up: %v", err)
	}

	srv.Stop()
	start := time.Now()
	seen, err := r.Remember(ctx, fingerprint("during"), until)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Remember with Redis down = %v, %v; want ErrUnavailable", seen, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Remember took %v with Redis down", d)
	}
	if err := Ping(ctx, c); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping while down = %v, want ErrUnavailable", err)
	}

	srv.Restart()
	if seen, err := r.Remember(ctx, fingerprint("after"), until); err != nil || seen {
		t.Fatalf("Remember after restart = %v, %v; want false, nil", seen, err)
	}
}

func TestReplayHungRedisTimesOut(t *testing.T) {
	srv := redistest.Start(t)
	c := NewClient(srv.Addr)
	t.Cleanup(func() { c.Close() })
	admin := NewClient(srv.Addr)
	t.Cleanup(func() { admin.Close() })
	r := NewReplayCache(c, "wsgate:")
	r.Timeout = 200 * time.Millisecond
	ctx := context.Background()
	if err := Ping(ctx, c); err != nil {
		t.Fatal(err)
	}
	// CLIENT PAUSE makes Redis hold every write: a hung server.
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "2000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := r.Remember(ctx, fingerprint("hung"), time.Now().Add(time.Minute))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Remember on a hung Redis = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Remember took %v on a hung Redis, want about the 200ms timeout", d)
	}
}

// staticCerts is a fixed trust set.
type staticCerts []*x509.Certificate

func (s staticCerts) Certificates() ([]*x509.Certificate, error) { return s, nil }

const envelope = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/>` +
	`<soap:Body><m:Ping xmlns:m="urn:test">hi</m:Ping></soap:Body></soap:Envelope>`

// TestVerifierWithRedisReplay runs wssec's verifier on two "replicas" that
// share one Redis: the replay is caught by the other replica, and a Redis
// outage is ErrReplayUnavailable (a 503 at the edge), never an acceptance.
func TestVerifierWithRedisReplay(t *testing.T) {
	srv := redistest.Start(t)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	is := pki.Issuer{Now: clock}
	ca, err := is.Issue(pki.Options{CommonName: "test CA", IsCA: true, Key: pki.ECP256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	partner, err := is.Issue(pki.Options{CommonName: "partner", Key: pki.ECP256}, ca)
	if err != nil {
		t.Fatal(err)
	}
	signer := &wssec.Signer{Chain: []*x509.Certificate{partner.Cert}, Key: partner.Key, Now: clock}
	sign := func() []byte {
		msg, err := signer.SignBytes([]byte(envelope), wssec.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	replica := func() *wssec.Verifier {
		c := NewClient(srv.Addr)
		t.Cleanup(func() { c.Close() })
		rc := newReplay(c, "wsgate:", clock)
		return &wssec.Verifier{
			Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
			Trust:  staticCerts{ca.Cert},
			Replay: rc,
			Now:    clock,
		}
	}
	a, b := replica(), replica()
	ctx := context.Background()

	msg := sign()
	if _, err := a.Verify(ctx, msg); err != nil {
		t.Fatalf("replica A refused a fresh message: %v", err)
	}
	if _, err := b.Verify(ctx, msg); !errors.Is(err, wssec.ErrReplay) {
		t.Fatalf("replica B on the replay: %v, want ErrReplay", err)
	}
	if _, err := b.Verify(ctx, sign()); err != nil { // a new signature is a new message
		t.Fatalf("replica B refused a fresh message: %v", err)
	}

	srv.Stop()
	_, err = a.Verify(ctx, sign())
	if !errors.Is(err, wssec.ErrReplayUnavailable) {
		t.Fatalf("with Redis down: %v, want ErrReplayUnavailable", err)
	}
	if wssec.ClientError(err) {
		t.Fatal("a replay-store outage must be the gateway's failure (503), not the client's")
	}
}

func TestLogAdapter(t *testing.T) {
	var buf syncBuffer
	LogAdapter{L: slog.New(slog.NewJSONHandler(&buf, nil))}.Printf(context.Background(), "dial %s: %v", "127.0.0.1:1", "refused")
	out := buf.String()
	if !strings.Contains(out, `"level":"WARN"`) || !strings.Contains(out, `"detail":"dial 127.0.0.1:1: refused"`) {
		t.Fatalf("log line %q", out)
	}
}
