// Package spec checks JSON against the gateway's machine-readable contract,
// protocol/asyncapi.yaml (the WebSocket) and protocol/openapi.yaml (the HTTP
// API). The shared test helpers (internal/conn/conntest) call it on every
// frame and HTTP answer the tests see, so that neither document can drift
// from the code: a field the gateway sends that a schema lacks fails the
// test that received it. It reads the documents from the source tree, so
// it serves tests only.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
)

// Spec is the two documents, compiled.
type Spec struct {
	// AsyncAPI and OpenAPI are the documents as JSON values, and
	// AsyncAPIURL and OpenAPIURL the file URLs they are known by.
	AsyncAPI, OpenAPI       any
	AsyncAPIURL, OpenAPIURL string

	compiler *jsonschema.Compiler
	// client and server are the message schemas by frame type, for
	// what clients send and what the gateway sends.
	client, server map[string]*jsonschema.Schema

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema // compiled by absolute location
}

var (
	loadOnce sync.Once
	loaded   *Spec
	loadErr  error
)

// Load reads and compiles the documents once; later calls return the same.
func Load() (*Spec, error) {
	loadOnce.Do(func() { loaded, loadErr = load() })
	return loaded, loadErr
}

// Dir is the protocol directory that holds the documents.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "protocol")
}

func load() (*Spec, error) {
	s := &Spec{compiler: jsonschema.NewCompiler(), schemas: map[string]*jsonschema.Schema{},
		client: map[string]*jsonschema.Schema{}, server: map[string]*jsonschema.Schema{}}
	s.compiler.DefaultDraft(jsonschema.Draft2020)
	s.compiler.AssertFormat()
	var err error
	if s.AsyncAPI, s.AsyncAPIURL, err = s.add("asyncapi.yaml"); err != nil {
		return nil, err
	}
	if s.OpenAPI, s.OpenAPIURL, err = s.add("openapi.yaml"); err != nil {
		return nil, err
	}
	if err := s.indexMessages(); err != nil {
		return nil, fmt.Errorf("spec: protocol/asyncapi.yaml: %w", err)
	}
	return s, nil
}

// add reads protocol/name and makes it a resource of the compiler.
func (s *Spec) add(name string) (any, string, error) {
	path := filepath.Join(Dir(), name)
	doc, err := ReadYAML(path)
	if err != nil {
		return nil, "", err
	}
	u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
	if err := s.compiler.AddResource(u, doc); err != nil {
		return nil, "", fmt.Errorf("spec: %s: %w", name, err)
	}
	return doc, u, nil
}

// ReadYAML reads a YAML (or JSON) file as the JSON value it stands for.
func ReadYAML(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("spec: %s: %w", path, err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("spec: %s: not JSON-compatible: %w", path, err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(j))
}

// indexMessages finds, through the operations, the payload schema of each
// message and the frame type its "type" const names: receive operations'
// messages are the clients' requests, their replies and send operations'
// messages are the gateway's frames.
func (s *Spec) indexMessages() error {
	ops, _ := lookup(s.AsyncAPI, "operations").(map[string]any)
	if len(ops) == 0 {
		return errors.New("no operations")
	}
	for name, op := range ops {
		op, _ := op.(map[string]any)
		fromClient := op["action"] == "receive"
		if err := s.indexRefs(op["messages"], fromClient); err != nil {
			return fmt.Errorf("operation %s: %w", name, err)
		}
		if reply, ok := op["reply"].(map[string]any); ok {
			if err := s.indexRefs(reply["messages"], false); err != nil {
				return fmt.Errorf("operation %s reply: %w", name, err)
			}
		}
	}
	return nil
}

func (s *Spec) indexRefs(refs any, fromClient bool) error {
	list, _ := refs.([]any)
	for _, r := range list {
		msg := s.deref(r)
		payload, _ := lookup(msg, "payload").(map[string]any)
		ref, _ := payload["$ref"].(string)
		typ, _ := lookup(s.deref(payload), "properties", "type", "const").(string)
		if ref == "" || typ == "" {
			return fmt.Errorf("message %v: want a payload $ref to a schema with a type const", r)
		}
		sch, err := s.schema(s.AsyncAPIURL, ref)
		if err != nil {
			return err
		}
		m := s.server
		if fromClient {
			m = s.client
		}
		if old, ok := m[typ]; ok && old != sch {
			return fmt.Errorf("two messages of type %q in one direction", typ)
		}
		m[typ] = sch
	}
	return nil
}

// deref follows local $refs (#/a/b) in the AsyncAPI document.
func (s *Spec) deref(v any) any {
	for range 10 {
		m, ok := v.(map[string]any)
		ref, _ := m["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#/") {
			return v
		}
		path := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		v = lookup(s.AsyncAPI, path...)
	}
	return v
}

// lookup walks v down the keys; nil when one is missing.
func lookup(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// schema compiles the schema at ref, relative to the document at base.
func (s *Spec) schema(base, ref string) (*jsonschema.Schema, error) {
	b, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("spec: $ref %q: %w", ref, err)
	}
	loc := b.ResolveReference(r).String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.schemas[loc]; ok {
		return sch, nil
	}
	sch, err := s.compiler.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("spec: compiling %s: %w", ref, err)
	}
	s.schemas[loc] = sch
	return sch, nil
}

// ServerFrame checks a frame the gateway sent against the message schema
// of its type.
func (s *Spec) ServerFrame(data []byte) error {
	return s.frame(s.server, "gateway", data, false)
}

// ClientFrame checks a request a client sent against the message schema
// of its type. It checks the request's shape (the fields, their types,
// the required ones) but not value limits such as lengths and patterns,
// which tests break on purpose to see the gateway refuse them.
func (s *Spec) ClientFrame(data []byte) error {
	return s.frame(s.client, "client", data, true)
}

func (s *Spec) frame(m map[string]*jsonschema.Schema, who string, data []byte, shapeOnly bool) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("spec: a %s frame that is not JSON: %w", who, err)
	}
	typ, _ := lookup(v, "type").(string)
	sch, ok := m[typ]
	if !ok {
		return fmt.Errorf("spec: protocol/asyncapi.yaml has no %s message of type %q: %s", who, typ, data)
	}
	if err := validate(sch, v, shapeOnly); err != nil {
		return fmt.Errorf("spec: a %s %q frame does not match protocol/asyncapi.yaml: %w\n%s", who, typ, err, data)
	}
	return nil
}

// validate checks v against sch; with shapeOnly, only errors of shape
// count.
func validate(sch *jsonschema.Schema, v any, shapeOnly bool) error {
	err := sch.Validate(v)
	var ve *jsonschema.ValidationError
	if err == nil || !shapeOnly || !errors.As(err, &ve) || !onlyValueLimits(ve) {
		return err
	}
	return nil
}

// onlyValueLimits reports whether every leaf of e is about a value's
// limits rather than the shape of the JSON.
func onlyValueLimits(e *jsonschema.ValidationError) bool {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			if !onlyValueLimits(c) {
				return false
			}
		}
		return true
	}
	switch e.ErrorKind.(type) {
	case *kind.MinLength, *kind.MaxLength, *kind.Pattern, *kind.Minimum, *kind.Maximum, *kind.Not, *kind.Format:
		return true
	}
	return false
}
