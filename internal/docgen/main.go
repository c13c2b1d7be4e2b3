// Command docgen writes the configuration reference of docs/configuration.md
// from the doc comments of the config structs (config/config.go), so the
// reference cannot drift from the code: a test fails when the page is out of
// date.
//
// Usage (from the repository root, or via go generate ./config):
//
//	go run ./internal/docgen [-config config/config.go] [-doc docs/configuration.md]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// Markers delimit the generated section of docs/configuration.md.
const (
	BeginMarker = "<!-- BEGIN GENERATED CONFIG REFERENCE: go generate ./config -->"
	EndMarker   = "<!-- END GENERATED CONFIG REFERENCE -->"
)

// ErrNoMarkers means the page lacks the begin/end markers, in order.
var ErrNoMarkers = errors.New("docgen: page has no generated-section markers")

func main() {
	cfg := flag.String("config", "config/config.go", "Go file declaring type Config")
	doc := flag.String("doc", "docs/configuration.md", "page to update between the markers")
	flag.Parse()
	if err := run(*cfg, *doc); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}

func run(cfgPath, docPath string) error {
	src, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	ref, err := Reference(src)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(docPath)
	if err != nil {
		return err
	}
	updated, err := Splice(old, ref)
	if err != nil {
		return err
	}
	if bytes.Equal(old, updated) {
		return nil
	}
	return os.WriteFile(docPath, updated, 0o644)
}

// Splice replaces what lies between the markers of page with section.
func Splice(page []byte, section string) ([]byte, error) {
	s := string(page)
	b := strings.Index(s, BeginMarker)
	e := strings.Index(s, EndMarker)
	if b < 0 || e < b {
		return nil, ErrNoMarkers
	}
	return []byte(s[:b+len(BeginMarker)] + "\n" + section + s[e:]), nil
}

// Reference renders the configuration reference of the Go source declaring
// type Config: one table row per YAML key, in declaration order, with its
// type and its doc comment.
func Reference(src []byte) (string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", src, parser.ParseComments)
	if err != nil {
		return "", err
	}
	structs := map[string]*ast.StructType{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, sp := range gd.Specs {
			ts := sp.(*ast.TypeSpec)
			if st, ok := ts.Type.(*ast.StructType); ok {
				structs[ts.Name.Name] = st
			}
		}
	}
	root, ok := structs["Config"]
	if !ok {
		return "", errors.New("docgen: no struct type Config")
	}
	var b strings.Builder
	b.WriteString("| key | type | meaning |\n|---|---|---|\n")
	if err := walk(&b, structs, root, "", map[string]bool{"Config": true}); err != nil {
		return "", err
	}
	return b.String(), nil
}

// walk writes one row per field of st and recurses into nested structs.
func walk(b *strings.Builder, structs map[string]*ast.StructType, st *ast.StructType, prefix string, seen map[string]bool) error {
	for _, field := range st.Fields.List {
		if field.Tag == nil || len(field.Names) != 1 || !field.Names[0].IsExported() {
			continue
		}
		tag, err := strconv.Unquote(field.Tag.Value)
		if err != nil {
			return err
		}
		name, _, _ := strings.Cut(reflect.StructTag(tag).Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		typ, nested, list := describe(field.Type, structs)
		doc := strings.Join(strings.Fields(field.Doc.Text()), " ")
		if doc == "" {
			return fmt.Errorf("docgen: %s has no doc comment", key)
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", key, typ, strings.ReplaceAll(doc, "|", `\|`))
		if nested != "" && !seen[nested] {
			seen[nested] = true
			sub := key + "."
			if list {
				sub = key + "[]."
			}
			if err := walk(b, structs, structs[nested], sub, seen); err != nil {
				return err
			}
			delete(seen, nested)
		}
	}
	return nil
}

// describe names a field type for readers and reports the struct to descend into.
func describe(e ast.Expr, structs map[string]*ast.StructType) (typ, nested string, list bool) {
	switch t := e.(type) {
	case *ast.StarExpr:
		typ, nested, list = describe(t.X, structs)
		return typ + " (optional)", nested, list
	case *ast.ArrayType:
		typ, nested, _ = describe(t.Elt, structs)
		return "list of " + typ, nested, true
	case *ast.MapType:
		k, _, _ := describe(t.Key, structs)
		v, _, _ := describe(t.Value, structs)
		return "map of " + k + " to " + v, "", false
	case *ast.Ident:
		switch t.Name {
		case "string":
			return "string", "", false
		case "bool":
			return "bool", "", false
		case "int", "int64":
			return "integer", "", false
		case "float64":
			return "number", "", false
		case "Duration":
			return "duration", "", false
		}
		if _, ok := structs[t.Name]; ok {
			return "object", t.Name, false
		}
		return t.Name, "", false
	}
	return fmt.Sprintf("%T", e), "", false
}
