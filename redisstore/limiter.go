package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"wsgate/internal/ratelimit"
)

// DefaultRetryInterval is how long a Limiter keeps to its in-memory fallback
// after a Redis failure before it tries Redis again.
const DefaultRetryInterval = time.Second

// Limiter is a ratelimit.Limiter whose buckets live in Redis (GCRA, via
// github.com/go-redis/redis_rate, judged by the Redis server's clock), so
// a route's limit holds in total across every replica sharing the Redis.
//
// Outage policy: when Redis fails, each replica falls back to its own
// in-memory limiter with the same rate and burst (so a fleet of N admits
// up to N times the limit meanwhile), logs one warning per outage, and
// tries Redis again after RetryInterval; one info line marks the recovery.
// Availability wins over exactness here; replay protection, by contrast,
// fails closed. Safe for concurrent use.
type Limiter struct {
	rl    *redis_rate.Limiter
	limit redis_rate.Limit
	keyNS string
	local *ratelimit.Memory
	log   *slog.Logger

	// Now is the clock of the fallback and of the retry interval; nil means
	// time.Now. Set before first use.
	Now func() time.Time
	// Timeout bounds one Redis round trip; zero means DefaultOpTimeout. Set before first use.
	Timeout time.Duration
	// RetryInterval is how long to stay on the fallback after a failure;
	// zero means DefaultRetryInterval. Set before first use.
	RetryInterval time.Duration

	mu      sync.Mutex
	down    bool      // in an outage: the warning is logged, the recovery not yet
	retryAt time.Time // before this, do not try Redis
}

// NewLimiter returns a limiter of rate tokens per second and bucket size
// burst for one route. Buckets are keyed by route and by the SHA-256 of the
// caller's key (which may hold a token subject: it is not stored in clear).
// redis_rate prepends its own "rate:", so the Redis keys are
// "rate:" + prefix + "ratelimit:" + route + ":" + hex.
func NewLimiter(c redis.UniversalClient, prefix, route string, rate float64, burst int, logger *slog.Logger) (*Limiter, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("redisstore: rate must be positive and finite, got %v", rate)
	}
	if burst < 1 {
		return nil, fmt.Errorf("redisstore: burst must be at least 1, got %d", burst)
	}
	// GCRA needs only the emission interval (Period/Rate): one token per
	// 1/rate seconds expresses any positive float rate exactly enough.
	period := time.Duration(float64(time.Second) / rate)
	if period <= 0 {
		return nil, fmt.Errorf("redisstore: rate %v is too high", rate)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Limiter{
		rl:    redis_rate.NewLimiter(c),
		limit: redis_rate.Limit{Rate: 1, Period: period, Burst: burst},
		keyNS: prefix + "ratelimit:" + route + ":",
		log:   logger.With(slog.String("route", route)),
	}
	local, err := ratelimit.NewMemory(ratelimit.Options{Rate: rate, Burst: burst, Now: l.now})
	if err != nil {
		return nil, err
	}
	l.local = local
	return l, nil
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Allow implements ratelimit.Limiter.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if !l.tryRedis() {
		return l.local.Allow(key)
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultOpTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := l.rl.Allow(ctx, l.Key(key), l.limit)
	if err != nil {
		l.failed(err)
		return l.local.Allow(key)
	}
	l.succeeded()
	if res.Allowed > 0 {
		return true, 0
	}
	return false, max(res.RetryAfter, time.Millisecond)
}

// Key is the key passed to redis_rate for the caller's key (tests, operators).
func (l *Limiter) Key(key string) string {
	sum := sha256.Sum256([]byte(key))
	return l.keyNS + hex.EncodeToString(sum[:])
}

// tryRedis reports whether this call should go to Redis. In an outage only
// one caller per RetryInterval probes; the others use the fallback, so a
// hung Redis costs at most one request's Timeout per interval.
func (l *Limiter) tryRedis() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down {
		return true
	}
	now := l.now()
	if now.Before(l.retryAt) {
		return false
	}
	l.retryAt = now.Add(l.retryInterval())
	return true
}

func (l *Limiter) retryInterval() time.Duration {
	if l.RetryInterval > 0 {
		return l.RetryInterval
	}
	return DefaultRetryInterval
}

func (l *Limiter) failed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retryAt = l.now().Add(l.retryInterval())
	if l.down {
		return
	}
	l.down = true
	l.log.Warn("redis rate limiter unavailable: limiting per replica in memory until it recovers",
		slog.String("error", err.Error()))
}

func (l *Limiter) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down {
		return
	}
	l.down = false
	l.log.Info("redis rate limiter recovered: limits are shared again")
}
