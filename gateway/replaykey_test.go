package gateway

import (
	"reflect"
	"testing"

	"wsgate/config"
)

// A reload keeps the stores only when every replay key is unchanged.
func TestSameReplay(t *testing.T) {
	base := config.Replay{Store: "redis", Redis: config.Redis{Addresses: []string{"s1:26379", "s2:26379"},
		SentinelMaster: "wsgate", Prefix: "wsgate:"}}
	clone := func(f func(r *config.Replay)) config.Replay {
		r := base
		r.Redis.Addresses = append([]string(nil), base.Redis.Addresses...)
		f(&r)
		return r
	}
	if !sameReplay(base, clone(func(*config.Replay) {})) {
		t.Error("an identical replay section counts as changed")
	}
	for name, r := range map[string]config.Replay{
		"store":           clone(func(r *config.Replay) { r.Store = "memory" }),
		"address":         clone(func(r *config.Replay) { r.Redis.Address = "redis:6379" }),
		"addresses":       clone(func(r *config.Replay) { r.Redis.Addresses[1] = "s3:26379" }),
		"one address":     clone(func(r *config.Replay) { r.Redis.Addresses = r.Redis.Addresses[:1] }),
		"sentinel_master": clone(func(r *config.Replay) { r.Redis.SentinelMaster = "other" }),
		"prefix":          clone(func(r *config.Replay) { r.Redis.Prefix = "x:" }),
	} {
		if sameReplay(base, r) {
			t.Errorf("a changed %s counts as unchanged", name)
		}
	}
	// sameReplay names every field: a new one must be added there too.
	if n := reflect.TypeFor[config.Replay]().NumField(); n != 2 {
		t.Errorf("config.Replay has %d fields; update sameReplay", n)
	}
	if n := reflect.TypeFor[config.Redis]().NumField(); n != 4 {
		t.Errorf("config.Redis has %d fields; update sameReplay", n)
	}
}
