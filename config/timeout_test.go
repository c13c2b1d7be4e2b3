package config

import (
	"testing"
	"time"
)

// routes[].timeout and retries: optional, bounded, and not on bridge
// routes (whose upstream call uses limits.upstream_timeout and is a POST).
func TestValidateRouteTimeout(t *testing.T) {
	tests := []struct {
		name  string
		patch func(c *Config)
		want  []string
	}{
		{"set on soap and oauth routes", func(c *Config) {
			c.Routes[0].Timeout = Duration(5 * time.Second)
			c.Routes[1].Timeout = Duration(time.Second)
		}, nil},
		{"negative", func(c *Config) { c.Routes[0].Timeout = Duration(-time.Second) }, []string{"routes[0].timeout: must not be negative"}},
		{"bridge", func(c *Config) { c.Routes[2].Timeout = Duration(time.Second) }, []string{
			"routes[2].timeout: not used by bridge routes (limits.upstream_timeout applies)"}},
		{"retries", func(c *Config) { c.Routes[0].Retries = 2; c.Routes[1].Retries = 6 }, []string{
			"routes[1].retries: must be between 0 and 5"}},
		{"retries on bridge", func(c *Config) { c.Routes[2].Retries = 1 }, []string{
			"routes[2].retries: not used by bridge routes (their SOAP calls are POSTs, never sent twice)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.patch(c)
			wantProblems(t, c, tt.want)
		})
	}
}
