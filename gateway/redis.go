package gateway

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"wsgate/config"
	"wsgate/internal/ratelimit"
	"wsgate/redisstore"
)

// newRedisStores builds the stores of replay.store: redis on one client:
//   - the replay cache (SET NX with expiry, keys under replay.redis.prefix):
//     a message replayed to any replica sharing the Redis is refused. It
//     fails closed: while Redis is unreachable, soap routes answer 503.
//   - every route's rate limiter, so a limit holds across replicas. While
//     Redis is unreachable each replica falls back to its own in-memory
//     bucket (the limit then holds per replica, not in total) and logs the
//     outage once; it returns to Redis when Redis answers again.
func newRedisStores(r config.Replay, logger *slog.Logger) (*stores, error) {
	// go-redis reports dial failures through its own package logger, which
	// writes plain text to stderr; route it into our structured log.
	redis.SetLogger(redisstore.LogAdapter{L: logger})
	c := redisstore.NewUniversalClient(redisstore.Topology{Address: r.Redis.Address,
		Addresses: r.Redis.Addresses, SentinelMaster: r.Redis.SentinelMaster})
	return &stores{
		key:    r,
		replay: redisstore.NewReplayCache(c, r.Redis.Prefix),
		newLimiter: func(route string, rl *config.RateLimit) (ratelimit.Limiter, error) {
			return redisstore.NewLimiter(c, r.Redis.Prefix, route, rl.Rate, rl.Burst, logger)
		},
		ping:  func(ctx context.Context) error { return redisstore.Ping(ctx, c) },
		close: func() { _ = c.Close() },
	}, nil
}
