package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/chatgateway/gateway/internal/agent"
	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/protocol"
)

// atAnswer is the HTTP transport of a stop rig's tools: once a tool's
// answer has been read to its end, it runs the rig's hook with the
// request, before the tool's caller sees the end of the answer.
type atAnswer struct {
	hook *atomic.Pointer[func(*http.Request)]
}

func (a atAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		resp.Body = &answerBody{ReadCloser: resp.Body, done: func() {
			if f := a.hook.Load(); f != nil {
				(*f)(req)
			}
		}}
	}
	return resp, err
}

type answerBody struct {
	io.ReadCloser
	done  func()
	ended bool
}

func (b *answerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.ended {
		b.ended = true
		b.done()
	}
	return n, err
}

// stopRig is the gateway's parts put together as run does (the fake
// Bedrock through the real AWS SDK, a bbolt log, the agents registry, the
// WebSocket handler), with the HTTP tools reached through atAnswer: a test
// can stop the turn at the moment a tool's answer has come.
type stopRig struct {
	svc    *convo.Service
	closed chan error // the stop's Close, if it closed svc
	db     string
	url    string
	hook   atomic.Pointer[func(*http.Request)]
}

func startStopRig(t *testing.T) *stopRig {
	t.Helper()
	ctx := context.Background()
	r := &stopRig{db: filepath.Join(t.TempDir(), "gateway.db"), closed: make(chan error, 1)}
	tools := startTools(t)
	fake := fakebedrock.New(toolModel)
	t.Cleanup(fake.Close)
	model, err := bedrock.New(ctx, bedrock.Options{Region: "us-east-1", Endpoint: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := agent.New(&agent.Config{
		Tools:  []agent.Tool{{Name: "lookup_order", HTTP: &agent.HTTPTool{URL: tools.URL + "/lookup"}}},
		Agents: []agent.AgentConfig{{Name: "support", Tools: []string{"lookup_order"}}},
	}, agent.Options{HTTPClient: &http.Client{Transport: atAnswer{&r.hook}}, DefaultModel: agentModel})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	l, err := boltlog.Open(r.db, boltlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	r.svc, err = convo.New(l, model, convo.Config{DefaultModel: agentModel, Logger: log, Agents: agents{reg: reg}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.svc.Close(ctx) })
	srv := httptest.NewServer(conn.NewHandler(r.svc, conn.Options{Logger: log}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// storedEvents reads conversation id's events from the closed rig's file.
func (r *stopRig) storedEvents(t *testing.T, id string) []protocol.ServerFrame {
	t.Helper()
	l, err := boltlog.Open(r.db, boltlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	raw, err := l.Events(context.Background(), id, 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	frames := make([]protocol.ServerFrame, len(raw))
	for i, b := range raw {
		if err := json.Unmarshal(b, &frames[i]); err != nil {
			t.Fatal(err)
		}
	}
	return frames
}

// TestAgentsStopAsToolAnswers stops an agent's turn (a cancel, the
// gateway's shutdown) at the moment its HTTP tool's answer has come: the
// call ran to its end, so its tool_result keeps the tool's output
// (status ok), live and in the stored log, and the turn still ends as
// the stop says. A call the stop aborted is cancelled (or interrupted);
// one whose answer came is not.
func TestAgentsStopAsToolAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		stop func(r *stopRig, conversation string)
		end  string // the turn_end's stop reason
	}{
		{name: "cancel", end: protocol.StopCancelled, stop: func(r *stopRig, id string) {
			if err := r.svc.Cancel(context.Background(), auth.LocalUser, id); err != nil {
				panic(err)
			}
		}},
		{name: "shutdown", end: protocol.StopInterrupted, stop: func(r *stopRig, _ string) {
			go func() { r.closed <- r.svc.Close(context.Background()) }()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startStopRig(t)
			const id = "stopped"
			c := conntest.Dial(t, r.url, "/v1/ws")
			if f := c.Call(&protocol.Create{ID: "create", Conversation: id, Agent: "support"}); f.Type != protocol.ReplyCreated {
				t.Fatalf("create: %s %s", f.Code, f.ErrorMessage())
			}
			stopped := make(chan struct{})
			hook := func(req *http.Request) {
				tc.stop(r, id)
				// The stop has reached the call: its context is the
				// turn's.
				<-req.Context().Done()
				close(stopped)
			}
			r.hook.Store(&hook)
			c.Request(&protocol.Send{Conversation: id, Text: `/tool lookup_order {"id": "42"}`})
			live := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
			select {
			case <-stopped: // before the call's end, so before turn_end
			default:
				t.Fatalf("the turn ended without the tool's answer: %+v", live[len(live)-1])
			}
			if tc.end != protocol.StopInterrupted {
				r.closed <- r.svc.Close(context.Background())
			}
			if err := <-r.closed; err != nil {
				t.Fatal(err)
			}
			for what, frames := range map[string][]protocol.ServerFrame{"live": live, "stored": r.storedEvents(t, id)} {
				results := ofType(frames, protocol.EventToolResult)
				if len(results) != 1 || results[0].Status != protocol.ResultOK ||
					string(results[0].Output) != `{"id":"42","status":"shipped"}` {
					t.Errorf("%s: tool_results %+v; want one, ok, with the tool's output", what, results)
				}
				ends := ofType(frames, protocol.EventTurnEnd)
				if len(ends) != 1 || ends[0].StopReason != tc.end {
					t.Errorf("%s: turn_ends %+v; want one, %s", what, ends, tc.end)
				}
			}
		})
	}
}
