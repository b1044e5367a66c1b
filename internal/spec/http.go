package spec

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Exchange is one HTTP request and its answer, as a test saw them.
type Exchange struct {
	Method string
	// URL is the request's URL; only its path counts.
	URL         string
	RequestBody []byte
	Status      int
	// ContentType is the answer's Content-Type header.
	ContentType  string
	ResponseBody []byte
}

// HTTP checks x against protocol/openapi.yaml: a JSON answer against the
// schema of its path, method and status (an error body on a path or
// method the document lacks, such as 404 and 405 answers), and, when the
// gateway accepted the request (2xx), its JSON body against the
// operation's request body schema. Answers that are not JSON (the page,
// /metrics) are not checked.
func (s *Spec) HTTP(x Exchange) error {
	u, err := url.Parse(x.URL)
	if err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	op := s.operation(u.Path, x.Method)
	if isJSON(x.ContentType) {
		ref := s.responseSchema(op, x.Status)
		if err := s.check(ref, x.ResponseBody, "the answer to "+x.Method+" "+u.Path+" "+strconv.Itoa(x.Status)); err != nil {
			return err
		}
	}
	if op != nil && x.Status/100 == 2 && len(bytes.TrimSpace(x.RequestBody)) > 0 {
		ref, _ := lookup(op, "requestBody", "content", "application/json", "schema", "$ref").(string)
		if ref == "" {
			return fmt.Errorf("spec: protocol/openapi.yaml: %s %s takes no JSON body, but the gateway accepted one", x.Method, u.Path)
		}
		return s.check(ref, x.RequestBody, "the body of "+x.Method+" "+u.Path)
	}
	return nil
}

// operation finds the document's operation for path and method, matching
// {param} segments of path templates with any segment. A HEAD without an
// operation of its own is the path's GET, whose answer it is (the
// gateway's handlers write the GET's body, which net/http drops).
func (s *Spec) operation(path, method string) map[string]any {
	paths, _ := lookup(s.OpenAPI, "paths").(map[string]any)
	for tmpl, item := range paths {
		if matchPath(tmpl, path) {
			op, _ := lookup(item, strings.ToLower(method)).(map[string]any)
			if op == nil && method == http.MethodHead {
				op, _ = lookup(item, "get").(map[string]any)
			}
			return op
		}
	}
	return nil
}

func matchPath(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(strings.TrimSuffix(path, "/"), "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if strings.HasPrefix(ts[i], "{") && ps[i] != "" {
			continue
		}
		if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// responseSchema is the $ref of the JSON schema for status in op's
// responses (its own, else its default), or of the error body when op is
// nil or has neither.
func (s *Spec) responseSchema(op map[string]any, status int) string {
	errorBody := "#/components/schemas/ErrorBody"
	resp := lookup(op, "responses", strconv.Itoa(status))
	if resp == nil {
		resp = lookup(op, "responses", "default")
	}
	if ref, _ := lookup(resp, "$ref").(string); ref != "" {
		resp = lookup(s.OpenAPI, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
	}
	if ref, _ := lookup(resp, "content", "application/json", "schema", "$ref").(string); ref != "" {
		return ref
	}
	if status >= http.StatusBadRequest {
		return errorBody
	}
	return ""
}

// check validates body against the schema at ref (relative to
// openapi.yaml).
func (s *Spec) check(ref string, body []byte, what string) error {
	if ref == "" {
		return fmt.Errorf("spec: protocol/openapi.yaml has no JSON schema for %s: %s", what, body)
	}
	sch, err := s.schema(s.OpenAPIURL, ref)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("spec: %s is not JSON: %w", what, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("spec: %s does not match protocol/openapi.yaml: %w\n%s", what, err, body)
	}
	return nil
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// Operations lists the document's operations as "METHOD /path", with
// path templates as written ("GET /v1/conversations/{id}"), sorted.
func (s *Spec) Operations() []string {
	var out []string
	paths, _ := lookup(s.OpenAPI, "paths").(map[string]any)
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}
