package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/protocol"
)

// longestLine is a log destination that keeps the longest record written
// to it.
type longestLine struct {
	mu      sync.Mutex
	longest string
}

func (l *longestLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(p) > len(l.longest) {
		l.longest = string(p)
	}
	return len(p), nil
}

// TestEchoedValuesAreCut sends, in every place the gateway repeats in an
// error message or a log line, a value of half a megabyte (net/http takes
// headers up to 1 MiB): the answer's message and every log line stay a
// few hundred bytes long, with the cut marked.
func TestEchoedValuesAreCut(t *testing.T) {
	t.Parallel()
	logged := &longestLine{}
	log := slog.New(slog.NewTextHandler(logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := conntest.Start(t, conntest.Config{
		Conn: conn.Options{Logger: log},
		API:  httpapi.Options{Logger: log, Loopback: true},
	})
	huge := strings.Repeat("a", 512<<10)
	upgrade := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
	tests := []struct {
		name, method, path string
		header             map[string]string
		code               string
	}{
		{"path", "GET", "/v1/" + huge, nil, protocol.CodeNotFound},
		{"method", strings.ToUpper(huge), "/healthz", nil, protocol.CodeMethodNotAllowed},
		{"Host", "GET", "/healthz", map[string]string{"Host": huge + ".example"}, protocol.CodeForbidden},
		{"Origin", "POST", "/v1/conversations", map[string]string{"Origin": "http://" + huge, "Content-Type": "application/json"}, protocol.CodeForbidden},
		{"Content-Type", "POST", "/v1/conversations", map[string]string{"Content-Type": huge}, protocol.CodeUnsupportedMediaType},
		{"Sec-WebSocket-Key", "GET", "/v1/ws", with(upgrade, "Sec-WebSocket-Key", huge), protocol.CodeBadRequest},
		{"Connection", "GET", "/v1/ws", with(upgrade, "Connection", huge), protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest(tt.method, s.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				if k == "Host" {
					r.Host = v
					continue
				}
				r.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var e struct{ Error *protocol.Error }
			if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Code != tt.code {
				t.Fatalf("answered %d %.200s, want a %s error", resp.StatusCode, b, tt.code)
			}
			if msg := e.Error.Message; len(msg) > 2*limits.MaxEchoBytes || !strings.Contains(msg, "…(cut from ") {
				t.Errorf("message of %d bytes, want at most %d with the cut marked: %.300s", len(msg), 2*limits.MaxEchoBytes, msg)
			}
		})
	}
	logged.check(t, s)
}

// check fails t when s logged a line over a few hundred bytes.
func (l *longestLine) check(t *testing.T, s *conntest.Server) {
	t.Helper()
	// Close waits for every request's handler, and so for its log lines.
	s.HTTP.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.longest); n > 4*limits.MaxEchoBytes {
		t.Errorf("a log line of %d bytes: %.300s", n, l.longest)
	}
}

// TestRefusedTokenLogIsCut upgrades with a token whose header names an
// algorithm of 5000 bytes, which the refusal's cause quotes: the log
// lines of the token's check and of the refused upgrade stay short.
func TestRefusedTokenLogIsCut(t *testing.T) {
	t.Parallel()
	logged := &longestLine{}
	log := slog.New(slog.NewTextHandler(logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	j, err := auth.NewJWT(t.Context(), auth.JWTOptions{Secret: conntest.Secret, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s := conntest.Start(t, conntest.Config{Conn: conn.Options{Logger: log, User: j.Caller}, API: httpapi.Options{Logger: log, User: j.Caller}})
	part := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	token := part(`{"typ":"JWT","alg":"`+strings.Repeat("x", 5000)+`"}`) + "." + part(`{"sub":"a"}`) + ".AA"
	_, resp, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade: %v, want 401", err)
	}
	logged.check(t, s)
}

// with returns a copy of m with k set to v.
func with(m map[string]string, k, v string) map[string]string {
	c := maps.Clone(m)
	c[k] = v
	return c
}
