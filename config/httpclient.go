package config

import (
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	promconfig "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"

	"github.com/kube-sentinel/sentinel/internal/yamlpos"
)

// httpClientFields are the keys of Prometheus's HTTP client settings
// (http_config), which scrape configs, kubernetes_sd_configs and
// alertmanagers entries take inline, as Prometheus's do: tls_config,
// basic_auth, authorization, oauth2, proxy_url, http_headers, …
var httpClientFields = yamlKeys(reflect.TypeFor[promconfig.HTTPClientConfig]())

// parseHTTPClientConfig decodes the HTTP client fields of mapping f (of
// node n) into Prometheus's own type, so that every field it has works as
// in Prometheus, and validates them. Unknown fields at any depth are
// errors at their position; relative file names are resolved against dir.
func parseHTTPClientConfig(d *yamlpos.Decoder, n *yaml.Node, f map[string]yamlpos.Field, dir string) promconfig.HTTPClientConfig {
	c := promconfig.DefaultHTTPClientConfig
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for _, name := range httpClientFields {
		if fl, ok := f[name]; ok {
			m.Content = append(m.Content, fl.Key, fl.Value)
		}
	}
	if len(m.Content) == 0 {
		return c
	}
	before := len(d.Errs)
	checkKnownFields(d, m, reflect.TypeFor[promconfig.HTTPClientConfig](), "")
	if len(d.Errs) > before {
		return c
	}
	if err := m.Decode(&c); err != nil {
		reportDecodeError(d, n, m, err)
		return promconfig.DefaultHTTPClientConfig
	}
	if dir != "" {
		c.SetDirectory(dir)
	}
	return c
}

// yamlKeys are the YAML names of struct t's fields, inline ones included.
func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		sf := t.Field(i)
		name, inline := yamlName(sf)
		switch {
		case inline && sf.Type.Kind() == reflect.Struct:
			out = append(out, yamlKeys(sf.Type)...)
		case name != "" && !inline:
			out = append(out, name)
		}
	}
	return out
}

func yamlName(sf reflect.StructField) (name string, inline bool) {
	if !sf.IsExported() {
		return "", false
	}
	tag := sf.Tag.Get("yaml")
	if tag == "-" {
		return "", false
	}
	parts := strings.Split(tag, ",")
	if slices.Contains(parts[1:], "inline") {
		return "", true
	}
	if parts[0] != "" {
		return parts[0], false
	}
	return strings.ToLower(sf.Name), false
}

// checkKnownFields reports every mapping key of n that type t does not
// have, at the key's position, recursing into nested settings: yaml.v3
// decodes a node leniently, and a misspelt ca_file must not pass as
// "no CA".
func checkKnownFields(d *yamlpos.Decoder, n *yaml.Node, t reflect.Type, what string) {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil {
		return
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		var inlineMap reflect.Type
		var collect func(reflect.Type)
		collect = func(t reflect.Type) {
			for i := range t.NumField() {
				sf := t.Field(i)
				name, inline := yamlName(sf)
				switch {
				case inline && sf.Type.Kind() == reflect.Struct:
					collect(sf.Type)
				case inline && sf.Type.Kind() == reflect.Map:
					inlineMap = sf.Type.Elem()
				case name != "":
					fields[name] = sf.Type
				}
			}
		}
		collect(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := joinPath(what, k.Value)
			ft, ok := fields[k.Value]
			switch {
			case ok:
				checkKnownFields(d, v, ft, path)
			case inlineMap != nil:
				checkKnownFields(d, v, inlineMap, path)
			default:
				known := make([]string, 0, len(fields))
				for name := range fields {
					known = append(known, name)
				}
				slices.Sort(known)
				where := what
				if where == "" {
					where = "http client settings"
				}
				d.Errorf(k, "unknown field %q in %s (known: %s)", k.Value, where, strings.Join(known, ", "))
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKnownFields(d, n.Content[i+1], t.Elem(), joinPath(what, n.Content[i].Value))
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			checkKnownFields(d, item, t.Elem(), what)
		}
	}
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// reportDecodeError places a decoding error as well as it can: yaml.v3's
// type errors name a line (the node of that line gives the column); a
// validation error of Prometheus's type belongs to the whole entry.
func reportDecodeError(d *yamlpos.Decoder, entry, m *yaml.Node, err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, msg := range te.Errors {
			if g := yamlLine.FindStringSubmatch(msg); g != nil {
				line, _ := strconv.Atoi(g[1])
				d.Errorf(nodeOnLine(m, line, entry), "%s", g[2])
				continue
			}
			d.Errorf(entry, "%s", msg)
		}
		return
	}
	d.Errorf(entry, "%v", err)
}

// nodeOnLine returns the last value node of n's subtree on line, or def.
func nodeOnLine(n *yaml.Node, line int, def *yaml.Node) *yaml.Node {
	found := def
	var walk func(*yaml.Node)
	walk = func(x *yaml.Node) {
		if x.Line == line && x.Kind == yaml.ScalarNode {
			found = x
		}
		for _, c := range x.Content {
			walk(c)
		}
	}
	walk(n)
	return found
}
