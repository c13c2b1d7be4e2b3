// Package metrics defines wsgate's Prometheus metric families and registers
// them on a registry the caller passes in (never the global one), so tests
// and several gateways in one process stay independent.
package metrics

import (
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Outcomes of wsgate_requests_total and wsgate_secret_refresh_total.
const (
	OutcomeAccepted    = "accepted"     // a protected route let the request through
	OutcomeForwarded   = "forwarded"    // a public route forwarded it
	OutcomeRejected    = "rejected"     // a security check refused it
	OutcomeRateLimited = "rate_limited" // the route's rate limit refused it
	OutcomeUnavailable = "unavailable"  // the gateway could not decide (secret, replay store or IdP down)
	OutcomeInvalid     = "invalid"      // refused before any route ran (no route, bad path, too large)
	OutcomeSuccess     = "success"      // a secret refresh read everything
	OutcomeFailure     = "failure"      // a secret refresh failed for at least one secret
)

// SecretAge is one secret's age for wsgate_secret_age_seconds.
type SecretAge struct {
	// Path is the secret's path; it labels the series.
	Path string
	// LoadedAt is when its held value was read; zero when never loaded (no series).
	LoadedAt time.Time
}

// Metrics holds wsgate's metric families. Its methods are safe for concurrent use.
type Metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	rejections *prometheus.CounterVec
	upstream   *prometheus.HistogramVec
	refreshes  *prometheus.CounterVec
}

// Sources are read at each scrape, for the gauges of state that lives
// elsewhere. A nil source leaves its family out.
type Sources struct {
	// SecretAges gives wsgate_secret_age_seconds.
	SecretAges func() []SecretAge
	// MemoryBudget gives wsgate_memory_budget_bytes (the SOAP memory
	// budget's size) and wsgate_memory_budget_in_use_bytes (what requests
	// hold of it).
	MemoryBudget func() (inUse, limit int64)
	// Version labels wsgate_build_info; empty means the main module's
	// version from the build info, or its VCS revision.
	Version string
}

// Version is the release version of the running binary: the main module's
// version when it was built from a tagged module, else its VCS revision
// (with +dirty for a modified tree), else "(devel)".
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "(devel)"
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// New registers the metric families on reg; now is the clock of the secret
// ages (nil: time.Now).
func New(reg prometheus.Registerer, src Sources, now func() time.Time) (*Metrics, error) {
	if now == nil {
		now = time.Now
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsgate_requests_total",
			Help: "Requests handled, by route, protocol (soap, rest, bridge, public, none) and outcome.",
		}, []string{"route", "protocol", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wsgate_request_duration_seconds",
			Help:    "Time from request received to response written, upstream included.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "protocol"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsgate_security_rejections_total",
			Help: "Requests refused by a security check, by route and reason (WS-Security fault code or OAuth reason).",
		}, []string{"route", "reason"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wsgate_upstream_duration_seconds",
			Help:    "Time the upstream took to answer (round trip up to response headers).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsgate_secret_refresh_total",
			Help: "Secret refresh rounds, by outcome (success, failure).",
		}, []string{"outcome"}),
	}
	version := src.Version
	if version == "" {
		version = Version()
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "wsgate_build_info",
		Help:        "Always 1; labelled with the wsgate version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	cs := []prometheus.Collector{m.requests, m.duration, m.rejections, m.upstream, m.refreshes, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	if src.SecretAges != nil {
		cs = append(cs, &ageCollector{ages: src.SecretAges, now: now, desc: prometheus.NewDesc(
			"wsgate_secret_age_seconds",
			"Seconds since each secret's held value was read from the backend.",
			[]string{"secret"}, nil)})
	}
	if budget := src.MemoryBudget; budget != nil {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wsgate_memory_budget_bytes",
				Help: "Size of the memory budget shared by SOAP requests (limits.memory_budget_bytes).",
			}, func() float64 { _, limit := budget(); return float64(limit) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wsgate_memory_budget_in_use_bytes",
				Help: "Bytes of the memory budget held by SOAP requests in flight.",
			}, func() float64 { inUse, _ := budget(); return float64(inUse) }),
		)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Both refresh outcomes exist from the start, so a rate() over them works at once.
	m.refreshes.WithLabelValues(OutcomeSuccess)
	m.refreshes.WithLabelValues(OutcomeFailure)
	return m, nil
}

