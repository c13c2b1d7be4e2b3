package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"crypto/sha256"
	"encoding/hex"

	"wsgate/config"
	"wsgate/internal/metrics"
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
	if prev != nil && prev.key == cfg.Replay {
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

// rateLimited applies the route's rate_limit in front of next, for routes
// whose edge has no limiter of its own (soap, public). Keys: the client IP
// (trusted_proxies applied), the client certificate's SHA-256, or the route.
func rateLimited(env *routeEnv, r *config.Route, next http.Handler, rlog *slog.Logger) (http.Handler, error) {
	rl := r.RateLimit
	if rl == nil {
		return next, nil
	}
	if rl.Per == "subject" {
		// The subject is known only after verification; refusing to start
		// beats a limit that silently does nothing.
		return nil, errors.New("rate_limit per subject is supported on oauth routes only; use client_ip, client_cert or route")
	}
	lim, err := env.stores.newLimiter(r.Name, rl)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ip := ""
		st := stateOf(req.Context())
		if st != nil {
			ip = st.clientIP
		} else if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
			ip = host
		}
		var key string
		switch rl.Per {
		case "client_cert":
			if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
				sum := sha256.Sum256(req.TLS.PeerCertificates[0].Raw)
				key = "cert:" + hex.EncodeToString(sum[:])
			} else {
				key = "ip:" + ip
			}
		case "route":
			key = "route"
		default:
			key = "ip:" + ip
		}
		if ok, after := lim.Allow(key); !ok {
			if st != nil {
				st.outcome = metrics.OutcomeRateLimited
			}
			env.metrics.Rejection(r.Name, metrics.OutcomeRateLimited)
			rlog.Info("request rate limited", slog.String("request_id", req.Header.Get("X-Request-ID")),
				slog.String("per", rl.Per))
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(after, time.Second).Seconds()))))
			writeJSONError(w, req, http.StatusTooManyRequests, "rate_limited", "too many requests")
			return
		}
		next.ServeHTTP(w, req)
	}), nil
}
