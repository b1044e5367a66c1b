package bedrock_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
)

var okReply = fakebedrock.Reply{Chunks: []string{"after ", "retry"}}

func TestRetryBeforeFirstChunk(t *testing.T) {
	failFirst := func(n int, reply fakebedrock.Reply) fakebedrock.Script {
		return func(call int, _ fakebedrock.Request) fakebedrock.Reply {
			if call <= n {
				return reply
			}
			return okReply
		}
	}
	httpErr := func(status int, typ string) fakebedrock.Reply {
		return fakebedrock.Reply{Error: &fakebedrock.HTTPError{Status: status, Type: typ, Message: "try later"}}
	}
	exception := func(typ string) fakebedrock.Reply {
		return fakebedrock.Reply{Fail: &fakebedrock.Failure{After: 0, Exception: typ, Message: "try later"}}
	}
	for _, tc := range []struct {
		name   string
		script fakebedrock.Script
		calls  int
	}{
		{"throttled once", fakebedrock.FailFirst(1, fakebedrock.HTTPError{Status: 429, Type: "ThrottlingException", Message: "Too many requests"}, okReply), 2},
		{"throttled twice", failFirst(2, httpErr(429, "ThrottlingException")), 3},
		{"service unavailable", failFirst(1, httpErr(503, "ServiceUnavailableException")), 2},
		{"model not ready", failFirst(1, httpErr(429, "ModelNotReadyException")), 2},
		{"internal server error", failFirst(1, httpErr(500, "InternalServerException")), 2},
		{"bad gateway", failFirst(1, httpErr(502, "SomeProxyError")), 2},
		{"throttling exception at the head of the stream", failFirst(1, exception("throttlingException")), 2},
		{"service unavailable exception at the head of the stream", failFirst(1, exception("serviceUnavailableException")), 2},
		{"model stream error at the head of the stream", failFirst(1, exception("modelStreamErrorException")), 2},
		{"internal server exception at the head of the stream", failFirst(1, exception("internalServerException")), 2},
		{"connection dropped before the first chunk", failFirst(1, fakebedrock.Reply{Fail: &fakebedrock.Failure{After: 0}}), 2},
		{"connection reset before the first chunk", failFirst(1, fakebedrock.Reply{Fail: &fakebedrock.Failure{After: 0, Reset: true}}), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, tc.script)
			chunks, _, err := stream(t, newClient(t, srv, bedrock.Options{MaxAttempts: 3}), ask("hi"))
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if got := text(chunks); got != "after retry" {
				t.Errorf("text = %q, want %q", got, "after retry")
			}
			wantCalls(t, srv, tc.calls)
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	srv := startFake(t, fakebedrock.FailFirst(100, fakebedrock.HTTPError{Status: 429, Type: "ThrottlingException", Message: "Too many requests"}, okReply))
	_, _, err := stream(t, newClient(t, srv, bedrock.Options{MaxAttempts: 3}), ask("hi"))
	containsAll(t, modelError(t, err), "ThrottlingException: Too many requests", testModel)
	wantCalls(t, srv, 3)
}

func TestErrorBeforeStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  fakebedrock.HTTPError
		want []string
	}{
		{"access denied", fakebedrock.HTTPError{Status: http.StatusForbidden, Type: "AccessDeniedException",
			Message: "You don't have access to the model with the specified model ID."},
			[]string{"access denied", testModel, "us-east-1", "AccessDeniedException", "specified model ID", "bedrock:InvokeModelWithResponseStream"}},
		{"unknown model", fakebedrock.HTTPError{Status: http.StatusNotFound, Type: "ResourceNotFoundException",
			Message: "Model not found."},
			[]string{"unknown model", testModel, "us-east-1", "ResourceNotFoundException: Model not found."}},
		{"validation", fakebedrock.HTTPError{Status: http.StatusBadRequest, Type: "ValidationException",
			Message: "The provided model identifier is invalid."},
			[]string{testModel, "us-east-1", "ValidationException: The provided model identifier is invalid."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, fakebedrock.FailFirst(1, tc.err, okReply))
			_, _, err := stream(t, newClient(t, srv, bedrock.Options{}), ask("hi"))
			containsAll(t, modelError(t, err), tc.want...)
			wantCalls(t, srv, 1)
		})
	}
}

func TestErrorMidStream(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    fakebedrock.Failure
		message string
	}{
		{"model stream error", fakebedrock.Failure{After: 2, Exception: "modelStreamErrorException", Message: "the model failed"},
			"ModelStreamErrorException: the model failed"},
		{"throttling is not retried once text was shown", fakebedrock.Failure{After: 2, Exception: "throttlingException", Message: "slow down"},
			"ThrottlingException: slow down"},
		{"validation", fakebedrock.Failure{After: 1, Exception: "validationException", Message: "bad input"},
			"ValidationException: bad input"},
		{"internal server error", fakebedrock.Failure{After: 3, Exception: "internalServerException", Message: "oops"},
			"InternalServerException: oops"},
		{"dropped connection", fakebedrock.Failure{After: 2},
			"the connection to Bedrock closed before the end of the reply"},
		{"reset connection", fakebedrock.Failure{After: 2, Reset: true},
			"the connection to Bedrock closed before the end of the reply: decode event: read tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := []string{"Once ", "upon ", "a ", "time"}
			srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: parts, Fail: &tc.fail}))
			chunks, _, err := stream(t, newClient(t, srv, bedrock.Options{}), ask("a story"))
			if msg := modelError(t, err); !strings.HasPrefix(msg, tc.message) {
				t.Errorf("message = %q, want it to start with %q", msg, tc.message)
			}
			if got, want := text(chunks), strings.Join(parts[:tc.fail.After], ""); got != want {
				t.Errorf("chunks emitted before the error = %q, want %q", got, want)
			}
			wantCalls(t, srv, 1)
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(okReply))
	srv.Close() // nothing listens at srv.URL any more
	var logs bytes.Buffer
	c := newClient(t, srv, bedrock.Options{MaxAttempts: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	_, _, err := stream(t, c, ask("hi"))
	msg := modelError(t, err)
	containsAll(t, msg, "cannot call Bedrock", testModel, "us-east-1", "connection refused")
	if strings.Contains(msg, "maximum number of attempts") {
		t.Errorf("message = %q names the SDK's single attempt", msg)
	}
	if n := strings.Count(logs.String(), "bedrock: retrying"); n != 1 {
		t.Errorf("%d retries logged, want 1 (MaxAttempts 2)", n)
	}
}

func containsAll(t *testing.T, msg string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("message = %q, want it to contain %q", msg, w)
		}
	}
}

func wantCalls(t *testing.T, srv *fakebedrock.Server, n int) {
	t.Helper()
	if got := srv.Calls(); got != n {
		t.Errorf("fake got %d calls, want %d", got, n)
	}
}
