package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/check")

func problemLines(r *Report) string {
	var b strings.Builder
	for _, p := range r.Problems {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// TestCheckGolden: each testdata/check/X.yaml gives exactly the problems in
// X.golden (empty for a valid file), and a Config exactly when there are none.
func TestCheckGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/check/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			r := Check(loadFile(t, in))
			got := problemLines(r)
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := string(loadFile(t, golden)); got != want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, want)
			}
			if (r.Config == nil) == (len(r.Problems) == 0) {
				t.Errorf("Config %v with %d problems", r.Config != nil, len(r.Problems))
			}
		})
	}
}

// The file with several mistakes of each kind gives one line per mistake.
func TestCheckReportsEveryMistake(t *testing.T) {
	r := Check(loadFile(t, "testdata/check/mistakes.yaml"))
	var paths []string
	for _, p := range r.Problems {
		paths = append(paths, p.Path)
	}
	want := []string{
		"lisen", "admin_listen", "log.level", "log.fromat",
		"limits.max_body_bytes", "limits.read_timeout", "limits.upstream_timeout", "trusted_proxies",
		"routes[0].path_prefx", "routes[0].soap.trsut", "routes[0].soap.timestamp.future_skew",
		"routes[1].name", "routes[1].path_prefix", "routes[1].upstream", "routes[1].oauth.audience",
		"routes[1].oauth.algorithms[1]", "routes[1].oauth.scopes[0].methods[0]",
		"routes[1].rate_limit.per", "routes[1].rate_limit.rate",
		"routes[2].public", "routes[2].rate_limit.surprise", "routes[3]",
	}
	if !slices.Equal(paths, want) {
		t.Errorf("paths:\n got  %q\n want %q", paths, want)
	}
}

var goTypeRE = regexp.MustCompile(`config\.|\bint64\b|\bfloat64\b|\[\]string|map\[|\btype\b|!!`)

