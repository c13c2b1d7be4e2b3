package deploy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"gopkg.in/yaml.v3"

	"wsgate/config"
	"wsgate/gateway"
	"wsgate/internal/gatewaytest"
)

// requireTool returns the path of an executable: skipped locally when
// missing, failed under CI (CI must not skip).
func requireTool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found (%s): %v", name, hint, err)
		}
		t.Skipf("%s not found (%s); skipping", name, hint)
	}
	return p
}

func TestPrometheusRulesPassPromtool(t *testing.T) {
	promtool := requireTool(t, "promtool", "apt-get install prometheus")
	for _, args := range [][]string{
		{"check", "rules", "prometheus/rules/wsgate.yml"},
		{"test", "rules", "prometheus/tests/wsgate_test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The scrape config names the rules directory the compose file mounts
	// and wsgate's admin port, and promtool accepts its syntax.
	out, err := exec.Command(promtool, "check", "config", "--syntax-only", "prometheus/prometheus.yml").CombinedOutput()
	if err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
	raw, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &pc); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pc.RuleFiles, []string{"/etc/prometheus/rules/*.yml"}) {
		t.Errorf("rule_files = %q", pc.RuleFiles)
	}
	if len(pc.ScrapeConfigs) != 1 || pc.ScrapeConfigs[0].MetricsPath != "/metrics" ||
		len(pc.ScrapeConfigs[0].StaticConfigs) != 1 ||
		!slices.Equal(pc.ScrapeConfigs[0].StaticConfigs[0].Targets, []string{"wsgate:9090"}) {
		t.Errorf("scrape_configs = %+v, want wsgate:9090/metrics (deploy/wsgate.yaml's admin_listen)", pc.ScrapeConfigs)
	}
}

// promQLKeywords are the words of PromQL that are not metric names.
var promQLKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
	// aggregation operators, which may be followed by "by (...)" before their "("
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// metricNames returns the metric names a PromQL expression selects. It is
// a tokenizer, not a parser: strings, label matchers ({...}), ranges
// ([...]) and grouping lists (by (...)) are skipped; an identifier followed
// by "(" is a function; what is left is a metric name.
func metricNames(expr string) []string {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipTo := func(i int, closer byte) int {
		for i < len(expr) && expr[i] != closer {
			if expr[i] == '"' || expr[i] == '\'' || expr[i] == '`' {
				q := expr[i]
				for i++; i < len(expr) && expr[i] != q; i++ {
					if expr[i] == '\\' {
						i++
					}
				}
			}
			i++
		}
		return i
	}
	skipGrouping := false
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipTo(i+1, c) + 1
		case c == '{':
			i = skipTo(i+1, '}') + 1
		case c == '[':
			i = skipTo(i+1, ']') + 1
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.' || expr[i] == '-' && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\n' || expr[k] == '\t') {
				k++
			}
			switch {
			case promQLKeywords[strings.ToLower(word)]:
				skipGrouping = word == "by" || word == "without" || word == "on" || word == "ignoring" ||
					word == "group_left" || word == "group_right"
			case k < len(expr) && expr[k] == '(':
				// a function call
			default:
				names = append(names, word)
			}
			i = j
			continue
		case c == '(' && skipGrouping:
			i = skipTo(i+1, ')') + 1
		case c == ' ' || c == '\n' || c == '\t':
			i++
			continue
		default:
			i++
		}
		skipGrouping = false
	}
	return names
}

