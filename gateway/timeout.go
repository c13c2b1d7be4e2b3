package gateway

import (
	"time"

	"wsgate/config"
)

// upstreamTimeout is the route's own timeout, else limits.upstream_timeout.
func upstreamTimeout(cfg *config.Config, r *config.Route) time.Duration {
	if r.Timeout > 0 {
		return r.Timeout.D()
	}
	return cfg.Limits.UpstreamTimeout.D()
}