// quotedRE matches a value quoted into a problem (%q): the user's own text,
// which may spell anything, so goTypeRE looks at the rest.
var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func TestCheckCases(t *testing.T) {
	const ok = "secrets: {backend: file, file: {dir: s}}\n"
	const route = "routes:\n  - {name: a, path_prefix: /a, upstream: 'http://u', public: true}\n"
	tests := []struct {
		name string
		doc  string
		want []string // exact problems, in order; nil means valid
	}{
		{"valid", ok + route, nil},
		{"unknown top-level key", ok + route + "listn: x\n", []string{"listn: unknown key; did you mean listen? (line 4)"}},
		{"case and dash", ok + route + "Admin-Listen: x\n", []string{"Admin-Listen: unknown key; did you mean admin_listen? (line 4)"}},
		{"transposition", ok + "routes:\n  - {name: a, path_prefix: /a, upstream: 'http://u', soap: {trsut: t}}\n",
			[]string{"routes[0].soap.trsut: unknown key; did you mean trust? (line 3)"}},
		{"cut short", ok + route + "proxies: []\n", []string{"proxies: unknown key; did you mean trusted_proxies? (line 4)"}},
		{"nothing close", ok + route + "log: {zzz: 1}\n", []string{"log.zzz: unknown key; valid here: level, format (line 4)"}},
		{"typo does not also say required", ok + "routes:\n  - {name: a, path_prefx: /a, upstream: 'http://u', public: true}\n",
			[]string{"routes[0].path_prefx: unknown key; did you mean path_prefix? (line 3)"}},
		{"typo next to the real key still validates it", ok + "routes:\n  - {name: a, path_prefix: a, path_prefx: /a, upstream: 'http://u', public: true}\n",
			[]string{`routes[0].path_prefix: must start with "/" (line 3)`, "routes[0].path_prefx: unknown key; did you mean path_prefix? (line 3)"}},
		{"duplicate key", ok + route + "listen: a:1\nlisten: b:2\n", []string{"listen: duplicate key (first at line 4) (line 5)"}},
		{"string for a list", ok + route + "trusted_proxies: 10.0.0.1\n", []string{`trusted_proxies: want a list, got "10.0.0.1" (line 4)`}},
		{"list for a string", ok + route + "listen: [a]\n", []string{"listen: want a string, got a list (line 4)"}},
		{"mapping for a string", ok + route + "listen: {a: b}\n", []string{"listen: want a string, got a mapping (line 4)"}},
		{"string for a mapping", ok + route + "log: verbose\n", []string{`log: want a mapping of keys, got "verbose" (line 4)`}},
		{"number", ok + route + "limits: {max_header_bytes: 1.5}\n", []string{`limits.max_header_bytes: want a whole number, got "1.5" (line 4)`}},
		{"overflow", ok + route + "limits: {max_xml_depth: 99999999999999999999}\n", []string{`limits.max_xml_depth: want a whole number, got "99999999999999999999" (line 4)`}},
		{"bool", ok + "routes:\n  - {name: a, path_prefix: /a, upstream: 'http://u', public: maybe}\n", []string{`routes[0].public: want true or false, got "maybe" (line 3)`}},
		{"yaml 1.1 bool is what serve reads", ok + "routes:\n  - {name: a, path_prefix: /a, upstream: 'http://u', public: yes}\n", nil},
		{"float", ok + "routes:\n  - {name: a, path_prefix: /a, upstream: 'http://u', public: true, rate_limit: {per: route, rate: x, burst: 1}}\n",
			[]string{`routes[0].rate_limit.rate: want a number, got "x" (line 3)`}},
		{"duration", ok + route + "limits: {read_timeout: 30}\n", []string{`limits.read_timeout: duration "30" has no unit (use e.g. "30s", "5m") (line 4)`}},
		{"duration list", ok + route + "limits: {read_timeout: [1s]}\n", []string{`limits.read_timeout: want a duration like "30s" or "5m", got a list (line 4)`}},
		{"negative duration", ok + route + "limits: {read_timeout: -1s}\n", []string{`limits.read_timeout: negative duration "-1s" (line 4)`}},
		{"map of strings", ok + "routes:\n  - name: a\n    path_prefix: /a\n    upstream: http://u\n    oauth: {issuer: i, audience: [x], jwks_url: 'https://i/j', algorithms: [RS256], forward_claims: {sub: [X-A]}}\n",
			[]string{"routes[0].oauth.forward_claims.sub: want a string, got a list (line 6)"}},
		{"odd claim name is quoted", ok + "routes:\n  - name: a\n    path_prefix: /a\n    upstream: http://u\n    oauth: {issuer: i, audience: [x], jwks_url: 'https://i/j', algorithms: [RS256], forward_claims: {\"a.b\\nc\": Authorization}}\n",
			[]string{`routes[0].oauth.forward_claims."a.b\nc": Authorization is reserved (line 6)`}},
		{"empty list item", ok + "routes:\n  - {name: a, path_prefix: /a, upstream: 'http://u', public: true}\n  -\n", []string{"routes[1]: empty list item (line 4)"}},
		{"null is unset", ok + route + "tls: ~\nlisten: null\n", nil},
		{"empty key", ok + route + "? ~\n: x\n", []string{"empty key (line 4)"}},
		{"mapping key", ok + route + "? {a: b}\n: x\n", []string{"a key must be a name, got a mapping (line 4)"}},
		{"anchors and aliases", "secrets: {backend: file, file: {dir: &d s}}\nroutes:\n  - {name: *d, path_prefix: /a, upstream: 'http://u', public: true}\n", nil},
		{"alias of the wrong type", "secrets: &s {backend: file, file: {dir: s}}\nlisten: *s\n" + route, []string{"listen: want a string, got a mapping (line 2)"}},
		{"an anchor needs a known key", "log: {level: &l info}\nsecrets: {backend: file, file: {dir: *l}}\n" + route, nil},
		{"merge applies, written keys win", "secrets:\n  <<: {backend: vault, file: {dir: s}}\n  backend: file\n" + route, nil},
		{"merge list", "secrets:\n  <<: [{backend: file}, {backend: vault, file: {dir: s}}]\n" + route, nil},
		{"merge of a scalar", ok + route + "log:\n  <<: x\n", []string{`log.<<: a merge key needs a mapping or a list of mappings, got "x" (line 5)`}},
		{"merged unknown key", ok + route + "log:\n  <<: {levle: x}\n", []string{"log.levle: unknown key; did you mean level? (line 5)"}},
		{"validation lines", "listen: nowhere\n" + ok + route, []string{"listen: must be host:port (line 1)"}},
		{"missing key is reported at its parent", "secrets: {backend: file}\n" + route, []string{"secrets.file.dir: required (line 1)"}},
		{"type error hides what follows from it", ok + "routes:\n  - {name: a, path_prefix: /a, upstream: 'http://u', soap: yes}\n",
			[]string{`routes[0].soap: want a mapping of keys, got "yes" (line 3)`}},
		{"not a mapping", "- a\n", []string{"want a mapping of keys, got a list (line 1)"}},
		{"top-level scalar", "hello\n", []string{`want a mapping of keys, got "hello" (line 1)`}},
		{"empty", "", []string{"the file holds no configuration"}},
		{"two documents", ok + route + "---\nlisten: x\n", []string{"the file holds more than one YAML document (---); wsgate reads one (line 4)"}},
		{"syntax", "listen: [\n", []string{"YAML syntax error: did not find expected node content (line 1)"}},
		{"tab indentation", "routes:\n\t- a\n", []string{"YAML syntax error: found character that cannot start any token (line 2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check([]byte(tt.doc))
			var got []string
			for _, p := range r.Problems {
				got = append(got, p.String())
				if goTypeRE.MatchString(p.Reason) || strings.Contains(p.Reason, "invalid YAML") {
					t.Errorf("reason names a Go type or calls YAML invalid: %q", p.Reason)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got  %q\n want %q", got, tt.want)
			}
			if (r.Config == nil) == (len(r.Problems) == 0) {
				t.Errorf("Config %v with %d problems", r.Config != nil, len(r.Problems))
			}
		})
	}
}

// A file Check accepts decodes to exactly what the strict decoder makes of
// it: the walker and serve agree.
func TestCheckAgreesWithLoad(t *testing.T) {
	for _, doc := range [][]byte{loadFile(t, "testdata/full.yaml"), []byte(minimal)} {
		r := Check(doc)
		if r.Config == nil {
			t.Fatalf("problems: %v", r.Problems)
		}
		strict, err := Load(doc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Config, strict) || !reflect.DeepEqual(r.Partial(), strict) {
			t.Errorf("Check and Load disagree:\n%+v\n%+v", r.Partial(), strict)
		}
	}
}

func TestReportAddAndLine(t *testing.T) {
	r := Check([]byte("secrets:\n  backend: file\n  file:\n    dir: ./nope\nroutes:\n  - {name: a, path_prefix: /a, upstream: 'http://u', public: true}\n"))
	if r.Config == nil {
		t.Fatal(r.Problems)
	}
	if r.Troubled("secrets") {
		t.Error("Troubled on a clean file")
	}
	for path, want := range map[string]int{"secrets.file.dir": 4, "secrets.file": 3, "routes[0].upstream": 6, "routes[0].soap.trust": 6, "tls": 0, "": 0} {
		if got := r.Line(path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
	r.Add("routes[0].upstream", "unreachable")
	r.Add("secrets.file.dir", "directory does not exist")
	if r.Config != nil {
		t.Error("Config kept after Add")
	}
	var got []string
	for _, p := range r.Problems {
		got = append(got, p.String())
	}
	want := []string{"secrets.file.dir: directory does not exist (line 4)", "routes[0].upstream: unreachable (line 6)"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if !r.Troubled("secrets") || !r.Troubled("secrets.file.dir") || r.Troubled("routes[0].name") || r.Troubled("secrets.vault") {
		t.Error("Troubled is wrong")
	}
}

func TestParentPath(t *testing.T) {
	for in, want := range map[string]string{
		"routes[2].soap.trust": "routes[2].soap", "routes[2]": "routes", "routes": "",
		`routes[0].oauth.forward_claims."a.b"`: "routes[0].oauth.forward_claims", `x."a[1]"[3]`: `x."a[1]"`,
	} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSecretRefs(t *testing.T) {
	c, err := Load(loadFile(t, "testdata/full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.Routes[0].SOAP.SignResponse = ""
	c.Routes[2].Bridge.Sign.TransitKey = "orders"
	var got []string
	for _, r := range c.SecretRefs() {
		got = append(got, r.Path+" "+r.Secret+" "+string(r.Use))
	}
	want := []string{
		"tls.secret wsgate/tls/listener identity",
		"tls.client_ca wsgate/tls/clients trust",
		"routes[0].soap.trust wsgate/trust/partners trust",
		"routes[0].soap.username_token wsgate/users/orders users",
		"routes[1].oauth.introspection.client wsgate/oauth/introspection client",
		"routes[2].oauth.jwks_secret wsgate/jwks/bridge keys",
		"routes[2].bridge.sign.identity wsgate/signing/orders certificate",
		"routes[2].bridge.verify_response.trust wsgate/trust/backends trust",
	}
	if !slices.Equal(got, want) {
		t.Errorf("refs:\n got  %q\n want %q", got, want)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte(minimal))
	for _, name := range []string{"testdata/full.yaml", "testdata/check/mistakes.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("secrets:\n  <<: [*x, {backend: file}]\n"))
	f.Add([]byte("x: &x {<<: *x}\nlog: *x\n"))
	f.Add([]byte("routes: [~, {name: a, soap: {timestamp: {ttl: 1h}}}]"))
	f.Add([]byte("limits: {read_timeout: 9999999999999h}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Check(data)
		if (r.Config == nil) == (len(r.Problems) == 0) {
			t.Fatalf("Config %v with problems %v", r.Config != nil, r.Problems)
		}
		for _, p := range r.Problems {
			s := p.String()
			if p.Reason == "" || strings.ContainsAny(s, "\n\r") || goTypeRE.MatchString(quotedRE.ReplaceAllString(p.Reason, `""`)) {
				t.Fatalf("bad problem %q", s)
			}
		}
		if r.Config != nil {
			// What Check accepts, serve reads the same way and validates.
			strict, err := Load(data)
			if err != nil {
				t.Fatalf("Check accepts what Load refuses: %v", err)
			}
			if err := strict.Validate(); err != nil {
				t.Fatalf("Check accepts what Validate refuses: %v", err)
			}
			if !reflect.DeepEqual(r.Partial(), strict) {
				t.Fatalf("Check and Load disagree:\n%+v\n%+v", r.Partial(), strict)
			}
		}
	})
}

// Aliases cannot make a small file cost a lot: the walk stops where
// yaml.v3's strict decoder would refuse the document too.
func TestCheckAliasBomb(t *testing.T) {
	n := 150
	var b strings.Builder
	b.WriteString("log: {level: &m [" + strings.Repeat("GET,", n) + "GET]}\n")
	b.WriteString("routes:\n  - &r {name: a, path_prefix: /a, upstream: 'http://u', oauth: {issuer: i, audience: [a], " +
		"jwks_url: 'https://x/j', algorithms: [RS256], scopes: &sc [" + strings.Repeat("{methods: *m, path: /, any_of: [a]},", n) + "]}}\n")
	b.WriteString("  - " + strings.Repeat("*r\n  - ", n) + "*r\n")
	// Without the budget this walks 150 x 150 x 150 nodes; the budget is a
	// count, so the test needs no clock.
	r := Check([]byte(b.String()))
	if len(r.Problems) == 0 || r.Problems[len(r.Problems)-1].Reason != "the document expands its aliases too much" {
		t.Errorf("problems: %v", r.Problems)
	}
}

// A large file full of mistakes gets every problem, none dropped as noise
// of another route's.
func TestCheckManyMistakes(t *testing.T) {
	var b strings.Builder
	b.WriteString("secrets: {backend: file, file: {dir: s}}\nroutes:\n")
	const n = 2000
	for range n {
		b.WriteString("  - {name: Bad, path_prefix: x, upstream: ftp://u, public: maybe, soap: yes}\n")
	}
	r := Check([]byte(b.String()))
	// Per route: public and soap do not decode; name, path_prefix and
	// upstream are wrong; "exactly one of soap, ..." is noise of soap.
	if len(r.Problems) != 5*n {
		t.Errorf("%d problems, want %d", len(r.Problems), 5*n)
	}
}
