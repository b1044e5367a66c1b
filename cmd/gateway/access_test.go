package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// TestRunJWT runs the gateway with -auth jwt: the API and the upgrade need
// a token, the probes and /v1/info do not; the per-user limits apply, and
// WebSocket and HTTP sends share one budget.
func TestRunJWT(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db"), "GATEWAY_DEMO_WORD_DELAY": "-1ns",
		"GATEWAY_AUTH": "jwt", secretEnv: string(conntest.Secret)}
	g := startRun(t, env, "-addr", "127.0.0.1:0", "-send-rate", "0.001", "-send-burst", "1", "-max-conns-per-user", "1")

	var info struct{ Auth string }
	get(t, g.URL+"/v1/info", &info)
	if info.Auth != "jwt" {
		t.Errorf("info says auth %q, want jwt", info.Auth)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/"} {
		if got := status(t, g.URL+path); got != 200 {
			t.Errorf("GET %s without a token: %d", path, got)
		}
	}
	resp, err := http.Get(g.URL + "/v1/conversations")
	if err != nil {
		t.Fatal(err)
	}
	conntest.CheckAnswer(t, "GET", g.URL+"/v1/conversations", "", resp)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("list without a token: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	if a := conntest.Upgrade(t, g.URL, "token=bad", nil); a.Status != 401 || a.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("upgrade with a bad token answered %d %+v", a.Status, a.Error)
	}
	a := conntest.Upgrade(t, g.URL, "", conntest.Bearer(t, "alice"))
	if a.Status != 101 {
		t.Fatalf("upgrade with a token answered %d %+v", a.Status, a.Error)
	}
	alice := a.Client
	if again := conntest.Upgrade(t, g.URL, "", conntest.Bearer(t, "alice")); again.Status != 503 || again.Error.Code != protocol.CodeBusy {
		t.Errorf("alice's second connection answered %d %+v, want 503 busy", again.Status, again.Error)
	}
	if bob := conntest.Upgrade(t, g.URL, "", conntest.Bearer(t, "bob")); bob.Status != 101 {
		t.Errorf("bob's connection answered %d %+v", bob.Status, bob.Error)
	}

	alice.Request(&protocol.Send{Text: "hello"})
	frames := alice.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	end := frames[len(frames)-1]
	if !strings.Contains(end.StoredMessage().Text, "hello") {
		t.Errorf("reply %q", end.StoredMessage().Text)
	}
	// The WebSocket send took alice's one token: the HTTP send is refused.
	req, err := http.NewRequest("POST", g.URL+"/v1/conversations/"+end.Conversation+"/messages", strings.NewReader(`{"text":"again"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = conntest.Bearer(t, "alice")
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	conntest.CheckAnswer(t, "POST", req.URL.String(), `{"text":"again"}`, resp)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("alice's HTTP send after her WebSocket send: %s, Retry-After %q; want 429 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
}

// TestRunRefusals checks that the limit and origin flags reach the
// WebSocket handler: each case dials in order and expects the statuses.
func TestRunRefusals(t *testing.T) {
	t.Parallel()
	foreign := http.Header{"Origin": {"https://evil.example.net"}}
	listed := http.Header{"Origin": {"https://app.example.com"}}
	tests := []struct {
		name   string
		args   []string
		dials  []http.Header
		status []int
	}{
		{"origins", []string{"-allowed-origins", " app.example.com , *.other.test"},
			[]http.Header{nil, listed, {"Origin": {"http://x.other.test"}}, foreign}, []int{101, 101, 101, 403}},
		{"upgrade rate", []string{"-upgrade-rate", "0.001", "-upgrade-burst", "2"},
			[]http.Header{nil, nil, nil}, []int{101, 101, 429}},
		{"max conns", []string{"-max-conns", "1"}, []http.Header{nil, nil}, []int{101, 503}},
		{"no per-user bound with auth none", []string{"-max-conns-per-user", "1"}, []http.Header{nil, nil}, []int{101, 101}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db")}
			g := startRun(t, env, append([]string{"-addr", "127.0.0.1:0"}, tt.args...)...)
			for i, h := range tt.dials {
				if a := conntest.Upgrade(t, g.URL, "", h); a.Status != tt.status[i] {
					t.Errorf("dial %d answered %d %+v, want %d", i, a.Status, a.Error, tt.status[i])
				}
			}
		})
	}
}

// TestRunBadAuth checks that run refuses to start with JWT keys it cannot
// use, rather than serving without authentication.
func TestRunBadAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"short secret", map[string]string{"GATEWAY_AUTH": "jwt", secretEnv: "short"}, "-auth jwt"},
		{"missing JWKS file", map[string]string{"GATEWAY_AUTH": "jwt", "GATEWAY_JWT_JWKS": "/nonexistent/jwks.json"}, "-auth jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.env["GATEWAY_DB"] = filepath.Join(t.TempDir(), "gateway.db")
			err := run(t.Context(), []string{"-addr", "127.0.0.1:0"}, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("run: %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// TestRunAuthFailures runs the gateway with -auth jwt and a burst of two
// failed authentications per address: after two bad tokens, over HTTP or
// WebSocket, the address gets 429 rate_limited with Retry-After, good
// token or not, on both, and the refusals are counted.
func TestRunAuthFailures(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db"), "GATEWAY_AUTH": "jwt", secretEnv: string(conntest.Secret)}
	g := startRun(t, env, "-addr", "127.0.0.1:0", "-auth-fail-rate", "0.001", "-auth-fail-burst", "2")
	list := func(header http.Header) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", g.URL+"/v1/conversations", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		conntest.CheckAnswer(t, "GET", req.URL.String(), "", resp)
		return resp
	}
	bad := http.Header{"Authorization": {"Bearer bad"}}
	if resp := list(conntest.Bearer(t, "alice")); resp.StatusCode != 200 {
		t.Fatalf("list with a token: %s", resp.Status)
	}
	if resp := list(bad); resp.StatusCode != 401 {
		t.Errorf("list with a bad token: %s, want 401", resp.Status)
	}
	if a := conntest.Upgrade(t, g.URL, "token=bad", nil); a.Status != 401 {
		t.Errorf("upgrade with a bad token: %d %+v, want 401", a.Status, a.Error)
	}
	for _, h := range []http.Header{bad, conntest.Bearer(t, "alice")} {
		if resp := list(h); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("list after two failures: %s, Retry-After %q; want 429 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
		}
		if a := conntest.Upgrade(t, g.URL, "", h); a.Status != 429 || a.Error == nil || a.Error.Code != protocol.CodeRateLimited || a.Error.RetryAfterMS <= 0 {
			t.Errorf("upgrade after two failures: %d %+v, want 429 rate_limited with retry_after_ms", a.Status, a.Error)
		}
	}
	var refused float64
	_, b := conntest.Do(t, http.MethodGet, g.URL+"/metrics", "")
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, `gateway_rate_limited_total{kind="auth"} `) {
			_, _ = fmt.Sscan(strings.TrimPrefix(line, `gateway_rate_limited_total{kind="auth"} `), &refused)
		}
	}
	if refused != 4 {
		t.Errorf("gateway_rate_limited_total{kind=\"auth\"} = %v, want 4", refused)
	}
}
