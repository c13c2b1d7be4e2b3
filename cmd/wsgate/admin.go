package main

import (
	"encoding/json"
	"net/http"
	"time"

	"wsgate/secrets"
)

// readiness is the /readyz body. It names secrets and key sets and their
// state, never values.
type readiness struct {
	Ready bool `json:"ready"`
	// Stale reports that some secret or key set is served from its last good value.
	Stale   bool                   `json:"stale"`
	Secrets []secrets.SecretStatus `json:"secrets"`
	// JWKS lists the jwks_url key sources of REST routes.
	JWKS []jwksStatus `json:"jwks,omitempty"`
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

// adminHandler serves /healthz (process alive) and /readyz (every route's
// secrets and key sets loaded; 503 otherwise). It belongs on admin_listen only.
func adminHandler(mgr *secrets.Manager, jwks []*jwksEntry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		st := readiness{Ready: true, Secrets: mgr.Status()}
		for _, s := range st.Secrets {
			if !s.Loaded {
				st.Ready = false
			}
			if s.Loaded && !s.StaleSince.IsZero() {
				st.Stale = true
			}
		}
		for _, j := range jwks {
			loaded, fetched, err := j.src.Status()
			js := jwksStatus{Route: j.route, URL: j.url, Loaded: loaded, FetchedAt: fetched}
			if err != nil {
				js.Error = err.Error()
				if loaded {
					st.Stale = true
				}
			}
			if !loaded {
				st.Ready = false
			}
			st.JWKS = append(st.JWKS, js)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !st.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	return mux
}
