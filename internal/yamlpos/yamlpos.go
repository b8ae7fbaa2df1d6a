package yamlpos

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Error is one problem at one place of one file.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Decoder collects errors while walking a document. Its methods never stop
// at the first problem, so a user sees every error of a file at once.
type Decoder struct {
	File string
	Errs []error
}

// Errorf records an error at node n (which may be nil: the file itself).
func (d *Decoder) Errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: d.File, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.Errs = append(d.Errs, e)
}

// Err returns the collected errors in file order, joined, or nil.
func (d *Decoder) Err() error {
	sort.SliceStable(d.Errs, func(i, j int) bool {
		a, aok := d.Errs[i].(*Error)
		b, bok := d.Errs[j].(*Error)
		if !aok || !bok {
			return false
		}
		return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
	})
	return errors.Join(d.Errs...)
}

// Parse reads a YAML document into its root node. A syntax error is
// reported with the line yaml.v3 gives.
func (d *Decoder) Parse(data []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		d.Errs = append(d.Errs, syntaxError(d.File, err))
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil
	}
	return resolveAlias(doc.Content[0])
}

func syntaxError(file string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	// yaml.v3 says "line N: message"; give it our shape.
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if line, perr := strconv.Atoi(rest[:i]); perr == nil {
				return &Error{File: file, Line: line, Col: 1, Msg: strings.TrimSpace(rest[i+1:])}
			}
		}
	}
	return &Error{File: file, Line: 1, Col: 1, Msg: msg}
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// Field is one key of a mapping with its value.
type Field struct {
	Key   *yaml.Node
	Value *yaml.Node
}

// Mapping returns the fields of mapping node n keyed by name, reporting
// unknown and duplicate keys. A null node is an empty mapping.
func (d *Decoder) Mapping(n *yaml.Node, what string, allowed ...string) map[string]Field {
	n = resolveAlias(n)
	out := map[string]Field{}
	if n == nil || isNull(n) {
		return out
	}
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, "%s must be a mapping, not %s", what, kindName(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		name := k.Value
		if !contains(allowed, name) {
			d.Errorf(k, "unknown field %q in %s (known: %s)", name, what, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[name]; dup {
			d.Errorf(k, "field %q given twice in %s", name, what)
			continue
		}
		out[name] = Field{Key: k, Value: v}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return fmt.Sprintf("the scalar %q", n.Value)
	}
	return "something else"
}

// Sequence returns the items of a list node; null is an empty list.
func (d *Decoder) Sequence(n *yaml.Node, what string) []*yaml.Node {
	n = resolveAlias(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "%s must be a list, not %s", what, kindName(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = resolveAlias(c)
	}
	return out
}

// String returns a scalar's text.
func (d *Decoder) String(n *yaml.Node, what string) string {
	n = resolveAlias(n)
	if n == nil || isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		d.Errorf(n, "%s must be a string, not %s", what, kindName(n))
		return ""
	}
	return n.Value
}

// Strings returns a list of scalars.
func (d *Decoder) Strings(n *yaml.Node, what string) []string {
	var out []string
	for _, item := range d.Sequence(n, what) {
		out = append(out, d.String(item, what+" item"))
	}
	return out
}

// StringMap returns a mapping of scalars, keeping no order.
func (d *Decoder) StringMap(n *yaml.Node, what string) map[string]string {
	n = resolveAlias(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, "%s must be a mapping, not %s", what, kindName(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if _, dup := out[k.Value]; dup {
			d.Errorf(k, "key %q given twice in %s", k.Value, what)
			continue
		}
		out[k.Value] = d.String(n.Content[i+1], fmt.Sprintf("%s[%s]", what, k.Value))
	}
	return out
}

// Float returns a scalar as a finite number.
func (d *Decoder) Float(n *yaml.Node, what string) float64 {
	s := d.String(n, what)
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.Errorf(n, "%s: %q is not a number", what, s)
		return 0
	}
	return f
}

// Int returns a scalar as an integer.
func (d *Decoder) Int(n *yaml.Node, what string) int64 {
	s := d.String(n, what)
	if s == "" {
		return 0
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.Errorf(n, "%s: %q is not an integer", what, s)
		return 0
	}
	return i
}

// Duration returns a scalar as a duration in Prometheus notation or Go's.
func (d *Decoder) Duration(n *yaml.Node, what string) time.Duration {
	s := d.String(n, what)
	if s == "" {
		return 0
	}
	v, err := ParseDuration(s)
	if err != nil {
		d.Errorf(n, "%s: %v", what, err)
		return 0
	}
	return v
}

// ParseDuration accepts Prometheus's notation (30s, 5m, 1h30m, 28d, 1w) and
// Go's (1.5s, 250us, 0.5ms), since latency objectives need fractions.
// Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	if v, err := model.ParseDuration(s); err == nil {
		return time.Duration(v), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use 30s, 5m, 1h30m, 28d, 1.5s, 250ms)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q: a duration cannot be negative", s)
	}
	return v, nil
}
