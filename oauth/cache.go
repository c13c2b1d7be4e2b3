package oauth

import (
	"sync"
	"time"
)

// DefaultCacheEntries bounds a token cache.
const DefaultCacheEntries = 10000

// tokenCache maps a token fingerprint to a result until a deadline. It is
// bounded: when full, expired entries are swept (at most once a second, so
// a flood cannot make every insert O(n)), then arbitrary entries are evicted
// (map order, which an attacker cannot steer).
type tokenCache[V any] struct {
	mu    sync.RWMutex
	max   int
	m     map[Fingerprint]cacheEntry[V]
	swept time.Time // last full sweep; sweeps are at most once a second
}

type cacheEntry[V any] struct {
	v     V
	until time.Time
}

func newTokenCache[V any](max int) *tokenCache[V] {
	if max <= 0 {
		max = DefaultCacheEntries
	}
	return &tokenCache[V]{max: max, m: make(map[Fingerprint]cacheEntry[V])}
}

func (c *tokenCache[V]) get(k Fingerprint, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *tokenCache[V]) put(k Fingerprint, v V, until, now time.Time) {
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		if now.Sub(c.swept) >= time.Second {
			c.swept = now
			for fk, e := range c.m {
				if !now.Before(e.until) {
					delete(c.m, fk)
				}
			}
		}
		for fk := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, fk)
		}
	}
	c.m[k] = cacheEntry[V]{v: v, until: until}
}

func (c *tokenCache[V]) remove(k Fingerprint) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func (c *tokenCache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
