package redisstore

import "github.com/redis/go-redis/v9"

// Topology says which Redis deployment to reach. Exactly one form applies:
//   - Address alone: one server (NewClient);
//   - Addresses with SentinelMaster: the master Sentinel names, found
//     through the Sentinels at Addresses and followed across failovers;
//   - Addresses alone: a Redis Cluster, Addresses being seed nodes.
//
// The replay cache and the rate limiter touch one key per command (the
// limiter's Lua script too), so they work unchanged on a Cluster.
type Topology struct {
	Address        string
	Addresses      []string
	SentinelMaster string
}

// NewUniversalClient returns the client for t with NewClient's timeouts and
// retry policy. It does not connect: use Ping.
func NewUniversalClient(t Topology) redis.UniversalClient {
	if len(t.Addresses) == 0 {
		return NewClient(t.Address)
	}
	o := clientOptions(t.Addresses)
	o.MasterName = t.SentinelMaster
	o.IsClusterMode = t.SentinelMaster == "" // even with one seed node
	if t.SentinelMaster != "" {
		return redis.NewFailoverClient(o.Failover())
	}
	return redis.NewClusterClient(o.Cluster())
}
