package config

import "time"

// Default values applied by SetDefaults where the file leaves a field unset.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultLogLevel        = "info"
	DefaultLogFormat       = "json"
	DefaultMaxBodyBytes    = 10 << 20
	DefaultMemoryBudget    = 512 << 20
	DefaultMaxHeaderBytes  = 64 << 10
	DefaultReadTimeout     = 30 * time.Second
	DefaultUpstreamTimeout = 60 * time.Second
	DefaultMaxXMLDepth     = 64
	DefaultMaxXMLElements  = 500000
	DefaultRefreshInterval = 5 * time.Minute
	DefaultKVMount         = "secret"
	DefaultVaultAuth       = "token"
	DefaultReplayStore     = "memory"
	DefaultRedisPrefix     = "wsgate:"
	DefaultTimestampTTL    = 300 * time.Second
	DefaultFutureSkew      = 60 * time.Second
	DefaultLeeway          = 60 * time.Second
	DefaultIntrospectTTL   = 60 * time.Second
	DefaultSOAPVersion     = "1.1"
	DefaultShutdownTimeout = 30 * time.Second
	DefaultDPoPMaxAge      = 60 * time.Second
	DefaultAPIKeyHeader    = "X-API-Key"
	DefaultBalance         = "round_robin"
	DefaultEjectFailures   = 3
	DefaultEjectFor        = 30 * time.Second
	DefaultCheckInterval   = 10 * time.Second
	DefaultCheckTimeout    = 2 * time.Second
)

// SetDefaults fills every unset field with its default. Load calls it; code
// that builds a Config by hand (the embedded demo) calls it before Validate.
func (c *Config) SetDefaults() {
	setStr(&c.Listen, DefaultListen)
	setStr(&c.Log.Level, DefaultLogLevel)
	setStr(&c.Log.Format, DefaultLogFormat)

	l := &c.Limits
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MemoryBudgetBytes == 0 {
		l.MemoryBudgetBytes = DefaultMemoryBudget
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	setDur(&l.ReadTimeout, DefaultReadTimeout)
	setDur(&l.UpstreamTimeout, DefaultUpstreamTimeout)
	if l.MaxXMLDepth == 0 {
		l.MaxXMLDepth = DefaultMaxXMLDepth
	}
	if l.MaxXMLElements == 0 {
		l.MaxXMLElements = DefaultMaxXMLElements
	}
	setDur(&l.ShutdownTimeout, DefaultShutdownTimeout)

	setDur(&c.Secrets.RefreshInterval, DefaultRefreshInterval)
	setStr(&c.Secrets.Vault.KVMount, DefaultKVMount)
	setStr(&c.Secrets.Vault.Auth.Method, DefaultVaultAuth)
	setStr(&c.Replay.Store, DefaultReplayStore)
	setStr(&c.Replay.Redis.Prefix, DefaultRedisPrefix)

	for i := range c.Routes {
		c.Routes[i].setDefaults()
	}
}

func (r *Route) setDefaults() {
	setStr(&r.Balance, DefaultBalance)
	if r.PassiveHealth.Failures == 0 {
		r.PassiveHealth.Failures = DefaultEjectFailures
	}
	setDur(&r.PassiveHealth.EjectFor, DefaultEjectFor)
	if h := r.HealthCheck; h != nil {
		setDur(&h.Interval, DefaultCheckInterval)
		setDur(&h.Timeout, min(DefaultCheckTimeout, h.Interval.D()))
	}
	if s := r.SOAP; s != nil {
		// nil means "not written"; an explicit [] stays empty and fails validation.
		if s.RequireSigned == nil {
			s.RequireSigned = []string{"body", "timestamp"}
		}
		setDur(&s.Timestamp.TTL, DefaultTimestampTTL)
		setDur(&s.Timestamp.FutureSkew, DefaultFutureSkew)
		if s.StripSecurityHeader == nil {
			t := true
			s.StripSecurityHeader = &t
		}
	}
	if o := r.OAuth; o != nil && o.DPoP != nil {
		setDur(&o.DPoP.MaxAge, DefaultDPoPMaxAge)
	}
	if k := r.APIKey; k != nil {
		setStr(&k.Header, DefaultAPIKeyHeader)
	}
	if o := r.OAuth; o != nil {
		setDur(&o.Leeway, DefaultLeeway)
		if o.Introspection != nil {
			setDur(&o.Introspection.CacheTTL, DefaultIntrospectTTL)
		}
	}
	if b := r.Bridge; b != nil {
		setStr(&b.SOAPVersion, DefaultSOAPVersion)
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}
