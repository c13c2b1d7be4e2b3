package gateway

import (
	"slices"

	"wsgate/config"
)

// sameReplay reports whether two replay sections name the same stores, so
// a reload keeps the connections (and what they remember) when it does.
func sameReplay(a, b config.Replay) bool {
	return a.Store == b.Store && a.Redis.Address == b.Redis.Address && a.Redis.Prefix == b.Redis.Prefix &&
		a.Redis.SentinelMaster == b.Redis.SentinelMaster && slices.Equal(a.Redis.Addresses, b.Redis.Addresses)
}
