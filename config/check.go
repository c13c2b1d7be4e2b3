package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a configuration document, in the file's
// own terms: a YAML path and line, never a Go type name.
type Problem struct {
	// Path is the YAML path, e.g. routes[2].soap.trust; empty when the
	// problem is the document's as a whole (a syntax error, an empty file).
	Path string
	// Line is the 1-based line of the problem, or 0 when unknown.
	Line int
	// Column is the 1-based column on Line, or 0 when unknown; it orders
	// problems that share a line.
	Column int
	// Reason says what is wrong.
	Reason string
}

// String formats the problem as "path: reason (line N)". Control characters
// are escaped, so one problem is always one line of output.
func (p Problem) String() string {
	s := clean(p.Reason)
	if p.Path != "" {
		s = clean(p.Path) + ": " + s
	}
	if p.Line > 0 {
		s += fmt.Sprintf(" (line %d)", p.Line)
	}
	return s
}

// clean escapes what a terminal or a line-oriented reader would misread.
func clean(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// Report is what Check found.
type Report struct {
	// Config is the decoded configuration with defaults applied; nil when
	// there are problems, so nothing with a problem is ever served.
	Config *Config
	// Problems lists every problem, ordered by line (those without a line last).
	Problems []Problem

	partial *Config         // what decoded, defaults applied, problems or not
	lines   map[string]pos  // YAML path -> place of its key or list item
	bad     map[string]bool // paths whose value did not decode
	// parents of bad paths, built on first use by noise
	badParents map[string]bool
}

// pos is a place in the file.
type pos struct{ line, col int }

func at(n *yaml.Node) pos { return pos{n.Line, n.Column} }

// Partial returns what decoded, with defaults, even when there are problems.
// It is for checks beyond the file (does a directory exist, do the secrets
// resolve) that should run in the same pass; never serve it.
func (r *Report) Partial() *Config { return r.partial }

// Line returns the line of path, or of its nearest ancestor that is in the
// file (a missing key is reported where its parent is); 0 when unknown.
func (r *Report) Line(path string) int { return r.pos(path).line }

func (r *Report) pos(path string) pos {
	for path != "" {
		if p, ok := r.lines[path]; ok {
			return p
		}
		path = parentPath(path)
	}
	return pos{}
}

// Add records a problem found outside the file (the caller's I/O), located
// by path, keeping Problems in order; Config becomes nil.
func (r *Report) Add(path, reason string) {
	p := r.pos(path)
	r.Problems = append(r.Problems, Problem{Path: path, Line: p.line, Column: p.col, Reason: reason})
	r.Config = nil
	sortProblems(r.Problems)
}

// Troubled reports whether path, an ancestor or a descendant of it has a
// problem: a caller skips I/O checks of a value the file already got wrong.
func (r *Report) Troubled(path string) bool {
	for _, p := range r.Problems {
		if p.Path == path || isUnder(p.Path, path) || isUnder(path, p.Path) {
			return true
		}
	}
	return false
}

// Check decodes one YAML document into a Config and validates it, reporting
// every problem in one pass: YAML syntax, values of the wrong type, unknown
// keys (naming the nearest known one), duplicate keys and everything
// Validate finds. A document Check accepts decodes strictly (Load) to the
// same Config; Report.Config is that Config, defaults applied.
func Check(data []byte) (r *Report) {
	r = &Report{lines: map[string]pos{}, bad: map[string]bool{}}
	defer func() {
		// yaml.v3 is third-party code handed operator input: a panic in it
		// is a problem to report, never a crash.
		if p := recover(); p != nil {
			r.Config, r.partial = nil, nil
			r.Problems = []Problem{{Reason: "the YAML parser failed on this document"}}
		}
	}()

	w := &walker{r: r}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			r.Problems = append(r.Problems, Problem{Reason: "the file holds no configuration"})
		} else {
			r.Problems = append(r.Problems, syntaxProblem(err))
		}
		return r
	}
	var cfg Config
	if len(doc.Content) == 1 {
		w.decode(doc.Content[0], valueOf(&cfg), "")
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		w.problem("", at(&next), "the file holds more than one YAML document (---); wsgate reads one")
	} else if !errors.Is(err, io.EOF) {
		r.Problems = append(r.Problems, syntaxProblem(err))
	}
	if w.over {
		// What decoded may be huge; validating it would be the work the
		// budget refused.
		return r
	}
	cfg.SetDefaults()
	r.partial = &cfg

	decoded := len(r.Problems) == 0
	valid := &cfg
	if decoded {
		// The walk found nothing: decode as serve always has, strictly.
		strict, err := Load(data)
		if err != nil {
			r.Problems = append(r.Problems, strictProblem(err))
			return r
		}
		valid = strict
	}
	for _, fe := range FieldErrors(valid.Validate()) {
		if !decoded && r.noise(fe.Path) {
			continue
		}
		p := r.pos(fe.Path)
		r.Problems = append(r.Problems, Problem{Path: fe.Path, Line: p.line, Column: p.col, Reason: fe.Reason})
	}
	r.Problems = dedupe(r.Problems)
	sortProblems(r.Problems)
	if len(r.Problems) == 0 {
		r.Config = valid
	}
	return r
}

