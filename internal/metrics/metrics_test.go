package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func TestMetrics(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	ages := func() []SecretAge {
		return []SecretAge{
			{Path: "wsgate/trust/partners", LoadedAt: now.Add(-30 * time.Second)},
			{Path: "wsgate/trust/partners", LoadedAt: now.Add(-10 * time.Second)}, // same path, another kind: first wins
			{Path: "wsgate/users/orders"},                                         // never loaded: no series
		}
	}
	budget := func() (int64, int64) { return 3 << 20, 512 << 20 }
	m, err := New(reg, Sources{SecretAges: ages, MemoryBudget: budget}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	m.Request("orders", "soap", OutcomeAccepted, 20*time.Millisecond)
	m.Request("orders", "soap", OutcomeRejected, 5*time.Millisecond)
	m.Request("orders", "soap", OutcomeRejected, 5*time.Millisecond)
	m.Rejection("orders", "FailedCheck")
	m.Rejection("orders", "FailedCheck")
	m.Upstream("orders", 15*time.Millisecond)
	m.SecretRefresh(true)
	m.SecretRefresh(false)
	m.SecretRefresh(true)

	want := `
# HELP wsgate_requests_total Requests handled, by route, protocol (soap, rest, bridge, public, none) and outcome.
# TYPE wsgate_requests_total counter
wsgate_requests_total{outcome="accepted",protocol="soap",route="orders"} 1
wsgate_requests_total{outcome="rejected",protocol="soap",route="orders"} 2
# HELP wsgate_security_rejections_total Requests refused by a security check, by route and reason (WS-Security fault code or OAuth reason).
# TYPE wsgate_security_rejections_total counter
wsgate_security_rejections_total{reason="FailedCheck",route="orders"} 2
# HELP wsgate_secret_refresh_total Secret refresh rounds, by outcome (success, failure).
# TYPE wsgate_secret_refresh_total counter
wsgate_secret_refresh_total{outcome="failure"} 1
wsgate_secret_refresh_total{outcome="success"} 2
# HELP wsgate_secret_age_seconds Seconds since each secret's held value was read from the backend.
# TYPE wsgate_secret_age_seconds gauge
wsgate_secret_age_seconds{secret="wsgate/trust/partners"} 30
# HELP wsgate_memory_budget_bytes Size of the memory budget shared by SOAP requests (limits.memory_budget_bytes).
# TYPE wsgate_memory_budget_bytes gauge
wsgate_memory_budget_bytes 5.36870912e+08
# HELP wsgate_memory_budget_in_use_bytes Bytes of the memory budget held by SOAP requests in flight.
# TYPE wsgate_memory_budget_in_use_bytes gauge
wsgate_memory_budget_in_use_bytes 3.145728e+06
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wsgate_requests_total",
		"wsgate_security_rejections_total", "wsgate_secret_refresh_total", "wsgate_secret_age_seconds",
		"wsgate_memory_budget_bytes", "wsgate_memory_budget_in_use_bytes"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("duration series = %d", n)
	}
	if n := testutil.CollectAndCount(m.upstream); n != 1 {
		t.Errorf("upstream series = %d", n)
	}

	// A registry is passed in, never the global one: a second New on the
	// same registry is refused, on a fresh one it works.
	if _, err := New(reg, Sources{}, nil); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
	if _, err := New(prometheus.NewRegistry(), Sources{}, nil); err != nil {
		t.Error(err)
	}
}

// A Route handle records into the same series as Metrics' own methods, and
// creates none before its first record.
func TestRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, Sources{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Route("pub", "public")
	if n := testutil.CollectAndCount(m.requests) + testutil.CollectAndCount(m.duration) + testutil.CollectAndCount(m.upstream); n != 0 {
		t.Fatalf("series before any request = %d", n)
	}
	m.Request("pub", "public", OutcomeForwarded, time.Millisecond)
	for range 3 {
		r.Request(OutcomeForwarded, time.Millisecond)
	}
	r.Request(OutcomeInvalid, time.Millisecond)
	r.Upstream(time.Millisecond)
	m.Upstream("pub", time.Millisecond)
	want := `
# HELP wsgate_requests_total Requests handled, by route, protocol (soap, rest, bridge, public, none) and outcome.
# TYPE wsgate_requests_total counter
wsgate_requests_total{outcome="forwarded",protocol="public",route="pub"} 4
wsgate_requests_total{outcome="invalid",protocol="public",route="pub"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wsgate_requests_total"); err != nil {
		t.Error(err)
	}
	if c := testutil.ToFloat64(m.requests.WithLabelValues("pub", "public", OutcomeForwarded)); c != 4 {
		t.Errorf("forwarded = %v", c)
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("duration series = %d", n)
	}
	if n := testutil.CollectAndCount(m.upstream); n != 1 {
		t.Errorf("upstream series = %d", n)
	}
	var sum uint64
	for _, mf := range mustGather(t, reg) {
		if mf.GetName() == "wsgate_request_duration_seconds" || mf.GetName() == "wsgate_upstream_duration_seconds" {
			sum += mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if sum != 5+2 {
		t.Errorf("histogram samples = %d, want 7", sum)
	}
}

func mustGather(t *testing.T, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
