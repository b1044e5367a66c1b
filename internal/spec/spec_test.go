package spec_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/chatgateway/gateway/internal/spec"
)

func load(t *testing.T) *spec.Spec {
	t.Helper()
	s, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDocumentsValid validates both documents against their official
// schemas, vendored in testdata.
func TestDocumentsValid(t *testing.T) {
	s := load(t)
	for _, tt := range []struct {
		name, meta, url string
		doc             any
	}{
		{"asyncapi.yaml", "testdata/asyncapi/3.0.0.json", "http://asyncapi.com/definitions/3.0.0/asyncapi.json", s.AsyncAPI},
		{"openapi.yaml", "testdata/openapi/3.1-schema.json", "https://spec.openapis.org/oas/3.1/schema/2021-04-15", s.OpenAPI},
	} {
		t.Run(tt.name, func(t *testing.T) {
			meta, err := spec.ReadYAML(tt.meta)
			if err != nil {
				t.Fatal(err)
			}
			c := jsonschema.NewCompiler()
			if err := c.AddResource(tt.url, meta); err != nil {
				t.Fatal(err)
			}
			sch, err := c.Compile(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(tt.doc); err != nil {
				t.Fatalf("protocol/%s is not a valid document: %v", tt.name, err)
			}
		})
	}
}

// TestGoldenFrames checks every golden frame of the protocol package (one
// of each request, reply and event) against its message schema.
func TestGoldenFrames(t *testing.T) {
	s := load(t)
	files, err := filepath.Glob(filepath.Join(spec.Dir(), "testdata", "golden", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden frames: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case strings.HasPrefix(name, "request_"):
				err = s.ClientFrame(data)
			default:
				err = s.ServerFrame(data)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
}

// TestRefusals shows that the checks can fail: an unknown field in what
// the gateway sends, a missing one, a wrong type, an unknown frame type.
func TestRefusals(t *testing.T) {
	s := load(t)
	for _, tt := range []struct {
		name  string
		check func([]byte) error
		frame string
	}{
		{"extra field in an event", s.ServerFrame, `{"type":"delta","conversation":"c","seq":3,"ts":"2026-11-26T09:30:00Z","turn":"t","text":"Hi","colour":"red"}`},
		{"missing seq", s.ServerFrame, `{"type":"delta","conversation":"c","ts":"2026-11-26T09:30:00Z","turn":"t","text":"Hi"}`},
		{"bad timestamp", s.ServerFrame, `{"type":"delta","conversation":"c","seq":3,"ts":"yesterday","turn":"t","text":"Hi"}`},
		{"unknown reply", s.ServerFrame, `{"type":"hello"}`},
		{"wrong type in a request", s.ClientFrame, `{"type":"subscribe","conversation":"c","after":"3"}`},
	} {
		if err := tt.check([]byte(tt.frame)); err == nil {
			t.Errorf("%s: accepted %s", tt.name, tt.frame)
		}
	}
	// Value limits of requests are not checked: tests break them on
	// purpose.
	if err := s.ClientFrame([]byte(`{"type":"send","text":""}`)); err != nil {
		t.Errorf("an empty text was refused: %v", err)
	}
	for _, x := range []spec.Exchange{
		{Method: "GET", URL: "http://h/v1/info", Status: 200, ContentType: "application/json",
			ResponseBody: []byte(`{"provider":"demo","default_model":"demo","version":"v","auth":"none","extra":1}`)},
		{Method: "GET", URL: "http://h/v1/nothing", Status: 404, ContentType: "application/json",
			ResponseBody: []byte(`{"error":{"code":"not_found"}}`)},
		{Method: "POST", URL: "http://h/v1/conversations/c/messages", Status: 202, ContentType: "application/json",
			RequestBody:  []byte(`{"text":1}`),
			ResponseBody: []byte(`{"type":"ack","conversation":"c","message":{"id":"m","seq":1,"role":"user","text":"hi","created_at":"2026-11-26T09:30:00Z"}}`)},
	} {
		if err := s.HTTP(x); err == nil {
			t.Errorf("%s %s %d accepted", x.Method, x.URL, x.Status)
		}
	}
	if err := s.HTTP(spec.Exchange{Method: "GET", URL: "http://h/healthz", Status: http.StatusOK,
		ContentType: "text/plain", ResponseBody: []byte("ok\n")}); err != nil {
		t.Errorf("healthz: %v", err)
	}
}

// TestUnknownRequestFieldsAllowed checks that the documents say what the
// gateway does with a field it does not know in a request (PROTOCOL.md:
// it is ignored): every golden request with one more field is a valid
// frame, a request body with one is a valid body, and no schema of a
// request body says additionalProperties: false.
func TestUnknownRequestFieldsAllowed(t *testing.T) {
	s := load(t)
	files, err := filepath.Glob(filepath.Join(spec.Dir(), "testdata", "golden", "request_*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden requests: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var frame map[string]any
		if err := json.Unmarshal(data, &frame); err != nil {
			t.Fatal(err)
		}
		frame["urgent"] = true
		data, _ = json.Marshal(frame)
		if err := s.ClientFrame(data); err != nil {
			t.Errorf("%s with an unknown field: %v", filepath.Base(f), err)
		}
	}
	x := spec.Exchange{Method: "POST", URL: "http://h/v1/conversations/c/messages", Status: 202, ContentType: "application/json",
		RequestBody:  []byte(`{"text":"hi","priority":1}`),
		ResponseBody: []byte(`{"type":"ack","conversation":"c","message":{"id":"m","seq":1,"role":"user","text":"hi","created_at":"2026-11-26T09:30:00Z"}}`)}
	if err := s.HTTP(x); err != nil {
		t.Errorf("a body with an unknown field: %v", err)
	}
	doc, _ := s.OpenAPI.(map[string]any)
	paths, _ := doc["paths"].(map[string]any)
	schemas, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)
	bodies := 0
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			op, _ := op.(map[string]any)
			body, _ := op["requestBody"].(map[string]any)
			if body == nil {
				continue
			}
			ref, _ := body["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)["$ref"].(string)
			name, ok := strings.CutPrefix(ref, "#/components/schemas/")
			if !ok || schemas[name] == nil {
				t.Errorf("%s %s: request body schema %q not found", method, path, ref)
				continue
			}
			bodies++
			if closed(schemas[name]) {
				t.Errorf("%s %s: %s says additionalProperties: false, but the gateway ignores unknown fields", method, path, name)
			}
		}
	}
	if bodies == 0 {
		t.Error("no request bodies found in protocol/openapi.yaml")
	}
}

// closed reports whether a schema, or one nested in it, says
// additionalProperties: false.
func closed(schema any) bool {
	switch v := schema.(type) {
	case map[string]any:
		if v["additionalProperties"] == false {
			return true
		}
		for _, sub := range v {
			if closed(sub) {
				return true
			}
		}
	case []any:
		for _, sub := range v {
			if closed(sub) {
				return true
			}
		}
	}
	return false
}
