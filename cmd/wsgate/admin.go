package main

import (
	"encoding/json"
	"net/http"

	"wsgate/secrets"
)

// readiness is the /readyz body. It names secrets and their state, never values.
type readiness struct {
	Ready bool `json:"ready"`
	// Stale reports that some secret is served from its last good value.
	Stale   bool                   `json:"stale"`
	Secrets []secrets.SecretStatus `json:"secrets"`
}

// adminHandler serves /healthz (process alive) and /readyz (every route's
// secrets loaded; 503 otherwise). It belongs on admin_listen only.
func adminHandler(mgr *secrets.Manager) http.Handler {
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
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !st.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	return mux
}
