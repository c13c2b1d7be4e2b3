package config

import (
	"testing"
)

// replay.redis: one server (address), Sentinels with sentinel_master, or
// Cluster seed nodes (addresses alone); never two forms at once.
func TestValidateRedisTopology(t *testing.T) {
	tests := []struct {
		name  string
		redis Redis
		want  []string
	}{
		{"one server", Redis{Address: "redis:6379"}, nil},
		{"sentinel", Redis{Addresses: []string{"s1:26379", "s2:26379", "s3:26379"}, SentinelMaster: "wsgate"}, nil},
		{"cluster", Redis{Addresses: []string{"c1:6379", "c2:6379"}}, nil},
		{"none", Redis{}, []string{"replay.redis.address: required"}},
		{"both forms", Redis{Address: "redis:6379", Addresses: []string{"c1:6379"}}, []string{
			"replay.redis: address and addresses are mutually exclusive"}},
		{"bad addresses", Redis{Addresses: []string{"c1", "c2:99999"}}, []string{
			"replay.redis.addresses[0]: must be host:port", `replay.redis.addresses[1]: invalid port "99999"`}},
		{"sentinel_master without sentinels", Redis{Address: "redis:6379", SentinelMaster: "wsgate"}, []string{
			"replay.redis.sentinel_master: needs addresses (the Sentinels)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			c.Replay.Store = "redis"
			c.Replay.Redis = tt.redis
			wantProblems(t, c, tt.want)
		})
	}
}
