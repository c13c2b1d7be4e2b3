package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"wsgate/config"
)

const k8sDir = "kubernetes"

// manifests are the objects of deploy/kubernetes, decoded strictly.
type manifests struct {
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	other        []string // kind/name of the rest
	serviceAccts []*corev1.ServiceAccount
}

// decodeStrict decodes one YAML document into out as the API server's
// strict field validation would: an unknown or misspelled field is an error.
func decodeStrict(doc []byte, out any) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

// splitYAML splits a multi-document YAML file on "---" lines.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range strings.Split("\n"+string(b), "\n---\n") {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// decodeObject decodes doc into the API type of its apiVersion and kind.
func decodeObject(doc []byte, m *manifests) (string, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return "", err
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	var obj interface{ GetName() string }
	switch gvk {
	case "apps/v1/Deployment":
		o := &appsv1.Deployment{}
		m.deployments, obj = append(m.deployments, o), o
	case "v1/Service":
		o := &corev1.Service{}
		m.services, obj = append(m.services, o), o
	case "v1/ConfigMap":
		o := &corev1.ConfigMap{}
		m.configMaps, obj = append(m.configMaps, o), o
	case "v1/ServiceAccount":
		o := &corev1.ServiceAccount{}
		m.serviceAccts, obj = append(m.serviceAccts, o), o
	case "v1/Namespace":
		obj = &corev1.Namespace{}
	case "policy/v1/PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		m.pdbs, obj = append(m.pdbs, o), o
	case "autoscaling/v2/HorizontalPodAutoscaler":
		o := &autoscalingv2.HorizontalPodAutoscaler{}
		m.hpas, obj = append(m.hpas, o), o
	case "networking.k8s.io/v1/NetworkPolicy":
		obj = &networkingv1.NetworkPolicy{}
	default:
		return "", fmt.Errorf("unexpected apiVersion/kind %q", gvk)
	}
	if err := decodeStrict(doc, obj); err != nil {
		return "", fmt.Errorf("%s: %w", gvk, err)
	}
	if obj.GetName() == "" {
		return "", fmt.Errorf("%s without metadata.name", gvk)
	}
	if gvk != "apps/v1/Deployment" && gvk != "v1/Service" && gvk != "v1/ConfigMap" && gvk != "v1/ServiceAccount" &&
		gvk != "policy/v1/PodDisruptionBudget" && gvk != "autoscaling/v2/HorizontalPodAutoscaler" {
		m.other = append(m.other, tm.Kind+"/"+obj.GetName())
	}
	return tm.Kind + "/" + obj.GetName(), nil
}

// loadManifests reads kustomization.yaml and every resource it lists,
// checking that it lists every manifest in the folder.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kust struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Namespace  string `json:"namespace"`
		Labels     []struct {
			Pairs            map[string]string `json:"pairs"`
			IncludeSelectors bool              `json:"includeSelectors"`
		} `json:"labels"`
		Resources []string `json:"resources"`
		Images    []struct {
			Name, NewName, NewTag string
		} `json:"images"`
	}
	if err := decodeStrict(raw, &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if kust.Kind != "Kustomization" || kust.Namespace != "wsgate" {
		t.Errorf("kustomization.yaml: kind %q namespace %q", kust.Kind, kust.Namespace)
	}
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Clone(kust.Resources)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %q, want every manifest in the folder %q", got, want)
	}
	m := &manifests{}
	seen := map[string]bool{}
	for _, f := range kust.Resources {
		raw, err := os.ReadFile(filepath.Join(k8sDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAML(raw) {
			id, err := decodeObject(doc, m)
			if err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
				continue
			}
			if seen[id] {
				t.Errorf("%s: %s defined twice", f, id)
			}
			seen[id] = true
		}
	}
	return m
}

