package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// fakeAWSEnv points the AWS SDK at dummy credentials, for the gateways
// that talk to the fake Bedrock. TestMain sets it for the whole test
// process (and the gateways it starts), so that no test reaches AWS, and
// so that those tests may run in parallel, which t.Setenv forbids.
var fakeAWSEnv = map[string]string{
	"AWS_ACCESS_KEY_ID":           "AKIDEXAMPLE",
	"AWS_SECRET_ACCESS_KEY":       "secret",
	"AWS_EC2_METADATA_DISABLED":   "true",
	"AWS_CONFIG_FILE":             "/nonexistent",
	"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}

// toolServer is the HTTP tools of the agents file, as httptest handlers:
//
//	/lookup   answers {"id": …, "status": "shipped"}
//	/fail     answers 500
//	/hang     answers only when the request is cancelled (it reports that
//	          on cancelled, with the call id)
//	/pair     answers once two calls are in flight at the same time
type toolServer struct {
	*httptest.Server
	cancelled chan string
	hanging   chan string // a /hang call started, with its call id

	mu      sync.Mutex
	calls   map[string]int
	headers []http.Header
	pair    chan struct{}
	paired  int
}

func startTools(t *testing.T) *toolServer {
	ts := &toolServer{cancelled: make(chan string, 16), hanging: make(chan string, 16), calls: map[string]int{},
		pair: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /lookup", func(w http.ResponseWriter, r *http.Request) {
		ts.record(r)
		var in struct{ ID string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"id": in.ID, "status": "shipped"})
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		ts.record(r)
		http.Error(w, "order service down", http.StatusInternalServerError)
	})
	mux.HandleFunc("POST /hang", func(w http.ResponseWriter, r *http.Request) {
		ts.record(r)
		// Read the body: only then does the server watch the connection,
		// and cancel the request's context when the client goes away.
		_, _ = io.Copy(io.Discard, r.Body)
		call := r.Header.Get("X-Gateway-Call")
		ts.hanging <- call
		<-r.Context().Done()
		ts.cancelled <- call
	})
	mux.HandleFunc("POST /pair", func(w http.ResponseWriter, r *http.Request) {
		ts.record(r)
		ts.mu.Lock()
		ts.paired++
		pair := ts.pair
		if ts.paired%2 == 0 {
			close(ts.pair)
			ts.pair = make(chan struct{})
		}
		ts.mu.Unlock()
		select {
		case <-pair:
			_, _ = io.WriteString(w, `{"together":true}`)
		case <-r.Context().Done():
		}
	})
	ts.Server = httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func (ts *toolServer) record(r *http.Request) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.calls[r.URL.Path]++
	ts.headers = append(ts.headers, r.Header.Clone())
}

// lastHeader is the header of the last call.
func (ts *toolServer) lastHeader() http.Header {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.headers[len(ts.headers)-1]
}

// count is how many calls path got.
func (ts *toolServer) count(path string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.calls[path]
}

