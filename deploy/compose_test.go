package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
)

func TestMain(m *testing.M) {
	// gin picks its mode at init; keep its debug banner out of test output.
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// The compose file runs Prometheus and Grafana beside wsgate, mounting
// files that exist, and Grafana's provisioned data source is the one the
// dashboard names. (`docker-compose config -q` in scripts/test.sh checks
// the file's syntax; this checks what it points at.)
func TestComposeObservability(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prometheus", "grafana"} {
		s, ok := compose.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no %s service", name)
		}
		if _, tag, ok := strings.Cut(s.Image, ":"); !ok || tag == "" || tag == "latest" {
			t.Errorf("%s image %q: want a pinned tag", name, s.Image)
		}
	}
	mounts := map[string]string{}
	for name, s := range compose.Services {
		for _, v := range s.Volumes {
			src, rest, ok := strings.Cut(v, ":")
			if !ok || !strings.HasPrefix(src, "./") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
			dst, _, _ := strings.Cut(rest, ":")
			mounts[dst] = src
		}
	}
	for dst, src := range map[string]string{
		"/etc/prometheus/prometheus.yml": "./deploy/prometheus/prometheus.yml",
		"/etc/prometheus/rules":          "./deploy/prometheus/rules",
		"/etc/grafana/provisioning":      "./deploy/grafana/provisioning",
		"/var/lib/grafana/dashboards":    "./deploy/grafana/dashboards",
	} {
		if mounts[dst] != src {
			t.Errorf("%s is mounted from %q, want %s", dst, mounts[dst], src)
		}
	}

	raw, err = os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var dsFile struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &dsFile); err != nil {
		t.Fatal(err)
	}
	if len(dsFile.Datasources) != 1 || dsFile.Datasources[0].Type != "prometheus" ||
		dsFile.Datasources[0].URL != "http://prometheus:9090" {
		t.Fatalf("data sources = %+v, want the compose prometheus", dsFile.Datasources)
	}
	uid := dsFile.Datasources[0].UID

	raw, err = os.ReadFile("grafana/provisioning/dashboards/wsgate.yml")
	if err != nil {
		t.Fatal(err)
	}
	var provider struct {
		Providers []struct {
			Options struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(raw, &provider); err != nil {
		t.Fatal(err)
	}
	if len(provider.Providers) != 1 || provider.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard providers = %+v, want the mounted dashboards folder", provider.Providers)
	}

	raw, err = os.ReadFile("grafana/dashboards/wsgate.json")
	if err != nil {
		t.Fatal(err)
	}
	type dsRef struct{ Type, UID string }
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource dsRef  `json:"datasource"`
			Targets    []struct {
				Datasource dsRef `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || len(dash.Panels) < 6 {
		t.Fatalf("dashboard uid %q with %d panels", dash.UID, len(dash.Panels))
	}
	for _, p := range dash.Panels {
		refs := []dsRef{p.Datasource}
		for _, tg := range p.Targets {
			refs = append(refs, tg.Datasource)
		}
		for _, r := range refs {
			if r.UID != uid || r.Type != "prometheus" {
				t.Errorf("panel %q uses data source %+v, want the provisioned %q", p.Title, r, uid)
			}
		}
	}
}