// noise reports whether a validation problem at path follows from a value
// that did not decode: at or under that value, or on its parent (a route
// whose soap did not decode "has no soap").
func (r *Report) noise(path string) bool {
	if r.badParents == nil {
		r.badParents = map[string]bool{}
		for b := range r.bad {
			r.badParents[parentPath(b)] = true
		}
	}
	if r.badParents[path] || r.bad[""] {
		return true
	}
	for p := path; p != ""; p = parentPath(p) {
		if r.bad[p] {
			return true
		}
	}
	return false
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Reason: "YAML syntax error: " + m[2]}
	}
	return Problem{Reason: "YAML syntax error: " + strings.TrimPrefix(msg, "yaml: ")}
}

// strictProblem reports a document the walk accepted but the strict decoder
// refuses (excessive aliasing, a tag yaml.v3 cannot apply). Its type errors
// name Go types, so they are summarized instead of quoted.
func strictProblem(err error) Problem {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return Problem{Reason: "the document does not decode as a configuration (check tags and anchors)"}
	}
	msg := err.Error()
	if i := strings.Index(msg, "yaml: "); i >= 0 {
		msg = msg[i+len("yaml: "):]
	}
	return Problem{Reason: "the document does not decode: " + msg}
}

func dedupe(ps []Problem) []Problem {
	type key struct{ path, reason string }
	seen := map[key]bool{}
	out := ps[:0]
	for _, p := range ps {
		k := key{p.Path, p.Reason}
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		switch {
		case a.Line == b.Line:
			return a.Column - b.Column
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return a.Line - b.Line
	})
}

// isUnder reports whether path is strictly inside parent.
func isUnder(path, parent string) bool {
	if parent == "" {
		return path != ""
	}
	return strings.HasPrefix(path, parent) && len(path) > len(parent) &&
		(path[len(parent)] == '.' || path[len(parent)] == '[')
}

// parentPath strips the last key or index: routes[2].soap -> routes[2] -> routes -> "".
// Quoted keys (see keyPath) may hold dots and brackets, so they are skipped whole.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if strings.HasSuffix(path, `"`) {
		// A quoted last key: find its opening quote, skipping escapes.
		for i := len(path) - 2; i >= 0; i-- {
			if path[i] == '"' && (i == 0 || path[i-1] != '\\') {
				return strings.TrimSuffix(path[:i], ".")
			}
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

var plainKeyRE = regexp.MustCompile(`^([A-Za-z0-9_-]+|<<)$`)

// keyPath appends a mapping key to a YAML path, quoting keys that are not
// plain names so that a path stays unambiguous and on one line.
func keyPath(parent, key string) string {
	if !plainKeyRE.MatchString(key) {
		key = strconv.Quote(key)
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}
