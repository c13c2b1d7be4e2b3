package wssec

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// MemoryReplayCache is the single-node ReplayCache. Its size is bounded:
// when full of unexpired entries it refuses new ones (failing closed) rather
// than forgetting messages that could then be replayed.
type MemoryReplayCache struct {
	now        func() time.Time
	maxEntries int

	mu        sync.Mutex
	entries   map[[32]byte]time.Time
	nextSweep time.Time
}

// DefaultReplayEntries bounds a MemoryReplayCache (about 50 MB at most).
const DefaultReplayEntries = 1 << 20

// NewMemoryReplayCache returns an empty cache; now nil means time.Now.
func NewMemoryReplayCache(now func() time.Time) *MemoryReplayCache {
	if now == nil {
		now = time.Now
	}
	return &MemoryReplayCache{now: now, maxEntries: DefaultReplayEntries, entries: make(map[[32]byte]time.Time)}
}

// Remember implements ReplayCache.
func (c *MemoryReplayCache) Remember(_ context.Context, key [32]byte, until time.Time) (bool, error) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.entries[key]; ok && exp.After(now) {
		return true, nil
	}
	if len(c.entries) >= c.maxEntries || !now.Before(c.nextSweep) {
		c.sweep(now)
	}
	if len(c.entries) >= c.maxEntries {
		return false, fmt.Errorf("%w: replay cache full", ErrReplayUnavailable)
	}
	c.entries[key] = until
	return false, nil
}

func (c *MemoryReplayCache) sweep(now time.Time) {
	for k, exp := range c.entries {
		if !exp.After(now) {
			delete(c.entries, k)
		}
	}
	c.nextSweep = now.Add(time.Minute)
}

// replayKey is SHA-256 over the length-prefixed parts, so that no two
// different tuples can collide by shifting bytes between fields.
func replayKey(kind string, parts ...[]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(kind))
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var key [32]byte
	h.Sum(key[:0])
	return key
}
