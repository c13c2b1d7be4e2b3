package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"wsgate/config"
	"wsgate/internal/ratelimit"
	"wsgate/wssec"
)

// stores is the state shared by every request and, for a fleet, every
// replica: the replay cache and the rate-limit buckets. A reload keeps the
// same stores while the replay section is unchanged, so a message seen
// before a SIGHUP is still a replay after it.
type stores struct {
	key    config.Replay
	replay wssec.ReplayCache
	// newLimiter builds a route's rate limiter on these stores.
	newLimiter func(route string, rl *config.RateLimit) (ratelimit.Limiter, error)
	// ping checks the stores can be reached, for /readyz; nil when in-process.
	ping func(ctx context.Context) error
	// close releases the stores' connections; nil when there are none.
	close func()
}

// newStores returns prev when the replay section is unchanged, else builds
// the configured stores.
func newStores(cfg *config.Config, prev *stores, now func() time.Time, logger *slog.Logger) (*stores, error) {
	if prev != nil && sameReplay(prev.key, cfg.Replay) {
		return prev, nil
	}
	switch cfg.Replay.Store {
	case "memory":
		// A route whose rate_limit is unchanged keeps its buckets across
		// reloads, so a SIGHUP does not refill every client's bucket.
		type limKey struct {
			route string
			rl    config.RateLimit
		}
		var mu sync.Mutex
		lims := map[limKey]ratelimit.Limiter{}
		return &stores{
			key:    cfg.Replay,
			replay: wssec.NewMemoryReplayCache(now),
			newLimiter: func(route string, rl *config.RateLimit) (ratelimit.Limiter, error) {
				mu.Lock()
				defer mu.Unlock()
				k := limKey{route, *rl}
				if l, ok := lims[k]; ok {
					return l, nil
				}
				l, err := ratelimit.NewMemory(ratelimit.Options{Rate: rl.Rate, Burst: rl.Burst, Now: now})
				if err != nil {
					return nil, err
				}
				lims[k] = l
				return l, nil
			},
		}, nil
	case "redis":
		return newRedisStores(cfg.Replay, logger)
	}
	return nil, fmt.Errorf("unknown replay store %q", cfg.Replay.Store)
}

// limitKey is the rate-limit bucket of r for rate_limit.per: the client IP
// (the front door's one computation), the client certificate's SHA-256
// (the IP without one), or the route as a whole.
func limitKey(per string, r *http.Request, clientIP string) string {
	switch per {
	case "client_cert":
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
			return "cert:" + hex.EncodeToString(sum[:])
		}
	case "route":
		return "route"
	}
	return "ip:" + clientIP
}

// retryAfter is the Retry-After value for a wait: whole seconds, at least one.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(max(d, time.Second).Seconds())))
}