func TestMetricNamesTokenizer(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`up{job="wsgate"} == 0`, []string{"up"}},
		{`sum by (route, le) (rate(a_bucket{route=~"x|y(z)"}[5m])) / clamp_min(sum by (route) (rate(b_total[$__rate_interval])), 1e-9) > 0.2`, []string{"a_bucket", "b_total"}},
		{`histogram_quantile(0.99, sum without (instance) (rate(x_seconds_bucket[5m]))) and on (route) c unless d offset 5m`, []string{"x_seconds_bucket", "c", "d"}},
		{`max(m{a="}"}) * group_left (secret) n`, []string{"m", "n"}},
	}
	for _, c := range cases {
		if got := metricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// queriedMetrics are the metric names the alert rules and the dashboard
// query, each with where it is used.
func queriedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where, expr string) {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, n := range names {
			used[n] = append(used[n], where)
		}
	}
	raw, err := os.ReadFile("prometheus/rules/wsgate.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			add("alert "+r.Alert+r.Record, r.Expr)
		}
	}
	raw, err = os.ReadFile("grafana/dashboards/wsgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query struct {
					Query string `json:"query"`
				} `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			add("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		// label_values(metric, label) is Grafana's, not PromQL: its first argument is the metric.
		q := strings.TrimSuffix(strings.TrimPrefix(v.Query.Query, "label_values("), ")")
		metric, _, _ := strings.Cut(q, ",")
		add("variable "+v.Name, metric)
	}
	return used
}

// Every metric the alert rules and the dashboard query is one a running
// gateway exports, once it has seen each kind of request the panels show.
func TestQueriedMetricsExist(t *testing.T) {
	used := queriedMetrics(t)
	exported := scrapeDrivenGateway(t)
	for name, where := range used {
		if name == "up" { // Prometheus's own, per scrape target
			continue
		}
		if !exported[name] {
			t.Errorf("%s is queried (%s) but not exported by the gateway", name, strings.Join(slices.Compact(where), "; "))
		}
	}
	// The panels the issue names are all there.
	for _, name := range []string{"wsgate_requests_total", "wsgate_security_rejections_total",
		"wsgate_request_duration_seconds_bucket", "wsgate_upstream_duration_seconds_bucket",
		"wsgate_secret_age_seconds", "wsgate_secret_refresh_total"} {
		if len(used[name]) == 0 {
			t.Errorf("%s is not queried by the rules or the dashboard", name)
		}
	}
}

// scrapeDrivenGateway builds a gateway with a file secret, an OAuth route
// with a rate limit and a public route whose upstream is gone, sends an
// accepted, a refused, a rate-limited and an upstream-failed request, and
// returns the metric names on /metrics.
func scrapeDrivenGateway(t *testing.T) map[string]bool {
	t.Helper()
	dir := t.TempDir()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	gatewaytest.WriteSecret(t, filepath.Join(dir, "secrets"), "wsgate/jwks/hmac",
		map[string]string{"secret": base64.StdEncoding.EncodeToString(key)})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(up.Close)
	// An address nothing listens on: the upstream call fails.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()

	const iss, aud = "https://idp.test.invalid/", "wsgate-test"
	cfg, err := config.Load([]byte(`
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: api
    path_prefix: /api
    upstream: "` + up.URL + `"
    oauth: {issuer: "` + iss + `", audience: [` + aud + `], jwks_secret: wsgate/jwks/hmac, algorithms: [HS256]}
    rate_limit: {per: route, rate: 1, burst: 2}
  - {name: gone, path_prefix: /gone, upstream: "` + dead + `", public: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Deps{BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good, err := jwt.Signed(signer).Claims(map[string]any{"iss": iss, "aud": aud, "sub": "alice",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	send := func(path, token string) int {
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		g.Handler().ServeHTTP(w, r)
		return w.Code
	}
	// The burst of 2 lets one good and one refused request through the
	// limiter; the third is rate limited.
	for _, step := range []struct {
		path, token string
		want        int
	}{
		{"/api/x", good, http.StatusOK},
		{"/api/x", good + "x", http.StatusUnauthorized},
		{"/api/x", good, http.StatusTooManyRequests},
		{"/gone/x", "", http.StatusBadGateway},
	} {
		if got := send(step.path, step.token); got != step.want {
			t.Fatalf("GET %s: status %d, want %d", step.path, got, step.want)
		}
	}

	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/metrics", nil)
	w := httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", w.Code)
	}
	// The label values the rules and panels select on are the ones the
	// gateway writes.
	for _, want := range []string{`outcome="upstream_failed"`, `outcome="rate_limited"`, `outcome="rejected"`,
		`outcome="accepted"`, `reason="rate_limited"`, `wsgate_secret_age_seconds{secret="wsgate/jwks/hmac"}`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	exported := map[string]bool{}
	sc := bufio.NewScanner(w.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		exported[name] = true
	}
	return exported
}
