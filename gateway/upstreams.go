package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"wsgate/proxy"
)

// upstreamCollector reports the serving configuration's upstreams at
// scrape time: whether each is in rotation, and how often it was ejected.
type upstreamCollector struct {
	cur       func() *generation
	healthy   *prometheus.Desc
	ejections *prometheus.Desc
}

func newUpstreamCollector(cur func() *generation) *upstreamCollector {
	labels := []string{"route", "upstream"}
	return &upstreamCollector{cur: cur,
		healthy: prometheus.NewDesc("wsgate_upstream_healthy",
			"1 while the upstream takes requests; 0 while ejected (failures in a row) or failing its health check.", labels, nil),
		ejections: prometheus.NewDesc("wsgate_upstream_ejections_total",
			"Times the upstream was ejected by passive health, since its route was last built (start or reload).", labels, nil),
	}
}

func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.healthy
	ch <- c.ejections
}

func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	gen := c.cur()
	if gen == nil {
		return
	}
	for _, p := range gen.pools {
		for _, s := range p.pool.Status() {
			v := 0.0
			if s.State == proxy.StateHealthy {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, v, p.route, s.URL)
			ch <- prometheus.MustNewConstMetric(c.ejections, prometheus.CounterValue, float64(s.Ejections), p.route, s.URL)
		}
	}
}
