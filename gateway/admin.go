package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"wsgate/config"
	"wsgate/proxy"
	"wsgate/secrets"
)

// readiness is the /readyz body. It names secrets and key sets and their
// state, never values.
type readiness struct {
	Ready bool `json:"ready"`
	// Stale reports that some secret or key set is served from its last good value.
	Stale bool `json:"stale"`
	// Routes reports each route: ready when every secret and key set it uses is loaded.
	Routes []routeStatus `json:"routes"`
	// Listener reports the listener's TLS secrets (certificate, client CA), if any.
	Listener *routeStatus           `json:"listener,omitempty"`
	Secrets  []secrets.SecretStatus `json:"secrets"`
	// JWKS lists the jwks_url key sources of REST routes.
	JWKS []jwksStatus `json:"jwks,omitempty"`
	// Replay reports the replay store.
	Replay replayStatus `json:"replay"`
}

// replayStatus reports the replay store; a shared store that does not
// answer makes soap routes answer 503, so it makes the gateway not ready.
type replayStatus struct {
	Store string `json:"store"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// routeStatus is one route's readiness.
type routeStatus struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
	// Ready is false while any of its secrets or key sets never loaded (it answers 503).
	Ready bool `json:"ready"`
	// Secrets are the secret paths it uses.
	Secrets []string `json:"secrets,omitempty"`
	// NotLoaded lists what never loaded.
	NotLoaded []string `json:"not_loaded,omitempty"`
	// Upstreams reports each upstream's health. It does not make the route
	// unready: every replica shares the upstreams, so taking this one out of
	// service would move no traffic anywhere better.
	Upstreams []proxy.UpstreamStatus `json:"upstreams,omitempty"`
}

// jwksStatus describes one route's JWKS source for /readyz.
type jwksStatus struct {
	Route string `json:"route"`
	URL   string `json:"url"`
	// Loaded reports whether a key set is held (possibly stale).
	Loaded bool `json:"loaded"`
	// FetchedAt is when the held set was fetched.
	FetchedAt time.Time `json:"fetched_at,omitzero"`
	// Error is the last fetch failure; empty while fresh.
	Error string `json:"error,omitempty"`
}

// routeSecrets lists the secret paths a route reads, in config order.
func routeSecrets(r *config.Route) []string {
	var out []string
	add := func(p ...string) {
		for _, s := range p {
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	if s := r.SOAP; s != nil {
		add(s.Trust, s.UsernameToken, s.SignResponse)
		add(soapSecuritySecrets(s)...)
	}
	if o := r.OAuth; o != nil {
		add(o.JWKSSecret)
		if o.Introspection != nil {
			add(o.Introspection.Client)
		}
	}
	if b := r.Bridge; b != nil {
		if b.Sign != nil {
			add(b.Sign.Identity)
		}
		if b.VerifyResponse != nil {
			add(b.VerifyResponse.Trust)
		}
		if b.Encrypt != nil {
			add(b.Encrypt.Certificate)
		}
	}
	if u := r.UpstreamTLS; u != nil {
		add(u.CA, u.Identity)
	}
	return out
}

// readinessOf reports g: config loaded (g exists), and every secret and key
// set of every route loaded.
func readinessOf(ctx context.Context, g *generation) readiness {
	st := readiness{Ready: true, Secrets: g.secrets.Status(), Replay: replayStatus{Store: g.cfg.Replay.Store, OK: true}}
	var pkiPath string
	if g.tls != nil && g.tls.pki != nil {
		ps := g.tls.pki.cert.Status()
		pkiPath = ps.Path
		st.Secrets = append(st.Secrets, ps)
	}
	if g.stores != nil && g.stores.ping != nil {
		if err := g.stores.ping(ctx); err != nil {
			st.Ready, st.Replay.OK, st.Replay.Error = false, false, err.Error()
		}
	}
	loaded := map[string]bool{}
	for _, s := range st.Secrets {
		if !s.Loaded {
			st.Ready = false
		}
		if s.Loaded && !s.StaleSince.IsZero() {
			st.Stale = true
		}
		// A path registered under several kinds is loaded only if all loaded.
		if v, seen := loaded[s.Path]; !seen || v {
			loaded[s.Path] = s.Loaded
		}
	}
	jwksLoaded := map[string]bool{}
	for _, j := range g.jwks {
		ok, fetched, err := j.src.Status()
		js := jwksStatus{Route: j.route, URL: j.url, Loaded: ok, FetchedAt: fetched}
		if err != nil {
			js.Error = err.Error()
			if ok {
				st.Stale = true
			}
		}
		if !ok {
			st.Ready = false
		}
		jwksLoaded[j.route] = ok
		st.JWKS = append(st.JWKS, js)
	}
	status := func(name, kind string, paths []string) routeStatus {
		rs := routeStatus{Name: name, Kind: kind, Ready: true, Secrets: paths}
		for _, p := range paths {
			if !loaded[p] {
				rs.Ready = false
				rs.NotLoaded = append(rs.NotLoaded, p)
			}
		}
		return rs
	}
	for i := range g.cfg.Routes {
		r := &g.cfg.Routes[i]
		rs := status(r.Name, r.Kind(), routeSecrets(r))
		if ok, has := jwksLoaded[r.Name]; has && !ok {
			rs.Ready = false
			rs.NotLoaded = append(rs.NotLoaded, "jwks_url")
		}
		for _, p := range g.pools {
			if p.route == r.Name {
				rs.Upstreams = append(rs.Upstreams, p.pool.Status()...)
			}
		}
		for _, c := range g.ready {
			if c.route == r.Name && c.check(g.now()) != nil {
				rs.Ready, st.Ready = false, false
				rs.NotLoaded = append(rs.NotLoaded, c.what)
			}
		}
		st.Routes = append(st.Routes, rs)
	}
	if t := g.cfg.TLS; t != nil {
		ls := status("listener", "tls", slices.DeleteFunc([]string{t.Secret, pkiPath, t.ClientCA}, func(s string) bool { return s == "" }))
		st.Listener = &ls
	}
	return st
}

// adminHandler serves /healthz (process alive), /readyz (the configuration
// in service has every secret and key set loaded; 503 otherwise) and
// /metrics (Prometheus text format, from reg). It belongs on admin_listen only.
func adminHandler(cur func() *generation, reg prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		st := readinessOf(r.Context(), cur())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !st.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	return mux
}

// AdminHandler serves /healthz, /readyz and /metrics for the configuration
// in service. It belongs on admin_listen only, never on the proxy listener.
func (g *Gateway) AdminHandler() http.Handler { return adminHandler(g.current, g.registry) }