// startMCP serves an MCP server over streamable HTTP with one tool, echo,
// which answers its input's text.
func startMCP(t *testing.T) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	type echoIn struct {
		Text string `json:"text"`
	}
	type echoOut struct {
		Echo string `json:"echo"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echoes text."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, echoOut, error) {
			return nil, echoOut{Echo: in.Text}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// agentsFile writes the agents file of the tests: agent "support" with
// every kind of tool, and "tight", which may make two model calls a turn.
func agentsFile(t *testing.T, tools *toolServer, mcpURL string) string {
	yaml := fmt.Sprintf(`tools:
  - name: lookup_order
    description: Look up an order by its id
    input_schema: {type: object, properties: {id: {type: string}}}
    http: {url: %[1]s/lookup}
  - name: fail
    description: Always fails
    http: {url: %[1]s/fail}
  - name: hang
    description: Never answers
    http: {url: %[1]s/hang}
    timeout: 1h
  - name: slow
    description: Never answers, and times out
    http: {url: %[1]s/hang}
    timeout: 50ms
  - name: pair
    description: Answers when called twice at once
    http: {url: %[1]s/pair}
  - name: refund
    description: Refunds an order
    http: {url: %[1]s/lookup}
  - name: confirm
    description: Asks the person
    input_schema: {type: object, properties: {question: {type: string}}}
    client: {}
mcp_servers:
  - name: files
    url: %[2]s
agents:
  - name: support
    description: Answers questions about orders
    system: You help {{user}} in {{conversation}}.
    tools: [lookup_order, fail, hang, slow, pair, refund, confirm, files]
    approval: [refund]
    max_steps: 5
  - name: tight
    tools: [lookup_order]
    max_steps: 2
`, tools.URL, mcpURL)
	path := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// agentRig is a gateway running the agents file against the fake Bedrock,
// whose script plays a model that calls tools on request (see toolModel).
type agentRig struct {
	g     *gateway
	fake  *fakebedrock.Server
	tools *toolServer
	file  string // the agents file
	mcp   string // the MCP server's URL
}

const agentModel = "anthropic.claude-3-5-haiku-20241022-v1:0"

func startAgentRig(t *testing.T, args ...string) *agentRig {
	return startAgentRigWith(t, toolModel, args...)
}

// startAgentRigWith is startAgentRig with the fake Bedrock answering as
// model.
func startAgentRigWith(t *testing.T, model func(int, fakebedrock.Request) fakebedrock.Reply, args ...string) *agentRig {
	r := &agentRig{tools: startTools(t), mcp: startMCP(t)}
	r.fake = fakebedrock.New(model)
	t.Cleanup(r.fake.Close)
	r.file = agentsFile(t, r.tools, r.mcp)
	args = append([]string{"-addr", "127.0.0.1:0", "-provider", "bedrock", "-model", agentModel, "-region", "us-east-1",
		"-bedrock-endpoint", r.fake.URL, "-agents", r.file}, args...)
	r.g = startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db")}, args...)
	return r
}

// toolModel is the fake Bedrock's script: a model that, for a user
// message with lines "/tool NAME {json}", calls those tools (one step's
// calls, their input streamed in two fragments, none for no input); for
// "/loop NAME {json}", calls them again after every result; given tool
// results, answers "Results: " and the results; else says "Hello.".
func toolModel(call int, req fakebedrock.Request) fakebedrock.Reply {
	msgs := req.Body.Messages
	last := msgs[len(msgs)-1]
	var results []string
	for _, b := range last.Content {
		if tr := b.ToolResult; tr != nil {
			for _, c := range tr.Content {
				results = append(results, tr.Status+c.Text+string(c.JSON))
			}
		}
	}
	usage := fakebedrock.Usage{InputTokens: 10, OutputTokens: 3}
	command := turnCommand(msgs)
	if len(results) > 0 && !strings.HasPrefix(command, "/loop") {
		return fakebedrock.Reply{Chunks: []string{"Results: ", strings.Join(results, "; ")}, Usage: usage}
	}
	var uses []fakebedrock.ToolUse
	for i, line := range strings.Split(command, "\n") {
		_, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(line, "/") {
			continue
		}
		name, input, _ := strings.Cut(rest, " ")
		var parts []string
		if input != "" {
			parts = []string{input[:len(input)/2], input[len(input)/2:]}
		}
		uses = append(uses, fakebedrock.ToolUse{ID: fmt.Sprintf("tooluse_%d_%d", call, i), Name: name, Input: parts})
	}
	if len(uses) == 0 {
		return fakebedrock.Reply{Chunks: []string{"Hello."}, Usage: usage}
	}
	return fakebedrock.Reply{Chunks: []string{"Let me check. "}, ToolUses: uses, StopReason: "tool_use", Usage: usage}
}

// turnCommand is the text of the last user message that has text: the
// message the turn answers.
func turnCommand(msgs []fakebedrock.Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		for _, b := range msgs[i].Content {
			if msgs[i].Role == "user" && b.Text != "" {
				return b.Text
			}
		}
	}
	return ""
}

// agentConv opens a WebSocket and creates a conversation with agent.
func (r *agentRig) agentConv(t *testing.T, id, agent string) *conntest.Client {
	t.Helper()
	c := conntest.Dial(t, r.g.URL, "/v1/ws")
	if f := c.Call(&protocol.Create{ID: "create", Conversation: id, Agent: agent}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create %s with agent %s: %s %s %s", id, agent, f.Type, f.Code, f.ErrorMessage())
	}
	return c
}

// send sends text to conversation and reads until the turn's end.
func send(t *testing.T, c *conntest.Client, conversation, text string) []protocol.ServerFrame {
	t.Helper()
	c.Request(&protocol.Send{Conversation: conversation, Text: text})
	return c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
}

// ofType returns the frames of type typ.
func ofType(frames []protocol.ServerFrame, typ string) []protocol.ServerFrame {
	var out []protocol.ServerFrame
	for _, f := range frames {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}
