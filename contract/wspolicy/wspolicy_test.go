package wspolicy

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wsgate/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// render is what the golden files hold: the soap: block, then the
// assertions wsgate cannot enforce.
func render(r *Result) string {
	var b strings.Builder
	b.WriteString("# " + r.Service + "/" + r.Port + "\n" + r.YAML)
	for _, u := range r.Unsupported {
		b.WriteString("# cannot enforce: " + u + "\n")
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for name, wantUnsupported := range map[string]bool{
		"asymmetric-x509":    false,
		"symmetric-kerberos": true,
		"legacy-username":    true,
	} {
		t.Run(name, func(t *testing.T) {
			r, err := FromWSDL(filepath.Join("testdata", name+".wsdl"), "", "")
			if err != nil {
				t.Fatal(err)
			}
			if (len(r.Unsupported) > 0) != wantUnsupported {
				t.Fatalf("unsupported %q", r.Unsupported)
			}
			got := render(r)
			path := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Fatalf("got:\n%s\nwant:\n%s", got, want)
			}
			// The printed block is a valid route's soap: block.
			indented := "    " + strings.ReplaceAll(strings.TrimSuffix(r.YAML, "\n"), "\n", "\n    ")
			cfg, err := config.Load([]byte("secrets: {backend: vault, vault: {address: \"http://127.0.0.1:8200\"}}\nroutes:\n  - name: orders\n    path_prefix: /soap/orders\n    upstream: http://127.0.0.1:9001/ws\n" + indented + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("printed block does not validate: %v\n%s", err, indented)
			}
			// Requires (what soap.policy: from_wsdl applies) says what the printed block says.
			s, q := cfg.Routes[0].SOAP, r.Requires
			if strings.Join(s.RequireSigned, ",") != strings.Join(q.Signed, ",") || s.Algorithms.AllowSHA1 != q.SHA1 ||
				(s.UsernameToken != "") != q.UsernameToken || (s.Decrypt != nil) != q.EncryptBody || (s.SAML != nil) != q.SAML ||
				(s.Decrypt != nil && s.Decrypt.Algorithms.AllowRSA15 != q.RSA15) {
				t.Fatalf("Requires %+v differs from the printed block %+v", q, s)
			}
		})
	}
}

func TestPortSelection(t *testing.T) {
	p := filepath.Join("testdata", "asymmetric-x509.wsdl")
	if _, err := FromWSDL(p, "OrdersService", "OrdersPort"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"Nope", ""}, {"", "Nope"}} {
		if _, err := FromWSDL(p, tc[0], tc[1]); !errors.Is(err, ErrPort) {
			t.Errorf("%v: err %v, want ErrPort", tc, err)
		}
	}
	if _, err := FromWSDL(filepath.Join("testdata", "missing.wsdl"), "", ""); !errors.Is(err, ErrDocument) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzFromWSDL(f *testing.F) {
	for _, n := range []string{"asymmetric-x509", "legacy-username"} {
		b, err := os.ReadFile(filepath.Join("testdata", n+".wsdl"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "x.wsdl")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = FromWSDL(p, "", "")
	})
}
