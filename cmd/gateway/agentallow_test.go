package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// TestAgentsAllow runs the gateway with -auth jwt and agents restricted by
// their allow lists: each user lists, creates with and talks to only the
// agents their token's claims match, over WebSocket and HTTP alike; the
// others do not exist for them (not_found).
func TestAgentsAllow(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(file, []byte(`agents:
  - name: open
  - name: support
    allow: {claims: {"cognito:groups": support}}
  - name: senior
    allow: {claims: {"cognito:groups": support, level: 3}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db"), "GATEWAY_DEMO_WORD_DELAY": "-1ns",
		"GATEWAY_AUTH": "jwt", secretEnv: string(conntest.Secret)}, "-addr", "127.0.0.1:0", "-agents", file, "-send-rate", "0")

	tokens := map[string]string{
		"alice": conntest.TokenClaims(t, "alice", map[string]any{"cognito:groups": []string{"sales", "support"}, "level": 3}),
		"bob":   conntest.TokenClaims(t, "bob", map[string]any{"cognito:groups": "support", "level": 2}),
		"carol": conntest.TokenClaims(t, "carol", map[string]any{"cognito:groups": []string{"sales"}}),
		"dave":  conntest.Token(t, "dave"),
	}
	for _, tc := range []struct {
		user string
		want []string // the agents the user may use
	}{
		{"alice", []string{"open", "support", "senior"}},
		{"bob", []string{"open", "support"}},
		{"carol", []string{"open"}},
		{"dave", []string{"open"}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			bearer := http.Header{"Authorization": {"Bearer " + tokens[tc.user]}}
			a := conntest.Upgrade(t, g.URL, "", bearer)
			if a.Status != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %d %+v", a.Status, a.Error)
			}
			ws := a.Client
			if got := agentNames(ws.Call(&protocol.Agents{ID: "a"}).Agents); !slices.Equal(got, tc.want) {
				t.Errorf("agents over WebSocket: %v, want %v", got, tc.want)
			}
			var list protocol.AgentsReply
			if code, body := authDo(t, bearer, http.MethodGet, g.URL+"/v1/agents", ""); code != 200 || json.Unmarshal(body, &list) != nil {
				t.Fatalf("GET /v1/agents: %d %s", code, body)
			}
			if got := agentNames(list.Agents); !slices.Equal(got, tc.want) {
				t.Errorf("agents over HTTP: %v, want %v", got, tc.want)
			}
			for _, name := range []string{"open", "support", "senior"} {
				allowed := slices.Contains(tc.want, name)
				f := ws.Call(&protocol.Create{ID: "c", Conversation: tc.user + "-ws-" + name, Agent: name})
				if allowed && (f.Type != protocol.ReplyCreated || f.Info == nil || f.Info.Agent != name) ||
					!allowed && (f.Type != protocol.ReplyError || f.Code != protocol.CodeNotFound) {
					t.Errorf("create with %s over WebSocket: %s %s %s", name, f.Type, f.Code, f.ErrorMessage())
				}
				code, body := authDo(t, bearer, http.MethodPost, g.URL+"/v1/conversations",
					`{"conversation":"`+tc.user+`-http-`+name+`","agent":"`+name+`"}`)
				if allowed && code != http.StatusCreated || !allowed && (code != http.StatusNotFound || !strings.Contains(string(body), "not_found")) {
					t.Errorf("create with %s over HTTP: %d %s", name, code, body)
				}
			}
			// An unknown agent is still a bad request that names it.
			if f := ws.Call(&protocol.Create{ID: "c", Agent: "nosuch"}); f.Code != protocol.CodeBadRequest || !strings.Contains(f.ErrorMessage(), "nosuch") {
				t.Errorf("create with an unknown agent: %s %s %s", f.Type, f.Code, f.ErrorMessage())
			}
		})
	}

	// A conversation stays usable only while its owner's token matches:
	// alice, with a token that no longer holds the group, cannot send to
	// her conversation with support.
	t.Run("an owner who left the group", func(t *testing.T) {
		member := http.Header{"Authorization": {"Bearer " + tokens["alice"]}}
		left := http.Header{"Authorization": {"Bearer " + conntest.TokenClaims(t, "alice", map[string]any{"cognito:groups": []string{"sales"}})}}
		if code, body := authDo(t, member, http.MethodPost, g.URL+"/v1/conversations",
			`{"conversation":"alice-left","agent":"support"}`); code != http.StatusCreated {
			t.Fatalf("create with support: %d %s", code, body)
		}
		send := func(h http.Header, text string) protocol.ServerFrame {
			a := conntest.Upgrade(t, g.URL, "", h)
			if a.Status != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %d %+v", a.Status, a.Error)
			}
			return a.Client.Call(&protocol.Send{ID: "s", Conversation: "alice-left", Text: text})
		}
		if f := send(member, "hello"); f.Type != protocol.ReplyAck {
			t.Errorf("alice's send with her token: %s %s %s", f.Type, f.Code, f.ErrorMessage())
		}
		if f := send(left, "hello again"); f.Code != protocol.CodeNotFound || !strings.Contains(f.ErrorMessage(), "support") {
			t.Errorf("alice's send without the group: %s %s %s", f.Type, f.Code, f.ErrorMessage())
		}
		if code, body := authDo(t, left, http.MethodPost, g.URL+"/v1/conversations/alice-left/messages", `{"text":"over HTTP"}`); code != http.StatusNotFound {
			t.Errorf("alice's HTTP send without the group: %d %s", code, body)
		}
	})
}

// TestAgentsAnswerOthers checks that only the conversation's owner may
// answer its calls, and only while their token matches the agent's allow
// list: another user's approve and tool_output, or the owner's with a
// token that no longer matches, are not_found, over WebSocket and HTTP,
// and leave the calls waiting for the owner.
func TestAgentsAnswerOthers(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(file, []byte(`tools:
  - {name: confirm, client: {}}
  - {name: refund, http: {url: "http://127.0.0.1:1/refund"}}
agents:
  - {name: a, tools: [confirm, refund], approval: [refund], allow: {claims: {team: orders}}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db"), "GATEWAY_DEMO_WORD_DELAY": "-1ns",
		"GATEWAY_AUTH": "jwt", secretEnv: string(conntest.Secret)}, "-addr", "127.0.0.1:0", "-agents", file, "-send-rate", "0")
	bearer := func(user, team string) http.Header {
		return http.Header{"Authorization": {"Bearer " + conntest.TokenClaims(t, user, map[string]any{"team": team})}}
	}
	dial := func(h http.Header) *conntest.Client {
		a := conntest.Upgrade(t, g.URL, "", h)
		if a.Status != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %d %+v", a.Status, a.Error)
		}
		return a.Client
	}
	// Bob may use the agent too, but not alice's conversation; alice once
	// she left the team may not use it at all.
	others := map[string]http.Header{"bob": bearer("bob", "orders"), "alice, who left": bearer("alice", "sales")}
	alice := dial(bearer("alice", "orders"))
	if f := alice.Call(&protocol.Create{ID: "c", Conversation: "mine", Agent: "a"}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create: %s %s %s", f.Type, f.Code, f.ErrorMessage())
	}
	alice.Request(&protocol.Send{Conversation: "mine", Text: "/tool confirm {}\n/tool refund {}"})
	calls := ofType(alice.ReadUntil(func(f *protocol.ServerFrame) bool {
		return f.Type == protocol.EventToolCall && f.Name == "refund"
	}), protocol.EventToolCall)
	if len(calls) != 2 || calls[0].Status != protocol.CallAwaitingClient || calls[1].Status != protocol.CallAwaitingApproval {
		t.Fatalf("tool_calls %+v", calls)
	}
	confirm, refund := calls[0].Call, calls[1].Call
	base := g.URL + "/v1/conversations/mine/calls/"
	for who, h := range others {
		ws := dial(h)
		for _, req := range []protocol.Request{
			&protocol.ToolOutput{ID: "o", Conversation: "mine", Call: confirm, Output: json.RawMessage(`{"yes":true}`)},
			&protocol.Approve{ID: "p", Conversation: "mine", Call: refund, Approved: true},
		} {
			if f := ws.Call(req); f.Type != protocol.ReplyError || f.Code != protocol.CodeNotFound {
				t.Errorf("%s: %T over WebSocket: %s %s %s", who, req, f.Type, f.Code, f.ErrorMessage())
			}
		}
		for url, body := range map[string]string{base + confirm + "/output": `{"output":1}`, base + refund + "/approval": `{"approved":true}`} {
			if code, b := authDo(t, h, http.MethodPost, url, body); code != http.StatusNotFound {
				t.Errorf("%s: POST %s: %d %s", who, url, code, b)
			}
		}
	}
	// The calls still wait for alice.
	if code, b := authDo(t, bearer("alice", "orders"), http.MethodPost, base+confirm+"/output", `{"output":{"yes":true}}`); code != http.StatusOK {
		t.Errorf("alice's POST output: %d %s", code, b)
	}
	if f := alice.Call(&protocol.Approve{ID: "p", Conversation: "mine", Call: refund, Approved: true}); f.Type != protocol.ReplyAccepted {
		t.Errorf("alice's approve: %s %s %s", f.Type, f.Code, f.ErrorMessage())
	}
}

// agentNames are the names of list, in order.
func agentNames(list []protocol.AgentInfo) []string {
	names := []string{}
	for _, a := range list {
		names = append(names, a.Name)
	}
	return names
}

// authDo is conntest.Do with the headers of header (a token, say).
func authDo(t *testing.T, header http.Header, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(conntest.Deadline(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
