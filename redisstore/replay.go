package redisstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplayCache is a wssec.ReplayCache shared by every replica that uses the
// same Redis and prefix. Each fingerprint is one key, written with SET NX
// and a millisecond expiry, so "was it seen?" and "remember it" are one
// atomic step on the server. Errs towards refusing: if a SET's reply is
// lost and the client's one retry finds the key, the message reads as a
// replay. Safe for concurrent use.
type ReplayCache struct {
	c      redis.UniversalClient
	prefix string

	// Now is the clock that turns Remember's deadline into an expiry; nil
	// means time.Now. Set before first use.
	Now func() time.Time
	// Timeout bounds one Remember; zero means DefaultOpTimeout. Set before first use.
	Timeout time.Duration
}

// NewReplayCache returns a replay cache whose keys are prefix + "replay:" +
// the fingerprint in hex.
func NewReplayCache(c redis.UniversalClient, prefix string) *ReplayCache {
	return &ReplayCache{c: c, prefix: prefix}
}

// Remember implements wssec.ReplayCache. It reports seen when the key is
// already present. Any Redis failure is an error wrapping ErrUnavailable,
// never "not seen": the caller must refuse the message (fail closed).
func (r *ReplayCache) Remember(ctx context.Context, key [32]byte, until time.Time) (bool, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	// A deadline already past still takes the key for a moment: a copy of
	// the fingerprint that is still stored is reported as seen.
	ttl := max(until.Sub(now()), time.Millisecond)
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultOpTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok, err := r.c.SetNX(ctx, r.Key(key), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("%w: replay cache: %v", ErrUnavailable, err)
	}
	return !ok, nil
}

// Key is the Redis key that holds fingerprint k (tests, operators).
func (r *ReplayCache) Key(k [32]byte) string {
	return r.prefix + "replay:" + hex.EncodeToString(k[:])
}