// Request records one handled request.
func (m *Metrics) Request(route, protocol, outcome string, d time.Duration) {
	m.requests.WithLabelValues(route, protocol, outcome).Inc()
	m.duration.WithLabelValues(route, protocol).Observe(d.Seconds())
}

// Route is one route's request and upstream series, each looked up once and
// kept: the front door records every request, and WithLabelValues hashes
// the labels and takes the vector's lock on every call. A series still
// appears only when first recorded. Safe for concurrent use.
type Route struct {
	m               *Metrics
	route, protocol string
	duration        atomic.Pointer[observer]
	upstream        atomic.Pointer[observer]
	requests        atomic.Pointer[map[string]prometheus.Counter] // by outcome; replaced, never changed
	mu              sync.Mutex                                    // serializes replacing requests
}

type observer struct{ prometheus.Observer }

// Route returns the series of one route (route "none", protocol "none" for
// requests no route matched), to be built once per route and kept.
func (m *Metrics) Route(route, protocol string) *Route {
	return &Route{m: m, route: route, protocol: protocol}
}

// Request records one handled request, as Metrics.Request does.
func (r *Route) Request(outcome string, d time.Duration) {
	r.counter(outcome).Inc()
	o := r.duration.Load()
	if o == nil {
		o = &observer{r.m.duration.WithLabelValues(r.route, r.protocol)}
		r.duration.Store(o) // a racing store holds the same series
	}
	o.Observe(d.Seconds())
}

// Upstream records one upstream round trip, as Metrics.Upstream does.
func (r *Route) Upstream(d time.Duration) {
	o := r.upstream.Load()
	if o == nil {
		o = &observer{r.m.upstream.WithLabelValues(r.route)}
		r.upstream.Store(o)
	}
	o.Observe(d.Seconds())
}

func (r *Route) counter(outcome string) prometheus.Counter {
	if byOutcome := r.requests.Load(); byOutcome != nil {
		if c, ok := (*byOutcome)[outcome]; ok {
			return c
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.requests.Load()
	next := map[string]prometheus.Counter{}
	if old != nil {
		if c, ok := (*old)[outcome]; ok {
			return c
		}
		for k, v := range *old {
			next[k] = v
		}
	}
	c := r.m.requests.WithLabelValues(r.route, r.protocol, outcome)
	next[outcome] = c
	r.requests.Store(&next)
	return c
}

// Rejection records one security refusal; reason must be a short stable code.
func (m *Metrics) Rejection(route, reason string) {
	m.rejections.WithLabelValues(route, reason).Inc()
}

// Upstream records one upstream round trip.
func (m *Metrics) Upstream(route string, d time.Duration) {
	m.upstream.WithLabelValues(route).Observe(d.Seconds())
}

// SecretRefresh records one refresh round.
func (m *Metrics) SecretRefresh(ok bool) {
	outcome := OutcomeSuccess
	if !ok {
		outcome = OutcomeFailure
	}
	m.refreshes.WithLabelValues(outcome).Inc()
}

// ageCollector reports secret ages computed at scrape time.
type ageCollector struct {
	ages func() []SecretAge
	now  func() time.Time
	desc *prometheus.Desc
}

func (c *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *ageCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	seen := map[string]bool{} // one path may be registered under several kinds
	for _, a := range c.ages() {
		if a.LoadedAt.IsZero() || seen[a.Path] {
			continue
		}
		seen[a.Path] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, now.Sub(a.LoadedAt).Seconds(), a.Path)
	}
}
