package gateway

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// flakyUpstream drops the connection, without answering, on the first N
// requests to a path whose first segment is failN; it counts every request
// it sees by method and path.
type flakyUpstream struct {
	mu    sync.Mutex
	calls map[string]int
}

func (f *flakyUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	key := r.Method + " " + r.URL.Path
	f.calls[key]++
	n := f.calls[key]
	f.mu.Unlock()
	seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if fails, err := strconv.Atoi(strings.TrimPrefix(seg, "fail")); err == nil && n <= fails {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // no answer at all
		}
		return
	}
	// No keep-alive: net/http itself re-sends a replayable request once
	// when a reused connection dies, which would blur the counts.
	w.Header().Set("Connection", "close")
	_, _ = w.Write([]byte("ok"))
}

func (f *flakyUpstream) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

// retries re-send idempotent, bodiless requests the upstream never
// answered; a POST is never sent twice; a route without retries sends once.
func TestRouteRetries(t *testing.T) {
	up := &flakyUpstream{calls: map[string]int{}}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	g := newTestGateway(t, t.TempDir(), `
secrets: {backend: file, file: {dir: secrets}}
routes:
  - {name: retry, path_prefix: /retry, upstream: "`+srv.URL+`", public: true, retries: 2}
  - {name: once, path_prefix: /once, upstream: "`+srv.URL+`", public: true}
`, testclockNow(), &syncBuffer{})

	tests := []struct {
		name, method, path, body string
		want                     int
		upstreamKey              string
		upstreamCalls            int
	}{
		{"GET retried past two drops", http.MethodGet, "/retry/fail2/a", "", http.StatusOK, "GET /fail2/a", 3},
		{"GET gives up after retries", http.MethodGet, "/retry/fail3/b", "", http.StatusBadGateway, "GET /fail3/b", 3},
		{"DELETE retried", http.MethodDelete, "/retry/fail1/c", "", http.StatusOK, "DELETE /fail1/c", 2},
		{"POST never sent twice", http.MethodPost, "/retry/fail1/d", "<x/>", http.StatusBadGateway, "POST /fail1/d", 1},
		{"PATCH never sent twice", http.MethodPatch, "/retry/fail1/e", "{}", http.StatusBadGateway, "PATCH /fail1/e", 1},
		{"PUT with a body not retried", http.MethodPut, "/retry/fail1/f", "{}", http.StatusBadGateway, "PUT /fail1/f", 1},
		{"route without retries", http.MethodGet, "/once/fail1/g", "", http.StatusBadGateway, "GET /fail1/g", 1},
		{"an answer is not retried", http.MethodGet, "/retry/ok/h", "", http.StatusOK, "GET /ok/h", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r *http.Request
			if tt.body != "" {
				r = httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			} else {
				r = httptest.NewRequest(tt.method, tt.path, nil)
			}
			w := serveReq(g, r)
			if w.Code != tt.want {
				t.Errorf("status %d %s, want %d", w.Code, w.Body, tt.want)
			}
			if n := up.count(tt.upstreamKey); n != tt.upstreamCalls {
				t.Errorf("upstream saw %q %d times, want %d", tt.upstreamKey, n, tt.upstreamCalls)
			}
		})
	}
}
