package config

import (
	"slices"
	"testing"
	"time"
)

// upstreams, balance, passive_health and health_check: one of upstream or
// upstreams, every URL alike but for host and port, bounded knobs.
func TestValidateUpstreams(t *testing.T) {
	many := func(urls ...string) func(c *Config) {
		return func(c *Config) { c.Routes[0].Upstream, c.Routes[0].Upstreams = "", urls }
	}
	tests := []struct {
		name  string
		patch func(c *Config)
		want  []string
	}{
		{"list", many("http://a:8080/svc", "http://b:8080/svc", "http://10.0.0.3/svc"), nil},
		{"both", func(c *Config) { c.Routes[0].Upstreams = []string{"http://a/svc"} }, []string{
			"routes[0].upstreams: set upstream or upstreams, not both"}},
		{"neither", many(), []string{"routes[0].upstream: required"}},
		{"bad url", many("http://a/svc", "ftp://b/svc", "http://u:p@c/svc"), []string{
			"routes[0].upstreams[1]: must be an absolute http or https URL",
			"routes[0].upstreams[2]: URL must not carry credentials"}},
		{"not alike", many("http://a/svc", "https://b/svc", "http://c/other", "http://d/svc?x=1"), []string{
			"routes[0].upstreams[1]: must differ from upstreams[0] only in host and port (same scheme, path and query)",
			"routes[0].upstreams[2]: must differ from upstreams[0] only in host and port (same scheme, path and query)",
			"routes[0].upstreams[3]: must differ from upstreams[0] only in host and port (same scheme, path and query)"}},
		{"duplicate host", many("http://a:1/svc", "http://A:1/svc"), []string{"routes[0].upstreams[1]: same host as upstreams[0]"}},
		{"too many", func(c *Config) {
			var urls []string
			for i := range MaxUpstreams + 1 {
				urls = append(urls, "http://h"+string(rune('a'+i%26))+string(rune('a'+i/26))+"/svc")
			}
			many(urls...)(c)
		}, []string{"routes[0].upstreams: at most 32 upstreams"}},
		{"bridge", func(c *Config) { c.Routes[2].Upstreams = []string{"http://a/x"} }, []string{
			"routes[2].upstreams: not used by bridge routes (set bridge.upstreams)"}},
		{"bridge list", func(c *Config) {
			b := c.Routes[2].Bridge
			b.Upstreams, b.Upstream = []string{"http://a/x", "http://b/x"}, ""
		}, nil},
		{"bridge both", func(c *Config) { c.Routes[2].Bridge.Upstreams = []string{"http://a/x"} }, []string{
			"routes[2].bridge.upstreams: set upstream or upstreams, not both"}},
		{"balance", func(c *Config) { c.Routes[0].Balance = "random" }, []string{
			`routes[0].balance: "random" is not one of round_robin, least_requests`}},
		{"least requests", func(c *Config) { c.Routes[1].Balance = "least_requests" }, nil},
		{"passive", func(c *Config) {
			c.Routes[0].PassiveHealth = PassiveHealth{Failures: 101, EjectFor: Duration(-time.Second)}
		}, []string{"routes[0].passive_health.failures: must be between 1 and 100",
			"routes[0].passive_health.eject_for: must not be negative"}},
		{"health check", func(c *Config) {
			c.Routes[0].HealthCheck = &HealthCheck{Path: "/healthz?deep=1", Interval: Duration(5 * time.Second), Timeout: Duration(time.Second)}
		}, nil},
		{"health check fields", func(c *Config) {
			c.Routes[0].HealthCheck = &HealthCheck{Path: "healthz", Interval: Duration(time.Millisecond), Timeout: Duration(time.Second)}
			c.Routes[1].HealthCheck = &HealthCheck{Path: "//evil/x", Interval: Duration(time.Second), Timeout: Duration(2 * time.Second)}
			c.Routes[2].HealthCheck = &HealthCheck{Interval: Duration(time.Second), Timeout: Duration(time.Second)}
		}, []string{
			"routes[0].health_check.path: must be an absolute path such as /healthz (a query is allowed)",
			"routes[0].health_check.interval: must be at least 1s",
			"routes[0].health_check.timeout: must be positive and at most interval",
			"routes[1].health_check.path: must be an absolute path such as /healthz (a query is allowed)",
			"routes[1].health_check.timeout: must be positive and at most interval",
			"routes[2].health_check.path: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.patch(c)
			wantProblems(t, c, tt.want)
		})
	}
}

// The defaults: round robin, eject after 3 failures for 30s, probes every
// 10s with a 2s timeout (never longer than the interval).
func TestUpstreamDefaults(t *testing.T) {
	c, err := Load([]byte(minimal + `
  - name: pool
    path_prefix: /pool
    public: true
    upstreams: [http://a:1/x, http://b:1/x]
    health_check: {path: /healthz}
  - name: fast
    path_prefix: /fast
    public: true
    upstream: http://a:1/x
    health_check: {path: /healthz, interval: 1s}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Routes[len(c.Routes)-2]
	if r.Balance != "round_robin" || r.PassiveHealth.Failures != 3 || r.PassiveHealth.EjectFor.D() != 30*time.Second ||
		r.HealthCheck.Interval.D() != 10*time.Second || r.HealthCheck.Timeout.D() != 2*time.Second {
		t.Errorf("defaults = %q %+v %+v", r.Balance, r.PassiveHealth, *r.HealthCheck)
	}
	if got := r.UpstreamURLs(); !slices.Equal(got, []string{"http://a:1/x", "http://b:1/x"}) {
		t.Errorf("UpstreamURLs = %q", got)
	}
	if f := c.Routes[len(c.Routes)-1]; f.HealthCheck.Timeout.D() != time.Second {
		t.Errorf("timeout = %s, want the 1s interval", f.HealthCheck.Timeout)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
