package bedrock_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

const testModel = "anthropic.claude-3-5-haiku-20241022-v1:0"

// isolateAWS points the AWS default chain at dummy credentials and region
// only: no shared files, no endpoint variables, no metadata probe.
func isolateAWS(t testing.TB) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":                      "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":                  "secret",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_REGION":                             "us-east-1",
		"AWS_DEFAULT_REGION":                     "",
		"AWS_PROFILE":                            "",
		"AWS_CONFIG_FILE":                        filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_ENDPOINT_URL":                       "",
		"AWS_ENDPOINT_URL_BEDROCK_RUNTIME":       "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_BEARER_TOKEN_BEDROCK":               "",
	} {
		t.Setenv(k, v)
	}
}

// testLogger writes to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newClient isolates the AWS chain and returns a client of srv (unless
// opts.Endpoint is set) with fast retries, logging to the test's log
// unless opts.Logger is set.
func newClient(t testing.TB, srv *fakebedrock.Server, opts bedrock.Options) *bedrock.Client {
	t.Helper()
	isolateAWS(t)
	if opts.Endpoint == "" {
		opts.Endpoint = srv.URL
	}
	if opts.BackoffBase == 0 {
		opts.BackoffBase = time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	c, err := bedrock.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("bedrock.New: %v", err)
	}
	return c
}

// startFake starts a fake endpoint for the test's duration.
func startFake(t testing.TB, script fakebedrock.Script) *fakebedrock.Server {
	srv := fakebedrock.New(script)
	t.Cleanup(srv.Close)
	return srv
}

// ask is a one-message turn.
func ask(text string) convo.ModelRequest {
	return convo.ModelRequest{Model: testModel, History: []convo.HistoryMessage{{Role: protocol.RoleUser, Text: text}}}
}

// stream runs one turn and collects its chunks.
func stream(t testing.TB, c *bedrock.Client, req convo.ModelRequest) ([]convo.Chunk, convo.Result, error) {
	t.Helper()
	var chunks []convo.Chunk
	res, err := c.Stream(context.Background(), req, func(ch convo.Chunk) { chunks = append(chunks, ch) })
	return chunks, res, err
}

// text concatenates the text chunks.
func text(chunks []convo.Chunk) string {
	var b strings.Builder
	for _, ch := range chunks {
		if ch.Kind == convo.ChunkText {
			b.WriteString(ch.Text)
		}
	}
	return b.String()
}

// modelError asserts that err is a model_error *protocol.Error and returns
// its message.
func modelError(t testing.TB, err error) string {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want a *protocol.Error", err, err)
	}
	if pe.Code != protocol.CodeModelError {
		t.Fatalf("code = %q, want %q (%v)", pe.Code, protocol.CodeModelError, pe)
	}
	return pe.Message
}

// closed waits for ch to be closed; the bound only turns a hang into a
// readable failure.
func closed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
