package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// cancelAtEOF is an HTTP transport whose response bodies call cancel
// once they have been read to their end: the tool's whole answer has
// come, and only then does the caller's context end.
type cancelAtEOF struct{ cancel context.CancelFunc }

func (c cancelAtEOF) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		resp.Body = eofHook{ReadCloser: resp.Body, at: c.cancel}
	}
	return resp, err
}

type eofHook struct {
	io.ReadCloser
	at func()
}

func (h eofHook) Read(p []byte) (int, error) {
	n, err := h.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		h.at()
	}
	return n, err
}

// TestCallOutputBeforeCancel: a call whose output has come when the
// caller's context ends (a cancel, a shutdown, taking effect just as the
// tool answers) returns that output, not a cancelled call: the tool ran,
// and its answer is what the log must keep and the model be told.
func TestCallOutputBeforeCancel(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"done": true}`)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := httpAgent(t, srv.URL, nil, 0, Options{HTTPClient: &http.Client{Transport: cancelAtEOF{cancel}}})
	res, err := a.Call(ctx, "t", testCall, json.RawMessage(`{}`), nil)
	if ctx.Err() == nil {
		t.Fatal("the caller's context did not end: the test proves nothing")
	}
	if err != nil || Status(res, err) != StatusOK || string(res.Output) != `{"done": true}` {
		t.Fatalf("Call = %s, %q, %v; want the output that came", res.Output, res.Error, err)
	}
}