// Strict decoding refuses what a typo would silently drop.
func TestManifestDecodingIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelled field": "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {minAvailabel: 2}\n",
		"wrong type":       "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: {port: 80}}\n",
		"unknown kind":     "apiVersion: v1\nkind: Servise\nmetadata: {name: x}\n",
		"no name":          "apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n",
	} {
		if _, err := decodeObject([]byte(doc), &manifests{}); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := decodeObject([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"), &manifests{}); err != nil {
		t.Errorf("a valid ConfigMap: %v", err)
	}
}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	if t.Failed() {
		t.FailNow()
	}
	deploy := map[string]*appsv1.Deployment{}
	for _, d := range m.deployments {
		deploy[d.Name] = d
	}
	for _, name := range []string{"wsgate", "redis", "vault"} {
		if deploy[name] == nil {
			t.Fatalf("no %s Deployment", name)
		}
	}

	// Every pod runs as non-root on a read-only root, without privilege
	// escalation or capabilities, with resource requests and limits.
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("deployment %s: pod securityContext must set runAsNonRoot and a non-zero runAsUser", d.Name)
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("deployment %s: want seccompProfile RuntimeDefault", d.Name)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("deployment %s: automountServiceAccountToken must be false", d.Name)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("deployment %s: selector %v does not match its pod labels %v (%v)", d.Name, d.Spec.Selector, d.Spec.Template.Labels, err)
		}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s/%s: readOnlyRootFilesystem must be true", d.Name, c.Name)
			}
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s/%s: allowPrivilegeEscalation must be false", d.Name, c.Name)
			}
			if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s/%s: capabilities must drop ALL and add none", d.Name, c.Name)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
				if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
					t.Errorf("%s/%s: %s request %v and limit %v must be set, request <= limit", d.Name, c.Name, r, &req, &lim)
				}
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s/%s: readiness and liveness probes are required", d.Name, c.Name)
			}
			if _, tag, ok := strings.Cut(c.Image, ":"); d.Name != "wsgate" && (!ok || tag == "latest") {
				t.Errorf("%s/%s: image %q needs a pinned tag", d.Name, c.Name, c.Image)
			}
		}
	}

	gw := deploy["wsgate"]
	if gw.Spec.Replicas == nil || *gw.Spec.Replicas < 2 {
		t.Errorf("wsgate replicas = %v, want several", gw.Spec.Replicas)
	}
	podLabels := labels.Set(gw.Spec.Template.Labels)
	if len(gw.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("wsgate pod has %d containers, want 1", len(gw.Spec.Template.Spec.Containers))
	}
	c := gw.Spec.Template.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}

	// The config in the ConfigMap passes check-config, and the pod runs it.
	var cm *corev1.ConfigMap
	for _, x := range m.configMaps {
		if x.Name == "wsgate-config" {
			cm = x
		}
	}
	if cm == nil {
		t.Fatal("no wsgate-config ConfigMap")
	}
	rep := config.Check([]byte(cm.Data["wsgate.yaml"]))
	for _, p := range rep.Problems {
		t.Errorf("ConfigMap wsgate-config wsgate.yaml: %s", p)
	}
	cfg := rep.Config
	if cfg == nil {
		t.Fatal("wsgate.yaml did not load")
	}
	if !slices.Equal(c.Args, []string{"serve", "-config", "/etc/wsgate/wsgate.yaml"}) {
		t.Errorf("wsgate args = %q", c.Args)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	vols := map[string]corev1.Volume{}
	for _, v := range gw.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	if v := vols[mounts["/etc/wsgate"].Name]; v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Errorf("/etc/wsgate is not the %s ConfigMap", cm.Name)
	}
	portOf := func(hostport string) int32 {
		_, p, _ := net.SplitHostPort(hostport)
		var n int32
		fmt.Sscan(p, &n)
		return n
	}
	if portOf(cfg.AdminListen) != ports["admin"] || portOf(cfg.Listen) != ports["proxy"] || ports["admin"] == 0 {
		t.Errorf("container ports %v do not match listen %s / admin_listen %s", ports, cfg.Listen, cfg.AdminListen)
	}

	// Probes: liveness on /healthz, readiness on /readyz, both on the admin port.
	for name, probe := range map[string]struct {
		p    *corev1.Probe
		path string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}, "startup": {c.StartupProbe, "/healthz"}} {
		if probe.p == nil || probe.p.HTTPGet == nil {
			t.Errorf("wsgate %s probe: want an httpGet probe", name)
			continue
		}
		g := probe.p.HTTPGet
		if g.Path != probe.path || (g.Port.StrVal != "admin" && g.Port.IntVal != ports["admin"]) {
			t.Errorf("wsgate %s probe: %s on port %v, want %s on the admin port", name, g.Path, g.Port.String(), probe.path)
		}
	}

	// Vault by kubernetes auth with a projected, Vault-audience token; the
	// replay cache shared in Redis across the replicas.
	a := cfg.Secrets.Vault.Auth
	if cfg.Secrets.Backend != "vault" || a.Method != "kubernetes" || a.Role == "" {
		t.Errorf("secrets: backend %q auth %+v, want vault by kubernetes auth", cfg.Secrets.Backend, a)
	}
	tokVol := vols[mounts[filepath.Dir(a.JWTFile)].Name]
	if tokVol.Projected == nil || len(tokVol.Projected.Sources) != 1 || tokVol.Projected.Sources[0].ServiceAccountToken == nil ||
		tokVol.Projected.Sources[0].ServiceAccountToken.Path != filepath.Base(a.JWTFile) ||
		tokVol.Projected.Sources[0].ServiceAccountToken.Audience != "vault" {
		t.Errorf("jwt_file %s is not a projected service-account token with audience vault", a.JWTFile)
	}
	if gw.Spec.Template.Spec.ServiceAccountName != "wsgate" || len(m.serviceAccts) != 1 || m.serviceAccts[0].Name != "wsgate" {
		t.Errorf("wsgate pods must run as the wsgate service account")
	}
	if cfg.Replay.Store != "redis" || !strings.HasPrefix(cfg.Replay.Redis.Address, "redis.") {
		t.Errorf("replay: %+v, want the redis Service", cfg.Replay)
	}
	if !strings.HasPrefix(cfg.Secrets.Vault.Address, "http://vault.") {
		t.Errorf("vault address %q, want the vault Service", cfg.Secrets.Vault.Address)
	}

	// The PDB selects exactly wsgate's pods and leaves room to drain a node.
	if len(m.pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(m.pdbs))
	}
	pdb := m.pdbs[0]
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(podLabels) {
		t.Errorf("PDB selector %v does not match wsgate's pods %v", pdb.Spec.Selector, podLabels)
	}
	for _, d := range m.deployments {
		if d != gw && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("PDB selector also matches %s's pods", d.Name)
		}
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntVal < 1 || pdb.Spec.MinAvailable.IntVal >= *gw.Spec.Replicas {
		t.Errorf("PDB minAvailable %v must be at least 1 and below the %d replicas", pdb.Spec.MinAvailable, *gw.Spec.Replicas)
	}

	// The HPA scales the wsgate Deployment and never below the PDB's floor + 1.
	if len(m.hpas) != 1 {
		t.Fatalf("%d HPAs, want 1", len(m.hpas))
	}
	hpa := m.hpas[0]
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != gw.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("HPA scales %+v, want Deployment wsgate", ref)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas <= pdb.Spec.MinAvailable.IntVal || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
		t.Errorf("HPA replicas %v..%d vs PDB minAvailable %v", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, pdb.Spec.MinAvailable)
	}
	if len(hpa.Spec.Metrics) == 0 {
		t.Error("HPA has no metrics")
	}

	// Every Service selects the pods of one Deployment, on ports they name.
	for _, s := range m.services {
		var target *appsv1.Deployment
		for _, d := range m.deployments {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				if target != nil {
					t.Errorf("service %s selects both %s and %s", s.Name, target.Name, d.Name)
				}
				target = d
			}
		}
		if target == nil {
			t.Errorf("service %s selects no pods", s.Name)
			continue
		}
		named := map[string]bool{}
		for _, c := range target.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				named[p.Name] = true
			}
		}
		for _, p := range s.Spec.Ports {
			if !named[p.TargetPort.StrVal] {
				t.Errorf("service %s port %s targets %q, not a named port of %s", s.Name, p.Name, p.TargetPort.String(), target.Name)
			}
		}
	}
	if !slices.Contains(m.other, "NetworkPolicy/redis-from-wsgate") || !slices.Contains(m.other, "Namespace/wsgate") {
		t.Errorf("other objects %q, want the wsgate namespace and the redis network policy", m.other)
	}
}
