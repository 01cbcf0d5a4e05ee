package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// CheckKeys walks a YAML document against the Go type it will be decoded
// into (v, a pointer or a value of that type) and reports, with file:line:
// column, every key the type does not have — naming where it is and the
// keys that are known there — and every duration that does not parse.
// yaml.v3's own messages name Go types instead ("field kernal not found in
// type inventory.Profile", "cannot unmarshal !!int `5` into
// time.Duration"); decoding runs after this, as a safety net.
func CheckKeys(file string, root *yaml.Node, v any) Errors {
	if root == nil || len(root.Content) == 0 {
		return nil
	}
	var es Errors
	checkNode(file, root.Content[0], reflect.TypeOf(v), "", &es)
	return es
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

func checkNode(file string, n *yaml.Node, t reflect.Type, path string, es *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return // the type reads its own YAML
	}
	where := func() string {
		if path == "" {
			return "at the top level"
		}
		return "in " + path
	}
	switch {
	case t == durationType:
		if n.Kind == yaml.ScalarNode {
			if _, err := time.ParseDuration(n.Value); err != nil {
				*es = append(*es, &Error{File: file, Line: n.Line, Column: n.Column,
					Msg: fmt.Sprintf("%s: %q is not a duration: write it with a unit, like 5s, 250ms or 1m30s", path, n.Value)})
			}
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		keys := yamlKeys(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			j := slices.IndexFunc(keys, func(y yamlKey) bool { return y.name == k.Value })
			if j < 0 {
				names := make([]string, len(keys))
				for x, y := range keys {
					names[x] = y.name
				}
				*es = append(*es, &Error{File: file, Line: k.Line, Column: k.Column,
					Msg: fmt.Sprintf("unknown key %q %s (known: %s)", k.Value, where(), strings.Join(names, ", "))})
				continue
			}
			checkNode(file, val, keys[j].typ, join(path, k.Value), es)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkNode(file, n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), es)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			checkNode(file, item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), es)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlKey is one key a struct takes in YAML and its field's type.
type yamlKey struct {
	name string
	typ  reflect.Type
}

// yamlKeys are struct t's YAML keys in declaration order, inline structs'
// included.
func yamlKeys(t reflect.Type) []yamlKey {
	var out []yamlKey
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
			continue
		case strings.Contains(opts, "inline"):
			out = append(out, yamlKeys(f.Type)...)
			continue
		case name == "":
			name = strings.ToLower(f.Name)
		}
		out = append(out, yamlKey{name, f.Type})
	}
	return out
}
