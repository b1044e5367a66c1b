package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// urlLine finds the URL in the "gateway listening" log line.
var urlLine = regexp.MustCompile(`msg="gateway listening" url=(http://\S+)/`)

// logScan reads a gateway's log, logging each line to t.
type logScan struct {
	// url receives the listening URL; it is closed at the end of the log.
	url chan string
	// done is closed once the whole log is read.
	done chan struct{}

	mu       sync.Mutex
	watchers map[*regexp.Regexp]chan struct{}
}

func scanLog(t *testing.T, r io.Reader) *logScan {
	s := &logScan{url: make(chan string, 1), done: make(chan struct{}), watchers: map[*regexp.Regexp]chan struct{}{}}
	go func() {
		defer close(s.done)
		defer close(s.url)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			t.Log(sc.Text())
			if m := urlLine.FindStringSubmatch(sc.Text()); m != nil {
				s.url <- m[1]
			}
			s.mu.Lock()
			for re, ch := range s.watchers {
				if re.MatchString(sc.Text()) {
					close(ch)
					delete(s.watchers, re)
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// watch returns a channel that is closed once a later line of the log
// matches re.
func (s *logScan) watch(re *regexp.Regexp) <-chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	s.watchers[re] = ch
	s.mu.Unlock()
	return ch
}

// listening returns the URL the gateway listens on, failing t if its log
// ends first.
func (s *logScan) listening(t *testing.T) string {
	t.Helper()
	url, ok := <-s.url
	if !ok {
		t.Fatal("the gateway ended before listening")
	}
	return url
}

// gateway is a running run().
type gateway struct {
	URL  string
	stop context.CancelFunc
	done chan error
	log  *logScan
}

// startRun starts run with args and the environment env, and waits until
// it listens. The test's end stops it.
func startRun(t *testing.T, env map[string]string, args ...string) *gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	g := &gateway{stop: cancel, done: make(chan error, 1), log: scanLog(t, pr)}
	go func() {
		err := run(ctx, args, func(k string) string { return env[k] }, pw)
		pw.Close()
		g.done <- err
	}()
	t.Cleanup(func() { g.Stop(t) })
	g.URL = g.log.listening(t)
	return g
}

// Stop stops the gateway (as SIGTERM does) and checks that run returned nil.
func (g *gateway) Stop(t *testing.T) {
	t.Helper()
	if g.stop == nil {
		return
	}
	g.stop()
	g.stop = nil
	if err := <-g.done; err != nil {
		t.Errorf("run returned %v", err)
	}
	<-g.log.done
}

// status returns the status of GET url.
func status(t *testing.T, url string) int {
	t.Helper()
	code, _ := conntest.Do(t, http.MethodGet, url, "")
	return code
}

// get decodes the answer to GET url into v, failing t unless it is 200.
func get(t *testing.T, url string, v any) {
	t.Helper()
	code, b := conntest.Do(t, http.MethodGet, url, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestRunRestart chats with the real program, stops it while a client is
// connected (close 1001), starts it again on the same file and finds the
// conversation.
func TestRunRestart(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "gateway.db")
	env := map[string]string{"GATEWAY_DB": db, "GATEWAY_DEMO_WORD_DELAY": "-1ns"}
	g := startRun(t, env, "-addr", "127.0.0.1:0")

	var info struct{ Provider, DefaultModel string }
	get(t, g.URL+"/v1/info", &info)
	if info.Provider != "demo" {
		t.Errorf("info %+v, want provider demo", info)
	}
	c := conntest.Dial(t, g.URL, "/v1/ws")
	c.Request(&protocol.Send{ID: "s", Text: "hello"})
	frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	end := frames[len(frames)-1]
	if reply := end.StoredMessage().Text; !strings.Contains(reply, "Demo model") || !strings.Contains(reply, "hello") {
		t.Errorf("reply %q does not say it is the demo model and echo the message", reply)
	}

	closed := make(chan error, 1)
	go func() {
		_, err := c.ReadErr()
		closed <- err
	}()
	g.Stop(t)
	if err := <-closed; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("on shutdown the client got %v, want close 1001", err)
	}

	g = startRun(t, env, "-addr", "127.0.0.1:0")
	c = conntest.Dial(t, g.URL, "/v1/ws")
	h := c.Call(&protocol.History{ID: "h", Conversation: end.Conversation})
	if len(h.Messages) != 2 || h.Messages[0].Text != "hello" || h.Messages[1].Text != end.StoredMessage().Text {
		t.Errorf("history after restart %+v", h.Messages)
	}
}

func TestDatabaseInUse(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "gateway.db")
	startRun(t, nil, "-addr", "127.0.0.1:0", "-db", db)
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-db", db}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "database "+db+" is in use by another process") {
		t.Errorf("second gateway on the same file: %v, want 'in use by another process'", err)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(*config) bool
		wantErr string
	}{
		{name: "defaults", want: func(c *config) bool {
			return c.addr == "localhost:8080" && c.db == "gateway.db" && c.provider == "demo" && c.sendQueue == 0 &&
				c.auth == "none" && c.maxSubscriptions == 0 && c.maxConns == 10000 && c.maxConnsPerUser == 100 &&
				c.sendRate == 5 && c.sendBurst == 20 && c.upgradeRate == 20 && c.upgradeBurst == 50 &&
				c.drainTimeout == 30*time.Second && c.jwtLeeway == 30*time.Second && c.origins() == nil &&
				c.maxModelCalls == 512 && c.proxies == nil
		}},
		{name: "jwt from the environment", env: map[string]string{"GATEWAY_AUTH": "jwt", "GATEWAY_JWT_SECRET": "s3cret",
			"GATEWAY_JWT_ISSUER": "iss", "GATEWAY_JWT_AUDIENCE": "aud", "GATEWAY_JWT_JWKS": "keys.json"},
			want: func(c *config) bool {
				return c.auth == "jwt" && c.jwtSecret == "s3cret" && c.jwtIssuer == "iss" && c.jwtAudience == "aud" && c.jwtJWKS == "keys.json"
			}},
		{name: "limits from the environment", env: map[string]string{"GATEWAY_MAX_CONNS": "5", "GATEWAY_SEND_RATE": "0.5",
			"GATEWAY_DRAIN_TIMEOUT": "1s", "GATEWAY_ALLOWED_ORIGINS": " a.example , ,*.b.example "},
			want: func(c *config) bool {
				return c.maxConns == 5 && c.sendRate == 0.5 && c.drainTimeout == time.Second &&
					slices.Equal(c.origins(), []string{"a.example", "*.b.example"})
			}},
		{name: "jwt without keys", args: []string{"-auth", "jwt"}, wantErr: "GATEWAY_JWT_SECRET"},
		{name: "unknown auth", args: []string{"-auth", "basic"}, wantErr: "want none or jwt"},
		{name: "jwt settings without jwt", args: []string{"-jwt-issuer", "iss"}, wantErr: "need -auth jwt"},
		{name: "no secret flag", args: []string{"-jwt-secret", "s"}, wantErr: "jwt-secret"},
		{name: "negative limit", args: []string{"-max-conns", "-1"}, wantErr: "max-conns: must not be negative"},
		{name: "model calls from the environment", env: map[string]string{"GATEWAY_MAX_MODEL_CALLS": "8"},
			want: func(c *config) bool { return c.maxModelCalls == 8 }},
		{name: "model calls without a limit", args: []string{"-max-model-calls", "0"}, env: map[string]string{"GATEWAY_MAX_MODEL_CALLS": "8"},
			want: func(c *config) bool { return c.maxModelCalls == 0 }},
		{name: "negative model calls", args: []string{"-max-model-calls", "-1"}, wantErr: "-max-model-calls: must not be negative"},
		{name: "zero burst", args: []string{"-send-burst", "0"}, wantErr: "at least 1"},
		{name: "trusted proxies from the environment", env: map[string]string{"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32"},
			want: func(c *config) bool { return c.proxies != nil }},
		{name: "bad trusted proxy", args: []string{"-trusted-proxies", "10.0.0.0/8,10.1.2.3/16"},
			wantErr: `flag -trusted-proxies: limits: trusted proxy "10.1.2.3/16": bits set past the /16; did you mean 10.1.0.0/16?`},
		{name: "malformed origin pattern", args: []string{"-allowed-origins", "app.example.com, *.example.[com"}, wantErr: "-allowed-origins"},
		{name: "environment", env: map[string]string{"GATEWAY_ADDR": ":9000", "GATEWAY_SEND_QUEUE": "64", "GATEWAY_DEMO_WORD_DELAY": "5ms"},
			want: func(c *config) bool {
				return c.addr == ":9000" && c.sendQueue == 64 && c.demoWordDelay == 5*time.Millisecond
			}},
		{name: "no word delay", args: []string{"-demo-word-delay", "-1"}, want: func(c *config) bool { return c.demoWordDelay < 0 }},
		{name: "no word delay as a duration", args: []string{"-demo-word-delay=-1ms"}, want: func(c *config) bool { return c.demoWordDelay == -time.Millisecond }},
		{name: "word delay without a unit", args: []string{"-demo-word-delay", "5"}, wantErr: "duration such as 30ms"},
		{name: "flag beats environment", args: []string{"-addr", ":7000"}, env: map[string]string{"GATEWAY_ADDR": ":9000"},
			want: func(c *config) bool { return c.addr == ":7000" }},
		{name: "bedrock with model", args: []string{"-provider", "bedrock", "-model", "m", "-region", "eu-west-3"},
			want: func(c *config) bool { return c.provider == "bedrock" && c.model == "m" && c.region == "eu-west-3" }},
		{name: "bedrock without model", args: []string{"-provider", "bedrock"}, wantErr: "needs -model"},
		{name: "bedrock settings", args: []string{"-provider", "bedrock", "-model", "m", "-bedrock-endpoint", "http://127.0.0.1:9",
			"-max-tokens", "512", "-temperature", "0.2", "-bedrock-attempts", "2"},
			want: func(c *config) bool {
				return c.bedrockEndpoint == "http://127.0.0.1:9" && c.maxTokens == 512 && c.temperature == 0.2 && c.bedrockAttempts == 2
			}},
		{name: "temperature above 1", args: []string{"-temperature", "1.5"}, wantErr: "want 0 to 1"},
		{name: "negative max tokens", args: []string{"-max-tokens", "-1"}, wantErr: "max-tokens: must not be negative"},
		{name: "unknown provider", args: []string{"-provider", "openai"}, wantErr: "want demo or bedrock"},
		{name: "bad environment value", env: map[string]string{"GATEWAY_SEND_QUEUE": "many"}, wantErr: "GATEWAY_SEND_QUEUE"},
		{name: "bad log format", args: []string{"-log-format", "xml"}, wantErr: "log-format"},
		{name: "bad log level", args: []string{"-log-level", "loud"}, wantErr: "log-level"},
		{name: "cluster from the environment", env: map[string]string{"GATEWAY_NATS": "nats://a:4222,nats://b:4222",
			"GATEWAY_NATS_REPLICAS": "3", "GATEWAY_NODE": "gw1", "GATEWAY_NATS_LEASE": "5s"},
			want: func(c *config) bool {
				return c.nats == "nats://a:4222,nats://b:4222" && c.natsReplicas == 3 && c.node == "gw1" && c.natsLease == 5*time.Second
			}},
		{name: "too many replicas", args: []string{"-nats", "nats://a:4222", "-nats-replicas", "7"}, wantErr: "want 1 to 5"},
		{name: "short lease", args: []string{"-nats", "nats://a:4222", "-nats-lease", "10ms"}, wantErr: "at least 1s"},
		{name: "cluster title too long", args: []string{"-nats", "nats://a:4222", "-max-title-bytes", "8193"}, wantErr: "-max-title-bytes 8193: with -nats at most 8192"},
		{name: "cluster queue too long", args: []string{"-nats", "nats://a:4222", "-max-queued-turns", "65"}, wantErr: "-max-queued-turns 65: with -nats at most 64"},
		{name: "node without nats", args: []string{"-node", "gw1"}, wantErr: "need -nats"},
		{name: "replicas without nats", args: []string{"-nats-replicas", "3"}, wantErr: "need -nats"},
		{name: "lease without nats", env: map[string]string{"GATEWAY_NATS_LEASE": "5s"}, wantErr: "need -nats"},
		{name: "unknown flag", args: []string{"-colour"}, wantErr: "colour"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

// TestNegativeLimitsRefused gives every numeric flag a negative value,
// as docs/CONFIGURATION.md says is refused at start, except -temperature,
// where negative means the model's default. (-demo-word-delay, where it
// means none, is not a plain number.)
func TestNegativeLimitsRefused(t *testing.T) {
	t.Parallel()
	(&config{}).flagSet(io.Discard).VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || f.Name == "temperature" {
			return
		}
		var negative string
		switch g.Get().(type) {
		case int, int64, float64:
			negative = "-1"
		case time.Duration:
			negative = "-1s"
		default:
			return
		}
		t.Run(f.Name, func(t *testing.T) {
			// With -nats, so that the cluster's flags count too.
			args := []string{"-nats", "nats://127.0.0.1:4222", "-" + f.Name, negative}
			if _, err := parseConfig(args, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "-"+f.Name) {
				t.Fatalf("-%s %s: error %v, want one naming the flag", f.Name, negative, err)
			}
		})
	})
}

// TestCrash builds the binary, kills it with SIGKILL in the middle of a
// turn, restarts it on the same file and checks that every event the
// client saw is stored unchanged and that the turn ended "interrupted".
func TestCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := buildGateway(t)
	db := filepath.Join(dir, "gateway.db")
	args := []string{"-addr", "127.0.0.1:0", "-db", db, "-demo-word-delay", "100ms"}

	p := startBinary(t, bin, args...)
	c := conntest.Dial(t, p.URL, "/v1/ws")
	c.Request(&protocol.Send{Text: "tell me a story"})
	var seen []protocol.ServerFrame
	for deltas := 0; deltas < 3; {
		f := c.Read()
		if f.Seq > 0 && f.Type != protocol.ReplyAck && f.Type != protocol.ReplySubscribed {
			seen = append(seen, f)
		}
		if f.Type == protocol.EventDelta {
			deltas++
		}
	}
	_ = p.end(os.Kill)

	p = startBinary(t, bin, args...)
	defer p.end(os.Interrupt)
	var stored []protocol.ServerFrame
	get(t, p.URL+"/v1/conversations/"+seen[0].Conversation+"/events", &stored)
	if len(stored) <= len(seen) {
		t.Fatalf("stored %d events, the client saw %d before the crash", len(stored), len(seen))
	}
	for i, f := range seen {
		s := stored[i]
		if s.Seq != f.Seq || s.Type != f.Type || s.Text != f.Text || s.Turn != f.Turn || string(s.Message) != string(f.Message) {
			t.Errorf("seen event %+v, stored %+v", f, s)
		}
	}
	var deltas strings.Builder
	for _, f := range stored {
		if f.Type == protocol.EventDelta {
			deltas.WriteString(f.Text)
		}
	}
	end := stored[len(stored)-1]
	if end.Type != protocol.EventTurnEnd || end.StopReason != protocol.StopInterrupted {
		t.Fatalf("last stored event %s %q, want turn_end interrupted", end.Type, end.StopReason)
	}
	if text := end.StoredMessage().Text; text == "" || text != deltas.String() {
		t.Errorf("interrupted turn kept %q, its deltas were %q", text, deltas.String())
	}
}
