package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// The walker decodes a yaml.Node tree into a Config the way yaml.v3's strict
// decoder does, but keeps going after a problem and says what is wrong in
// YAML terms. Where yaml.v3 would quietly drop something (an empty list
// item, an empty key) the walker reports it: it is never more lenient.

// maxVisits bounds the work on one document: anchors and aliases can make a
// small file expand into a huge tree.
const maxVisits = 1 << 20

// maxMergeDepth bounds nested merge keys (<<), which aliases can make cyclic.
const maxMergeDepth = 16

type walker struct {
	r          *Report
	visits     int // nodes decoded
	viaAlias   int // of which reached through an alias
	aliasDepth int
	over       bool
	fields     map[reflect.Type]*fieldSet
}

func valueOf(p any) reflect.Value { return reflect.ValueOf(p).Elem() }

func (w *walker) problem(path string, at pos, format string, args ...any) {
	w.r.Problems = append(w.r.Problems, Problem{Path: path, Line: at.line, Column: at.col, Reason: fmt.Sprintf(format, args...)})
}

// fail reports a value that did not decode; validation problems that follow
// from it are dropped (see Report.noise).
func (w *walker) fail(path string, at pos, format string, args ...any) {
	w.problem(path, at, format, args...)
	w.r.bad[path] = true
}

// tick counts work and reports once when the budget is spent: too many
// nodes, or (yaml.v3's own rule) too many of them reached through aliases.
func (w *walker) tick() bool {
	if w.over {
		return false
	}
	w.visits++
	if w.aliasDepth > 0 {
		w.viaAlias++
	}
	if w.visits > maxVisits ||
		w.viaAlias > 100 && w.visits > 1000 && float64(w.viaAlias)/float64(w.visits) > allowedAliasRatio(w.visits) {
		w.over = true
		w.problem("", pos{}, "the document expands its aliases too much")
		return false
	}
	return true
}

// allowedAliasRatio is yaml.v3's limit on the share of decoding done
// through aliases: 99% for small documents, falling to 10% for large ones.
func allowedAliasRatio(visits int) float64 {
	const low, high = 400000, 4000000
	switch {
	case visits <= low:
		return 0.99
	case visits >= high:
		return 0.10
	}
	return 0.99 - 0.89*(float64(visits-low)/float64(high-low))
}

// follow resolves an alias, counting what is decoded through it.
func (w *walker) follow(n *yaml.Node) (*yaml.Node, func()) {
	if n.Kind != yaml.AliasNode || n.Alias == nil {
		return n, func() {}
	}
	w.aliasDepth++
	return n.Alias, func() { w.aliasDepth-- }
}

var durationType = reflect.TypeFor[Duration]()

// decode sets v from n, reporting problems under path.
func (w *walker) decode(n *yaml.Node, v reflect.Value, path string) {
	if !w.tick() {
		return
	}
	line := at(n) // the place of use, also for an alias
	if n.Kind == yaml.AliasNode && n.Alias == nil {
		w.fail(path, line, "unknown alias *%s", n.Value)
		return
	}
	n, done := w.follow(n)
	defer done()
	if isNull(n) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice:
			v.SetZero()
		}
		return
	}
	t := v.Type()
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			w.fail(path, line, "want a duration like \"30s\" or \"5m\", got %s", describe(n))
			return
		}
		d, reason := parseDuration(n.Value)
		if reason != "" {
			w.fail(path, line, "%s", reason)
			return
		}
		v.Set(reflect.ValueOf(d))
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		w.decode(n, v.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(path, line, "want a mapping of keys, got %s", describe(n))
			return
		}
		w.structMapping(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(path, line, "want a mapping, got %s", describe(n))
			return
		}
		w.mapMapping(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(path, line, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.r.lines[p] = at(e)
			if isNull(e) {
				// yaml.v3 would drop the item and renumber the rest.
				w.fail(p, at(e), "empty list item")
				continue
			}
			w.decode(e, s.Index(i), p)
		}
		v.Set(s)
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(path, line, "want %s, got %s", want(t), describe(n))
			return
		}
		if t.Kind() == reflect.String && n.Tag == "!!str" {
			v.SetString(n.Value) // what yaml.v3 does, without a decoder per scalar
			return
		}
		p := reflect.New(t)
		err := n.Decode(p.Interface())
		if err == nil && isInt(t) && n.ShortTag() == "!!float" {
			err = errFraction // yaml.v3 would cut 1.5 to 1
		}
		if err != nil {
			w.fail(path, line, "want %s, got %s", want(t), describe(n))
			return
		}
		v.Set(p.Elem())
	}
}

var errFraction = errors.New("a fraction for a whole number")

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// isNull reports a null scalar: ~, null, or nothing at all.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// want names what a Go type accepts, in YAML terms.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a value" // no other kind is in Config
}

// describe shows what a node is, quoting (a bounded part of) a scalar.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return fmt.Sprintf("%q", v)
	}
	return "an alias"
}

// pair is one key and value of a mapping, merges already applied.
type pair struct {
	key  *yaml.Node
	val  *yaml.Node
	name string
}

