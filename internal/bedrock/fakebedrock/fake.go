// Package fakebedrock is a local stand-in for the Amazon Bedrock Runtime
// ConverseStream endpoint, for tests that drive the real AWS SDK client.
//
// A Server answers POST /model/{modelId}/converse-stream with
// application/vnd.amazon.eventstream frames encoded by the SDK's own
// eventstream package, in the JSON shapes the SDK's deserializers expect. It
// records every request and answers each one as its script says: text
// chunks, reasoning, tool use, delays, an exception or a dropped connection
// after k chunks, or an HTTP error before the stream. Like the service, it
// answers a request it finds invalid (see validate.go) with 400
// ValidationException, after recording it, without asking the script.
//
// Point a client at it with the Endpoint option of internal/bedrock, or with
// AWS_ENDPOINT_URL_BEDROCK_RUNTIME=srv.URL. It does not check signatures;
// the client still needs (dummy) credentials and a region to sign with.
// It answers as soon as it has read a request, unless told otherwise
// (Reply.ResponseDelay), and keeps every request in memory until Close.
package fakebedrock

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Script decides the reply to one request. call counts the requests the
// server has received, from 1.
type Script func(call int, req Request) Reply

// Request is one ConverseStream request as the server received it.
type Request struct {
	// ModelID is the {modelId} path segment, unescaped.
	ModelID string
	Header  http.Header
	Body    Body
	// Raw is the request body as sent.
	Raw json.RawMessage
}

// Body is the part of the ConverseStream request body the gateway sends.
type Body struct {
	Messages        []Message        `json:"messages"`
	System          []TextBlock      `json:"system,omitempty"`
	InferenceConfig *InferenceConfig `json:"inferenceConfig,omitempty"`
	ToolConfig      *ToolConfig      `json:"toolConfig,omitempty"`
}

// Message is one message of a request body.
type Message struct {
	Role    string         `json:"role"`
	Content []ContentBlock `json:"content"`
}

// ContentBlock is one content block of a message: text, a tool use or a
// tool result.
type ContentBlock struct {
	Text       string           `json:"text,omitempty"`
	ToolUse    *ToolUseBlock    `json:"toolUse,omitempty"`
	ToolResult *ToolResultBlock `json:"toolResult,omitempty"`
}

// TextBlock is a system block.
type TextBlock struct {
	Text string `json:"text"`
}

// ToolUseBlock is an assistant message's tool use, replayed.
type ToolUseBlock struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

// ToolResultBlock is a user message's result of a tool use.
type ToolResultBlock struct {
	ToolUseID string              `json:"toolUseId"`
	Content   []ToolResultContent `json:"content"`
	// Status is "error" for a failed call, else empty ("success").
	Status string `json:"status,omitempty"`
}

// ToolResultContent is one block of a tool result: text or JSON.
type ToolResultContent struct {
	Text string          `json:"text,omitempty"`
	JSON json.RawMessage `json:"json,omitempty"`
}

// ToolConfig declares the tools the model may use.
type ToolConfig struct {
	Tools []Tool `json:"tools"`
}

// Tool is one tool of a ToolConfig.
type Tool struct {
	ToolSpec ToolSpec `json:"toolSpec"`
}

// ToolSpec describes a tool: its name, description and input schema.
type ToolSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	InputSchema struct {
		JSON json.RawMessage `json:"json"`
	} `json:"inputSchema"`
}

// InferenceConfig is the request's inferenceConfig.
type InferenceConfig struct {
	MaxTokens   *int32   `json:"maxTokens,omitempty"`
	Temperature *float32 `json:"temperature,omitempty"`
}

// Server is a running fake endpoint. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the base URL to use as the client's endpoint.
	URL string

	srv    *httptest.Server
	script Script

	mu       sync.Mutex
	requests []Request
	conns    int
}

// New starts a Server that answers with script. Close it when done.
func New(script Script) *Server {
	s := &Server{script: script}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /model/{modelId}/converse-stream", s.converseStream)
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down, closing any connection still open.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Requests returns a copy of the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Calls is the number of requests received so far.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Conns is the number of connections accepted so far.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *Server) converseStream(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{ModelID: r.PathValue("modelId"), Header: r.Header.Clone(), Raw: raw}
	if err := json.Unmarshal(raw, &req.Body); err != nil {
		writeHTTPError(w, &HTTPError{Status: http.StatusBadRequest, Type: "ValidationException", Message: "malformed request body: " + err.Error()})
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	call := len(s.requests)
	s.mu.Unlock()
	if err := validate(req.ModelID, raw); err != nil {
		writeHTTPError(w, &HTTPError{Status: http.StatusBadRequest, Type: "ValidationException", Message: err.Error()})
		return
	}

	reply := s.script(call, req)
	if reply.ResponseDelay > 0 {
		select {
		case <-time.After(reply.ResponseDelay):
		case <-r.Context().Done():
			return
		}
	}
	if reply.Error != nil {
		writeHTTPError(w, reply.Error)
		return
	}
	reply.stream(w, r)
}

// Always answers every request with reply.
func Always(reply Reply) Script {
	return func(int, Request) Reply { return reply }
}

// FailFirst answers the first n requests with the HTTP error e and the
// others with reply.
func FailFirst(n int, e HTTPError, reply Reply) Script {
	return func(call int, _ Request) Reply {
		if call <= n {
			return Reply{Error: &e}
		}
		return reply
	}
}
