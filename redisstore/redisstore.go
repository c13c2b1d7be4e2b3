// Package redisstore keeps wsgate's shared state in Redis, so a fleet of
// replicas behaves as one gateway: the WS-Security replay cache (a message
// replayed to another replica is still refused) and per-route rate limits
// (a limit holds in total across replicas).
//
// When Redis is unreachable the replay cache fails closed (Remember returns
// an error; wssec turns it into ErrReplayUnavailable and the request gets a
// 503), while the rate limiter keeps serving with a per-replica in-memory
// limiter and logs the outage once.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrUnavailable wraps every failure to reach Redis or to get a usable answer from it.
var ErrUnavailable = errors.New("redisstore: redis unavailable")

// Timeouts of the client NewClient builds. They are short on purpose: a
// request waits on Redis, and a hung Redis must not hang the gateway.
const (
	DialTimeout  = 2 * time.Second
	ReadTimeout  = time.Second
	WriteTimeout = time.Second
	PoolTimeout  = time.Second
)

// DefaultOpTimeout bounds one replay-cache or rate-limit round trip,
// connecting included. A healthy Redis answers in well under a millisecond;
// the cap is loose enough for a gateway under heavy CPU load, and tight
// enough that a hung Redis turns into a prompt 503 (replay) or fallback
// (rate limit) rather than a hung request.
const DefaultOpTimeout = time.Second

// NewClient returns a client for the Redis server at address (host:port)
// with short timeouts, one retry (to replace a connection broken by a Redis
// restart) and context deadlines honoured. It does not connect: use Ping.
func NewClient(address string) *redis.Client {
	return redis.NewClient(clientOptions([]string{address}).Simple())
}

// clientOptions are the timeouts, retry policy and handshake shared by
// every client (one server, Sentinel or Cluster) for addrs.
func clientOptions(addrs []string) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:                 addrs,
		DialTimeout:           DialTimeout,
		DialerRetries:         1,
		ReadTimeout:           ReadTimeout,
		WriteTimeout:          WriteTimeout,
		PoolTimeout:           PoolTimeout,
		MaxRetries:            1,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true, // no CLIENT SETINFO: one round trip less per connection
		// Maintenance notifications are a Redis Cloud feature; not asking
		// keeps the handshake to what every Redis server answers.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// Ping checks that Redis answers within DefaultOpTimeout (or ctx's deadline,
// if sooner), for /readyz.
func Ping(ctx context.Context, c redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultOpTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: ping: %v", ErrUnavailable, err)
	}
	return nil
}

// LogAdapter sends go-redis's own log lines (connection pool dial failures
// and the like, which it otherwise prints to stderr) to a slog logger at
// warn level. Install it once at start-up: redis.SetLogger(LogAdapter{L: logger}).
type LogAdapter struct {
	L *slog.Logger
}

// Printf implements go-redis's logging interface.
func (a LogAdapter) Printf(ctx context.Context, format string, v ...any) {
	a.L.WarnContext(ctx, "redis client", slog.String("detail", fmt.Sprintf(format, v...)))
}