// pairs lists n's keys and values with merge keys (<<) applied as yaml.v3
// applies them (keys written in the mapping win, then earlier merges), and
// reports duplicate and unusable keys.
func (w *walker) pairs(n *yaml.Node, path string, depth int) []pair {
	var out []pair
	seen := map[string]int{}
	var merges []*yaml.Node
	mergeLine := 0
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !w.tick() {
			return out
		}
		k, val := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			if mergeLine != 0 {
				w.fail(keyPath(path, "<<"), at(k), "duplicate merge key (first at line %d)", mergeLine)
				continue
			}
			mergeLine = k.Line
			merges = append(merges, val)
			continue
		}
		name, ok := w.keyName(k, path)
		if !ok {
			continue
		}
		p := keyPath(path, name)
		if first, dup := seen[name]; dup {
			w.fail(p, at(k), "duplicate key (first at line %d)", first)
			continue
		}
		seen[name] = k.Line
		out = append(out, pair{k, val, name})
	}
	for _, m := range merges {
		for _, src := range w.mergeSources(m, path, depth) {
			for _, p := range w.pairs(src, path, depth+1) {
				if _, done := seen[p.name]; !done {
					seen[p.name] = p.key.Line
					out = append(out, p)
				}
			}
		}
	}
	return out
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

// mergeSources returns the mappings a merge key's value names: a mapping, an
// alias of one, or a list of those.
func (w *walker) mergeSources(m *yaml.Node, path string, depth int) []*yaml.Node {
	p := keyPath(path, "<<")
	if depth >= maxMergeDepth {
		w.fail(p, at(m), "merge keys nest too deep")
		return nil
	}
	one := func(n *yaml.Node) *yaml.Node {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
			w.viaAlias++ // its keys are counted by pairs
		}
		if n.Kind != yaml.MappingNode {
			w.fail(p, at(n), "a merge key needs a mapping or a list of mappings, got %s", describe(n))
			return nil
		}
		return n
	}
	if m.Kind == yaml.SequenceNode {
		var out []*yaml.Node
		for _, e := range m.Content {
			if s := one(e); s != nil {
				out = append(out, s)
			}
		}
		return out
	}
	if s := one(m); s != nil {
		return []*yaml.Node{s}
	}
	return nil
}

// keyName returns a mapping key as a string, as yaml.v3 reads it.
func (w *walker) keyName(k *yaml.Node, path string) (string, bool) {
	if k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	switch {
	case k.Kind != yaml.ScalarNode:
		w.fail(path, at(k), "a key must be a name, got %s", describe(k))
		return "", false
	case isNull(k):
		w.fail(path, at(k), "empty key")
		return "", false
	}
	if k.Tag == "!!str" {
		return k.Value, true
	}
	var s string
	if err := k.Decode(&s); err != nil {
		w.fail(path, at(k), "unusable key %s", describe(k))
		return "", false
	}
	return s, true
}

func (w *walker) structMapping(n *yaml.Node, v reflect.Value, path string) {
	fields := w.structFields(v.Type())
	pairs := w.pairs(n, path, 0)
	present := map[string]bool{}
	for _, p := range pairs {
		present[p.name] = true
	}
	for _, p := range pairs {
		kp := keyPath(path, p.name)
		w.r.lines[kp] = at(p.key)
		idx, ok := fields.index[p.name]
		if !ok {
			w.unknownKey(kp, p, fields.names, present, path)
			continue
		}
		w.decode(p.val, v.Field(idx), kp)
	}
}

func (w *walker) unknownKey(kp string, p pair, names []string, present map[string]bool, parent string) {
	best, ok := nearest(p.name, names)
	if !ok {
		w.problem(kp, at(p.key), "unknown key; valid here: %s", strings.Join(names, ", "))
		return
	}
	w.problem(kp, at(p.key), "unknown key; did you mean %s?", best)
	if !present[best] {
		// "trust: required" after "trsut" is the same mistake.
		w.r.bad[keyPath(parent, best)] = true
	}
}

func (w *walker) mapMapping(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	for _, p := range w.pairs(n, path, 0) {
		kp := keyPath(path, p.name)
		w.r.lines[kp] = at(p.key)
		e := reflect.New(t.Elem()).Elem()
		w.decode(p.val, e, kp)
		m.SetMapIndex(reflect.ValueOf(p.name).Convert(t.Key()), e)
	}
	v.Set(m)
}

// fieldSet is a struct's YAML keys.
type fieldSet struct {
	index map[string]int
	names []string // in declaration order, for "valid here"
}

func (w *walker) structFields(t reflect.Type) *fieldSet {
	if fs, ok := w.fields[t]; ok {
		return fs
	}
	fs := &fieldSet{index: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		fs.index[name] = i
		fs.names = append(fs.names, name)
	}
	if w.fields == nil {
		w.fields = map[reflect.Type]*fieldSet{}
	}
	w.fields[t] = fs
	return fs
}

// nearest returns the known key closest to key by edit distance (adjacent
// transpositions count once, case and - vs _ are ignored), if it is close
// enough to be a plausible typo.
func nearest(key string, names []string) (string, bool) {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	k := norm(key)
	best, bestD := "", -1
	for _, n := range names {
		d := editDistance(k, norm(n))
		if strings.Contains(n, k) && len(k) >= 3 || strings.Contains(k, norm(n)) && len(n) >= 3 {
			d = min(d, 2) // a key cut short or run on: prefx, path_prefix_x
		}
		if bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	if bestD < 0 || bestD > max(2, len(best)/3) {
		return "", false
	}
	return best, true
}

// editDistance is the optimal string alignment distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b)) // no key is that long; do not spend on it
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
