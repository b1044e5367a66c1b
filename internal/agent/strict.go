package agent

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The decoder here walks the YAML tree itself rather than using the
// parser's KnownFields option, so that an error names the entry it is in
// ("agents[2] (support): unknown field …") instead of only a line and a Go
// type name.

// decodeFile decodes the document root into cfg, rejecting unknown fields.
func decodeFile(root *yaml.Node, cfg *Config) error {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: the agents file must be a mapping with tools, mcp_servers and agents", n.Line)
	}
	lists := map[string]func(i int, item *yaml.Node, label string) error{
		"tools": func(i int, item *yaml.Node, label string) error {
			cfg.Tools = append(cfg.Tools, Tool{})
			return decodeStruct(item, reflect.ValueOf(&cfg.Tools[i]).Elem(), label)
		},
		"mcp_servers": func(i int, item *yaml.Node, label string) error {
			cfg.MCPServers = append(cfg.MCPServers, MCPServer{})
			return decodeStruct(item, reflect.ValueOf(&cfg.MCPServers[i]).Elem(), label)
		},
		"agents": func(i int, item *yaml.Node, label string) error {
			cfg.Agents = append(cfg.Agents, AgentConfig{})
			return decodeStruct(item, reflect.ValueOf(&cfg.Agents[i]).Elem(), label)
		},
	}
	seen := map[string]bool{}
	for k := 0; k+1 < len(n.Content); k += 2 {
		key, val := n.Content[k], n.Content[k+1]
		add, ok := lists[key.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown field %q (known: agents, mcp_servers, tools)", key.Line, key.Value)
		}
		if seen[key.Value] {
			return fmt.Errorf("line %d: %s appears twice", key.Line, key.Value)
		}
		seen[key.Value] = true
		if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
			continue
		}
		if val.Kind != yaml.SequenceNode {
			return fmt.Errorf("line %d: %s must be a list", val.Line, key.Value)
		}
		for i, item := range val.Content {
			if err := add(i, item, entryLabel(key.Value, i, entryName(item))); err != nil {
				return err
			}
		}
	}
	return nil
}

// entryName is the name field of a mapping node, or "" if it has none.
func entryName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for k := 0; k+1 < len(n.Content); k += 2 {
		if n.Content[k].Value == "name" && n.Content[k+1].Kind == yaml.ScalarNode {
			return n.Content[k+1].Value
		}
	}
	return ""
}

// entryLabel names entry i of list in error messages.
func entryLabel(list string, i int, name string) string {
	if name == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%d] (%s)", list, i, name)
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decodeStruct decodes mapping n into the struct out field by field,
// following yaml tags; nested structs (and pointers to them) are decoded
// the same way, so unknown fields are refused at every level. A null
// nested struct counts as an empty one ("client:" means "client: {}").
func decodeStruct(n *yaml.Node, out reflect.Value, label string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: line %d: want a mapping", label, n.Line)
	}
	t := out.Type()
	fields := map[string]int{}
	var known []string
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" {
			fields[tag] = i
			known = append(known, tag)
		}
	}
	seen := map[string]bool{}
	for k := 0; k+1 < len(n.Content); k += 2 {
		key, val := n.Content[k], n.Content[k+1]
		i, ok := fields[key.Value]
		if !ok {
			return fmt.Errorf("%s: line %d: unknown field %q (known: %s)", label, key.Line, key.Value, strings.Join(known, ", "))
		}
		if seen[key.Value] {
			return fmt.Errorf("%s: line %d: %s appears twice", label, key.Line, key.Value)
		}
		seen[key.Value] = true
		if err := decodeField(val, out.Field(i), label+": "+key.Value); err != nil {
			return err
		}
	}
	return nil
}

// decodeField decodes val into the struct field f.
func decodeField(val *yaml.Node, f reflect.Value, label string) error {
	ft := f.Type()
	isNull := val.Kind == yaml.ScalarNode && val.Tag == "!!null"
	switch {
	case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct && !ft.Implements(unmarshalerType):
		f.Set(reflect.New(ft.Elem()))
		if isNull {
			return nil
		}
		return decodeStruct(val, f.Elem(), label)
	case ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType):
		if isNull {
			return nil
		}
		return decodeStruct(val, f, label)
	}
	if err := val.Decode(f.Addr().Interface()); err != nil {
		return fmt.Errorf("%s: %s", label, yamlMessage(err))
	}
	return nil
}

// yamlMessage is err's text without the parser's "yaml: unmarshal errors"
// preamble.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}
