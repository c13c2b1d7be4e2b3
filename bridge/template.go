package bridge

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"text/template"
	"text/template/parse"
)

// escaperName is the function appended to every printing action. Its name
// cannot clash with a builtin and is unlikely to be typed by hand.
const escaperName = "_wsgate_xml_escape"

// Template renders one operation's SOAP Body content from a JSON object.
// Every value an action prints is XML-escaped, whatever the template does
// with it first: the escaper is appended to each printing pipeline at parse
// time, as html/template does, so `{{.name}}`, `{{printf "%s" .name}}` and
// `{{index .items 0}}` all come out as character data. The template's own
// text (the configuration's) is not escaped. A Template is safe for
// concurrent use.
type Template struct {
	t *template.Template
}

// ParseTemplate parses text as a Go text/template named name. Missing map
// keys are execution errors (missingkey=error), so a JSON body that lacks a
// field the template uses is refused rather than rendered as "<no value>".
// Only scalars print: a JSON array or object reaching a printing action,
// or print, printf, println, html, js or urlquery, is an execution error
// rather than Go's "[a b]" or "map[...]" text, which the client never wrote.
func ParseTemplate(name, text string) (*Template, error) {
	t, err := template.New(name).
		Option("missingkey=error").
		Funcs(template.FuncMap{
			escaperName: xmlEscape,
			// The builtins that format their arguments, each with the
			// same scalar check (user functions override builtins).
			"print":    scalarsOnly(fmt.Sprint),
			"println":  scalarsOnly(fmt.Sprintln),
			"html":     scalarsOnly(template.HTMLEscaper),
			"js":       scalarsOnly(template.JSEscaper),
			"urlquery": scalarsOnly(template.URLQueryEscaper),
			"printf": func(format string, args ...any) (string, error) {
				if err := checkScalars(args); err != nil {
					return "", err
				}
				return fmt.Sprintf(format, args...), nil
			},
		}).
		Parse(text)
	if err != nil {
		return nil, err
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			escapeList(tt.Tree.Root)
		}
	}
	return &Template{t: t}, nil
}

// escapeList appends the escaper to every action in l that prints.
func escapeList(l *parse.ListNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			// {{$x := ...}} and {{$x = ...}} print nothing.
			if len(n.Pipe.Decl) == 0 {
				ensureEscaped(n.Pipe)
			}
		case *parse.IfNode:
			escapeList(n.List)
			escapeList(n.ElseList)
		case *parse.RangeNode:
			escapeList(n.List)
			escapeList(n.ElseList)
		case *parse.WithNode:
			escapeList(n.List)
			escapeList(n.ElseList)
		case *parse.ListNode:
			escapeList(n)
		}
		// TemplateNode ({{template}}, {{block}}) runs a template of the
		// same set, whose actions are rewritten on their own.
	}
}

// ensureEscaped makes the escaper the pipeline's last command.
func ensureEscaped(p *parse.PipeNode) {
	if n := len(p.Cmds); n > 0 {
		if id, ok := p.Cmds[n-1].Args[0].(*parse.IdentifierNode); ok && id.Ident == escaperName {
			return
		}
	}
	p.Cmds = append(p.Cmds, &parse.CommandNode{
		NodeType: parse.NodeCommand,
		Pos:      p.Pos,
		Args:     []parse.Node{parse.NewIdentifier(escaperName).SetTree(nil).SetPos(p.Pos)},
	})
}

// xmlEscape prints its argument as text/template would and escapes it for
// XML character data and attribute values: & < > " ' and tab, newline and
// carriage return become references, and characters XML cannot carry become
// U+FFFD. JSON null prints as the empty string; an array or object is
// refused (checkScalars).
func xmlEscape(args ...any) (string, error) {
	if len(args) == 1 && args[0] == nil {
		return "", nil
	}
	if err := checkScalars(args); err != nil {
		return "", err
	}
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(fmt.Sprint(args...))) // a strings.Builder never fails
	return b.String(), nil
}

// notScalar is what a printing function returns for a JSON array or
// object; Render turns it into ErrNotScalar naming the action.
type notScalar struct{ kind string }

func (e *notScalar) Error() string { return "not a scalar: " + e.kind }

// checkScalars accepts what the JSON decoder makes of a scalar (string,
// json.Number, bool, null) and the numbers and strings template functions
// return (len, index into a string); anything else, a JSON array or object
// above all, would print as Go syntax.
func checkScalars(args []any) error {
	for _, a := range args {
		if a == nil {
			continue
		}
		switch k := reflect.TypeOf(a).Kind(); k {
		case reflect.String, reflect.Bool,
			reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
		case reflect.Slice, reflect.Array:
			return &notScalar{"an array"}
		case reflect.Map:
			return &notScalar{"an object"}
		default:
			return &notScalar{"a " + k.String()}
		}
	}
	return nil
}

// scalarsOnly wraps a formatting builtin with checkScalars.
func scalarsOnly(f func(...any) string) func(...any) (string, error) {
	return func(args ...any) (string, error) {
		if err := checkScalars(args); err != nil {
			return "", err
		}
		return f(args...), nil
	}
}

// missingKeyRE reads the key out of text/template's "map has no entry for
// key" execution error. The key comes from the template, not the client.
var missingKeyRE = regexp.MustCompile(`map has no entry for key "((?:[^"\\]|\\.)*)"`)

// actionRE reads the failing action out of a template execution error.
var actionRE = regexp.MustCompile(` at <([^>]{1,200})>: `)

// Render executes the template over data into w. A key the template needs
// and data lacks is ErrMissingField naming the key; an array or object
// where a value prints is ErrNotScalar naming the action; any other execution
// failure (a field of the wrong JSON type, an index out of range) is
// ErrTemplateMismatch naming the action; output beyond the writer's limit is
// the writer's error.
func (t *Template) Render(w io.Writer, data map[string]any) error {
	err := t.t.Execute(w, data)
	if err == nil {
		return nil
	}
	var ee template.ExecError
	if !errors.As(err, &ee) {
		return err // the writer failed
	}
	// text/template gives no typed detail; its message only names the
	// field for the client, it does not decide the outcome.
	msg := ee.Error()
	action := ""
	if m := actionRE.FindStringSubmatch(msg); m != nil {
		action = " at {{" + m[1] + "}}"
	}
	if m := missingKeyRE.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%w %q%s", ErrMissingField, m[1], action)
	}
	if ns := (*notScalar)(nil); errors.As(err, &ns) {
		return fmt.Errorf("%w: %s%s", ErrNotScalar, ns.kind, action)
	}
	return fmt.Errorf("%w%s", ErrTemplateMismatch, action)
}

// limitWriter fails once more than n bytes have been written.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, ErrRenderTooLarge
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}
