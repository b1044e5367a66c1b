package spec

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// The tests of this file compare protocol/asyncapi.yaml with the protocol
// package itself, so that a new constant or field shows up as a failure
// even before an end-to-end test sends it.

// TestEnumsMatchProtocol checks every list of names the document has (the
// frame types, error codes, stop reasons and statuses) against the string
// constants of the protocol package with the matching prefix.
func TestEnumsMatchProtocol(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	consts := protocolConsts(t)
	schemas := func(keys ...string) any {
		return lookup(s.AsyncAPI, append([]string{"components", "schemas"}, keys...)...)
	}
	for _, tt := range []struct {
		prefixes []string
		doc      []string
	}{
		{[]string{"Type"}, slices.Collect(maps.Keys(s.client))},
		{[]string{"Reply", "Event"}, slices.Collect(maps.Keys(s.server))},
		{[]string{"Code"}, strs(schemas("ErrorCode", "enum"))},
		{[]string{"Stop"}, strs(schemas("StopReason", "enum"))},
		{[]string{"Call"}, strs(schemas("ToolCallEvent", "properties", "status", "enum"))},
		{[]string{"Result"}, strs(schemas("ToolResultEvent", "properties", "status", "enum"))},
		{[]string{"Role"}, strs(schemas("Message", "properties", "role", "enum"))},
		{[]string{"ToolKind"}, strs(schemas("ToolInfo", "properties", "kind", "enum"))},
	} {
		var code []string
		for name, v := range consts {
			for _, p := range tt.prefixes {
				if strings.HasPrefix(name, p) {
					code = append(code, v)
				}
			}
		}
		if want, got := set(code), set(tt.doc); !slices.Equal(want, got) {
			t.Errorf("the protocol package's %s* constants are %v; protocol/asyncapi.yaml has %v", strings.Join(tt.prefixes, "*, "), want, got)
		}
	}
}

// TestFieldsMatchProtocol checks that each schema of the document has
// exactly the JSON fields of the Go type that encodes it.
func TestFieldsMatchProtocol(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	props := func(names ...string) []string {
		var all []string
		for _, n := range names {
			p, _ := lookup(s.AsyncAPI, "components", "schemas", n, "properties").(map[string]any)
			if p == nil {
				t.Fatalf("protocol/asyncapi.yaml: no schema %s with properties", n)
			}
			all = append(all, slices.Collect(maps.Keys(p))...)
		}
		return set(all)
	}
	events := []string{"MessageEvent", "TurnStartEvent", "DeltaEvent", "ThinkingEvent", "ActionEvent",
		"ToolCallEvent", "ToolApprovalEvent", "ToolProgressEvent", "ToolResultEvent", "TurnEndEvent"}
	for _, tt := range []struct {
		goType  any
		schemas []string
		// extra are fields the type encodes in its own MarshalJSON.
		extra []string
	}{
		{protocol.Send{}, []string{"SendRequest"}, []string{"type"}},
		{protocol.Subscribe{}, []string{"SubscribeRequest"}, []string{"type"}},
		{protocol.Unsubscribe{}, []string{"UnsubscribeRequest"}, []string{"type"}},
		{protocol.Cancel{}, []string{"CancelRequest"}, []string{"type"}},
		{protocol.History{}, []string{"HistoryRequest"}, []string{"type"}},
		{protocol.List{}, []string{"ListRequest"}, []string{"type"}},
		{protocol.Create{}, []string{"CreateRequest"}, []string{"type"}},
		{protocol.Delete{}, []string{"DeleteRequest"}, []string{"type"}},
		{protocol.Ping{}, []string{"PingRequest"}, []string{"type"}},
		{protocol.Agents{}, []string{"AgentsRequest"}, []string{"type"}},
		{protocol.Approve{}, []string{"ApproveRequest"}, []string{"type"}},
		{protocol.ToolOutput{}, []string{"ToolOutputRequest"}, []string{"type"}},
		{protocol.Ack{}, []string{"AckReply"}, nil},
		{protocol.Subscribed{}, []string{"SubscribedReply"}, nil},
		{protocol.HistoryReply{}, []string{"HistoryReply"}, nil},
		{protocol.ConversationsReply{}, []string{"ConversationsReply"}, nil},
		{protocol.Created{}, []string{"CreatedReply"}, nil},
		{protocol.AgentsReply{}, []string{"AgentsReply"}, nil},
		{protocol.Accepted{}, []string{"AcceptedReply"}, nil},
		{protocol.Done{}, []string{"UnsubscribedReply", "CancelledReply", "DeletedReply", "PongReply"}, nil},
		{protocol.ErrorReply{}, []string{"ErrorReply"}, nil},
		{protocol.Message{}, []string{"Message"}, nil},
		{protocol.Conversation{}, []string{"Conversation"}, nil},
		{protocol.Usage{}, []string{"Usage"}, nil},
		{protocol.Error{}, []string{"Error"}, nil},
		{protocol.AgentInfo{}, []string{"AgentInfo"}, nil},
		{protocol.ToolInfo{}, []string{"ToolInfo"}, nil},
		// A tool_progress's message and a tool_result's error are
		// ProgressMessage and ToolError; other events have Message and
		// Error under the same names.
		{protocol.Event{}, events, nil},
		// ServerFrame decodes any frame a Go client gets.
		{protocol.ServerFrame{}, append([]string{"AckReply", "SubscribedReply", "UnsubscribedReply", "CancelledReply",
			"DeletedReply", "HistoryReply", "ConversationsReply", "CreatedReply", "PongReply", "AgentsReply",
			"AcceptedReply", "ErrorReply"}, events...), nil},
	} {
		got := set(append(jsonFields(reflect.TypeOf(tt.goType)), tt.extra...))
		if want := props(tt.schemas...); !slices.Equal(got, want) {
			t.Errorf("protocol.%s encodes %v; protocol/asyncapi.yaml's %s have %v",
				reflect.TypeOf(tt.goType).Name(), got, strings.Join(tt.schemas, ", "), want)
		}
	}
}

// jsonFields is the JSON names of t's fields.
func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-":
		case name == "":
			out = append(out, f.Name)
		default:
			out = append(out, name)
		}
	}
	return out
}

// protocolConsts reads the string constants of the protocol package's
// source, by name.
func protocolConsts(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	out := map[string]string{}
	files, err := filepath.Glob(filepath.Join(Dir(), "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range spec.Names {
				if i >= len(spec.Values) {
					break
				}
				if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					out[name.Name], _ = strconv.Unquote(lit.Value)
				}
			}
			return false
		})
	}
	if len(out) == 0 {
		t.Fatal("no constants in the protocol package")
	}
	return out
}

// strs is a JSON array of strings as a slice.
func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// set sorts list and drops repeats.
func set(list []string) []string {
	list = slices.Clone(list)
	slices.Sort(list)
	return slices.Compact(list)
}
