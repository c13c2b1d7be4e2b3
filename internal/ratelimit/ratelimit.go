// Package ratelimit provides per-key token buckets behind a small interface,
// so a shared store (e.g. Redis) can replace the in-memory one later.
package ratelimit

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter admits or refuses one request for a key.
type Limiter interface {
	// Allow takes one token from key's bucket. When the bucket is empty it
	// returns false and how long until a token is available.
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// Options configure a Memory limiter.
type Options struct {
	// Rate is tokens per second; must be positive.
	Rate float64
	// Burst is the bucket size; must be at least 1.
	Burst int
	// MaxKeys bounds the number of buckets kept. Default 100000.
	MaxKeys int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Memory is an in-process Limiter: one token bucket per key. Idle buckets
// (full again) are dropped when the map reaches MaxKeys; if none are idle,
// new keys share one overflow bucket, so memory stays bounded under a flood
// of distinct keys. Safe for concurrent use.
type Memory struct {
	o        Options
	mu       sync.Mutex
	buckets  map[string]*rate.Limiter
	overflow *rate.Limiter
	swept    time.Time // sweeps run at most once a second
}

// NewMemory checks the options and builds a Memory limiter.
func NewMemory(o Options) (*Memory, error) {
	if !(o.Rate > 0) {
		return nil, fmt.Errorf("ratelimit: rate must be positive, got %v", o.Rate)
	}
	if o.Burst < 1 {
		return nil, fmt.Errorf("ratelimit: burst must be at least 1, got %d", o.Burst)
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Memory{o: o, buckets: map[string]*rate.Limiter{},
		overflow: rate.NewLimiter(rate.Limit(o.Rate), o.Burst)}, nil
}

// Allow implements Limiter.
func (m *Memory) Allow(key string) (bool, time.Duration) {
	now := m.o.Now()
	m.mu.Lock()
	l, ok := m.buckets[key]
	if !ok {
		if len(m.buckets) >= m.o.MaxKeys && now.Sub(m.swept) >= time.Second {
			m.swept = now
			m.sweep(now)
		}
		if len(m.buckets) < m.o.MaxKeys {
			l = rate.NewLimiter(rate.Limit(m.o.Rate), m.o.Burst)
			m.buckets[key] = l
		} else {
			l = m.overflow
		}
	}
	m.mu.Unlock()
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops buckets that have refilled completely: forgetting them loses nothing.
func (m *Memory) sweep(now time.Time) {
	for k, l := range m.buckets {
		if l.TokensAt(now) >= float64(m.o.Burst) {
			delete(m.buckets, k)
		}
	}
}

// Len is the number of buckets held (tests, metrics).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.buckets)
}
