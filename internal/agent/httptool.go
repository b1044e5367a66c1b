package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/chatgateway/gateway/internal/toolout"
)

// httpTool runs calls by POSTing the input to a URL.
type httpTool struct {
	url     string
	headers map[string]string
	client  *http.Client
	max     int // bytes of body read: past it the output is cut
}

var _ runner = (*httpTool)(nil)

// run POSTs input with the configured headers and the X-Gateway-* ones. A
// 2xx body that is valid JSON is the output, whatever its content type
// says (servers often send none, or text/plain), its bytes that are not
// UTF-8 replaced with U+FFFD; any other 2xx body is {"text": body}; a
// non-2xx status is an error holding the status and the start of the
// body. Cancelling ctx aborts the request (and closes its connection).
func (t *httpTool) run(ctx context.Context, c CallInfo, input json.RawMessage, _ func(Progress)) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(input))
	if err != nil {
		return Result{}, err
	}
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Gateway-User", c.User)
	req.Header.Set("X-Gateway-Conversation", c.Conversation)
	req.Header.Set("X-Gateway-Call", c.Call)
	resp, err := t.client.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("POST %s: %w", t.url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	// Read one byte past the cap, to know whether the body was longer.
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(t.max)+1))
	if err != nil {
		return Result{}, fmt.Errorf("POST %s: reading the response: %w", t.url, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := fmt.Sprintf("HTTP %s", resp.Status)
		if text := strings.TrimSpace(string(body)); text != "" {
			msg += ": " + text
		}
		return Result{Error: msg}, nil
	}
	if len(body) <= t.max && json.Valid(body) {
		// JSON's strings are UTF-8, but json.Valid lets other bytes
		// through (a service answering in Latin-1): they would make every
		// frame that carries the output one a WebSocket client must
		// refuse. They become U+FFFD, as encoding/json decodes them.
		return Result{Output: toolout.Cap(bytes.ToValidUTF8(body, []byte("\uFFFD")), t.max)}, nil
	}
	if len(body) > t.max {
		// Cut JSON is no longer JSON: toolout.Cap keeps its start as text.
		return Result{Output: toolout.Cap(body, t.max)}, nil
	}
	out, err := json.Marshal(map[string]string{"text": string(body)})
	if err != nil {
		return Result{}, err
	}
	return Result{Output: out}, nil
}

// unwrapURLError drops the *url.Error layer, whose text repeats the
// method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
