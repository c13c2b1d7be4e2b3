package ratelimit

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"wsgate/internal/testclock"
)

func TestTokenBucket(t *testing.T) {
	c := testclock.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	m, err := NewMemory(Options{Rate: 2, Burst: 3, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		key     string
		ok      bool
		retry   time.Duration
	}{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond}, // burst spent; 2/s refills one in 500 ms
		{0, "b", true, 0},                       // other keys are independent
		{250 * time.Millisecond, "a", false, 250 * time.Millisecond},
		{250 * time.Millisecond, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond},
		{10 * time.Second, "a", true, 0}, // refilled, capped at burst
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		c.Add(s.advance)
		ok, retry := m.Allow(s.key)
		if ok != s.ok || retry != s.retry {
			t.Fatalf("step %d: Allow(%q) = %v, %v; want %v, %v", i, s.key, ok, retry, s.ok, s.retry)
		}
	}
}

func TestBoundedKeys(t *testing.T) {
	c := testclock.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	m, err := NewMemory(Options{Rate: 1, Burst: 1, MaxKeys: 10, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		m.Allow("k" + strconv.Itoa(i))
	}
	if m.Len() > 10 {
		t.Fatalf("%d buckets, cap 10", m.Len())
	}
	// Overflow keys share one bucket: a flood of new keys is still limited.
	c.Add(2 * time.Second)
	for i := range 10 {
		m.Allow("fill" + strconv.Itoa(i)) // refilled buckets are swept and replaced
	}
	okCount := 0
	for i := range 20 {
		if ok, _ := m.Allow("flood" + strconv.Itoa(i)); ok {
			okCount++
		}
	}
	if okCount > 1 {
		t.Fatalf("%d flood requests passed through the shared overflow bucket, want at most 1", okCount)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{{Rate: 0, Burst: 1}, {Rate: -1, Burst: 1}, {Rate: 1, Burst: 0}} {
		if _, err := NewMemory(o); err == nil {
			t.Errorf("NewMemory(%+v) accepted", o)
		}
	}
}

func TestConcurrent(t *testing.T) {
	m, err := NewMemory(Options{Rate: 1, Burst: 50})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if ok, _ := m.Allow("k"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed < 50 || allowed > 52 {
		t.Fatalf("%d of 160 allowed, want about the burst of 50", allowed)
	}
}
