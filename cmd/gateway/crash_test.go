package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// Shape of one crash run: convsPerRun conversations, each with a sender and
// a second subscriber, and sendsPerConv messages sent at once (the later
// ones queue behind the first turn).
const (
	convsPerRun  = 3
	sendsPerConv = 2
	// crashWordDelay paces the demo model: a reply of ~60 words streams
	// in ~200 ms, so a run's turns stream for ~400 ms.
	crashWordDelay = "3ms"
	// crashWindow bounds the random moment of the kill after the sends.
	crashWindow = 450 * time.Millisecond
)

// crashText is what the clients send: the demo model echoes it, which
// makes its reply long enough to be cut in the middle.
var crashText = strings.Repeat("tell me a long story about a crash ", 5)

// envInt reads the environment variable name as an int, def when unset.
func envInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// TestCrashRuns kills the gateway binary with SIGKILL at a random moment
// while several conversations stream to subscribed clients, GATEWAY_CRASH_RUNS
// times (default 3) on one database file. After each restart it checks that
// every event and ack any client received is in the log unchanged, that
// each log is gapless, that every turn ended exactly once ("interrupted"
// for the one the crash cut), and that a new send is answered.
// GATEWAY_CRASH_SEED repeats a run's kill moments.
func TestCrashRuns(t *testing.T) {
	t.Parallel()
	runs := int(envInt(t, "GATEWAY_CRASH_RUNS", 3))
	seed := envInt(t, "GATEWAY_CRASH_SEED", time.Now().UnixNano())
	t.Logf("%d runs, seed %d (set GATEWAY_CRASH_SEED=%d to repeat the kill moments)", runs, seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))

	dir := t.TempDir()
	bin := buildGateway(t)
	db := filepath.Join(dir, "gateway.db")
	args := []string{"-addr", "127.0.0.1:0", "-db", db, "-demo-word-delay", crashWordDelay}

	var prev *crashRun
	stats := map[string]int{}
	for run := range runs {
		p := startBinary(t, bin, args...)
		if prev != nil {
			prev.verify(t, p.URL, stats)
		}
		delay := time.Duration(rng.Int64N(int64(crashWindow)))
		prev = drive(t, p, run, delay)
		t.Logf("run %d: killed %v after the sends; clients saw %d events", run, delay, prev.seen())
	}
	p := startBinary(t, bin, args...)
	prev.verify(t, p.URL, stats)
	if err := p.end(os.Interrupt); err != nil {
		t.Errorf("the gateway stopped with %v after SIGINT, want a clean exit", err)
	}
	t.Logf("turn ends over %d runs: %v", runs, stats)
}

// gatewayBinary is the gateway binary that the tests which run the
// program share: building it once instead of once a test saves seconds of
// linking each. TestMain removes its directory.
var gatewayBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildGateway builds the gateway binary, once per test process, and
// returns its path.
func buildGateway(t *testing.T) string {
	t.Helper()
	b := &gatewayBinary
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "gateway-test-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "gateway")
		if out, err := exec.Command("go", "build", "-o", b.path, ".").CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// process is a running gateway binary.
type process struct {
	URL  string
	cmd  *exec.Cmd
	log  *logScan
	once sync.Once
	err  error
}

// startBinary starts bin with args and waits until it listens; the test's
// end kills it.
func startBinary(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...)}
	p.cmd.Stderr = os.Stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.log = scanLog(t, out)
	t.Cleanup(func() { _ = p.end(os.Kill) })
	p.URL = p.log.listening(t)
	return p
}

// end signals the process with sig and returns how it exited; later calls
// return the first one's answer.
func (p *process) end(sig os.Signal) error {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(sig)
		<-p.log.done // read the whole log before Wait closes the pipe
		p.err = p.cmd.Wait()
	})
	return p.err
}

// crashRun is what the clients of one run saw before the kill.
type crashRun struct {
	convs []string
	// frames holds, per conversation, the raw frames each of its clients
	// received.
	frames map[string][][]json.RawMessage
}

func (r *crashRun) seen() int {
	n := 0
	for _, clients := range r.frames {
		for _, frames := range clients {
			n += len(frames)
		}
	}
	return n
}

// drive opens convsPerRun conversations on p, each with a sender and a
// subscriber, sends sendsPerConv messages to each, kills p after delay and
// returns what the clients received.
func drive(t *testing.T, p *process, run int, delay time.Duration) *crashRun {
	t.Helper()
	r := &crashRun{frames: map[string][][]json.RawMessage{}}
	type recorded struct {
		conv   string
		frames []json.RawMessage
	}
	done := make(chan recorded, 2*convsPerRun)
	readers := 0
	var senders []*conntest.Client
	for k := range convsPerRun {
		id := fmt.Sprintf("run%d-conv%d", run, k)
		r.convs = append(r.convs, id)
		sender := conntest.Dial(t, p.URL, "/v1/ws")
		if f := sender.Call(&protocol.Create{ID: "create", Conversation: id}); f.Type != protocol.ReplyCreated {
			t.Fatalf("create %s: got %s %s %s", id, f.Type, f.Code, f.ErrorMessage())
		}
		watcher := conntest.Dial(t, p.URL, "/v1/ws?conversation="+id)
		for _, c := range []*conntest.Client{sender, watcher} {
			readers++
			go func() {
				frames := recordFrames(c.WS)
				done <- recorded{conv: id, frames: frames}
			}()
		}
		senders = append(senders, sender)
	}
	for i, c := range senders {
		for j := range sendsPerConv {
			req := &protocol.Send{ID: fmt.Sprintf("send%d", j), Conversation: r.convs[i], Text: crashText}
			if err := c.RequestErr(req); err != nil {
				t.Fatalf("send to %s: %v", r.convs[i], err)
			}
		}
	}
	// The kill moment is the point of the test, not a synchronisation.
	time.Sleep(delay)
	_ = p.end(os.Kill)
	for range readers {
		rec := <-done
		r.frames[rec.conv] = append(r.frames[rec.conv], rec.frames)
	}
	return r
}

// recordFrames reads raw frames from ws until the connection ends.
func recordFrames(ws *websocket.Conn) []json.RawMessage {
	var frames []json.RawMessage
	for {
		ctx, cancel := context.WithTimeout(context.Background(), conntest.Timeout)
		_, data, err := ws.Read(ctx)
		cancel()
		if err != nil {
			return frames
		}
		frames = append(frames, data)
	}
}

// verify checks, on the restarted gateway at url, the conversations of r:
// it sends each a new message, waits for its answer (so that turns queued
// at the crash have run too), then reads the whole log and checks it
// against what the clients saw. It counts the turn ends by stop reason in
// stats.
func (r *crashRun) verify(t *testing.T, url string, stats map[string]int) {
	t.Helper()
	c := conntest.Dial(t, url, "/v1/ws")
	// A client left open would hold up the gateway's graceful stop.
	defer func() { _ = c.WS.Close(websocket.StatusNormalClosure, "") }()
	for _, id := range r.convs {
		ack := c.Call(&protocol.Send{ID: "after-" + id, Conversation: id, Text: "are you back?"})
		if ack.Type != protocol.ReplyAck {
			t.Fatalf("%s: a send after the restart got %s %s %s", id, ack.Type, ack.Code, ack.ErrorMessage())
		}
		turn := ack.StoredMessage().Turn
		frames := c.ReadUntil(func(f *protocol.ServerFrame) bool { return f.Type == protocol.EventTurnEnd && f.Turn == turn })
		if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn {
			t.Errorf("%s: the turn sent after the restart ended %q, want end_turn", id, end.StopReason)
		}
		log := readLog(t, url, id)
		checkLog(t, id, log, stats)
		for i, frames := range r.frames[id] {
			checkSeen(t, id, i, frames, log)
		}
	}
}

// readLog reads conversation's whole event log over HTTP, page by page.
func readLog(t *testing.T, url, conversation string) []json.RawMessage {
	t.Helper()
	var log []json.RawMessage
	for {
		var page []json.RawMessage
		get(t, fmt.Sprintf("%s/v1/conversations/%s/events?after=%d&limit=1000", url, conversation, len(log)), &page)
		if len(page) == 0 {
			return log
		}
		log = append(log, page...)
	}
}

// decodeFrame decodes raw, failing t if it is not a server frame.
func decodeFrame(t *testing.T, raw json.RawMessage) protocol.ServerFrame {
	t.Helper()
	var f protocol.ServerFrame
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return f
}

// turnLog is what a log says about one turn.
type turnLog struct {
	starts, ends int
	deltas       strings.Builder
}

// checkLog checks that log is gapless from 1, that turns do not overlap,
// that every user message's turn started and ended exactly once, with
// end_turn or (at most once) interrupted, and that each turn's deltas add
// up to its stored reply.
func checkLog(t *testing.T, conversation string, log []json.RawMessage, stats map[string]int) {
	t.Helper()
	turns := map[string]*turnLog{}
	asked := 0 // user messages
	turn := func(id string) *turnLog {
		if turns[id] == nil {
			turns[id] = &turnLog{}
		}
		return turns[id]
	}
	running := ""
	interrupted := 0
	for i, raw := range log {
		f := decodeFrame(t, raw)
		if f.Seq != uint64(i)+1 || f.Conversation != conversation {
			t.Fatalf("%s: event %d is seq %d of %q, want seq %d of %q", conversation, i, f.Seq, f.Conversation, i+1, conversation)
		}
		if f.Turn != "" && running != "" && f.Turn != running && f.Type != protocol.EventMessage {
			t.Errorf("%s: seq %d (%s) of turn %s while turn %s runs", conversation, f.Seq, f.Type, f.Turn, running)
		}
		switch f.Type {
		case protocol.EventMessage:
			if m := f.StoredMessage(); m != nil && m.Role == protocol.RoleUser {
				asked++
			}
		case protocol.EventTurnStart:
			turn(f.Turn).starts++
			running = f.Turn
		case protocol.EventDelta:
			turn(f.Turn).deltas.WriteString(f.Text)
		case protocol.EventTurnEnd:
			tl := turn(f.Turn)
			tl.ends++
			running = ""
			stats[f.StopReason]++
			if f.StopReason == protocol.StopInterrupted {
				interrupted++
			} else if f.StopReason != protocol.StopEndTurn {
				t.Errorf("%s: turn %s ended %q, want end_turn or interrupted", conversation, f.Turn, f.StopReason)
			}
			if m := f.StoredMessage(); m == nil || m.Text != tl.deltas.String() {
				t.Errorf("%s: turn %s (%s) stored %s, its deltas were %q", conversation, f.Turn, f.StopReason, f.Message, tl.deltas.String())
			}
		}
	}
	for id, tl := range turns {
		if tl.starts != 1 || tl.ends != 1 {
			t.Errorf("%s: turn %s started %d and ended %d times, want once each", conversation, id, tl.starts, tl.ends)
		}
	}
	if len(turns) != asked {
		t.Errorf("%s: %d user messages but %d turns in the log", conversation, asked, len(turns))
	}
	if interrupted > 1 {
		t.Errorf("%s: %d turns ended interrupted after one crash, want at most 1", conversation, interrupted)
	}
}

// checkSeen checks that the frames client i of conversation received
// before the crash are in log: each event with its seq and the same
// content, seqs consecutive, and each ack's message as stored.
func checkSeen(t *testing.T, conversation string, i int, frames, log []json.RawMessage) {
	t.Helper()
	var last uint64
	for _, raw := range frames {
		f := decodeFrame(t, raw)
		var stored json.RawMessage
		switch f.Type {
		case protocol.ReplyAck:
			m := f.StoredMessage()
			if m == nil || m.Seq == 0 || m.Seq > uint64(len(log)) {
				t.Errorf("%s client %d: ack %s names no stored message", conversation, i, raw)
				continue
			}
			stored = decodeFrame(t, log[m.Seq-1]).Message
			raw = f.Message
		case protocol.EventMessage, protocol.EventTurnStart, protocol.EventDelta, protocol.EventThinking,
			protocol.EventAction, protocol.EventTurnEnd:
			if last != 0 && f.Seq != last+1 {
				t.Errorf("%s client %d: got seq %d after %d", conversation, i, f.Seq, last)
			}
			last = f.Seq
			if f.Seq == 0 || f.Seq > uint64(len(log)) {
				t.Errorf("%s client %d: saw seq %d, the log ends at %d", conversation, i, f.Seq, len(log))
				continue
			}
			stored = log[f.Seq-1]
		default:
			continue
		}
		if !sameJSON(raw, stored) {
			t.Errorf("%s client %d saw\n%s\nthe log has\n%s", conversation, i, raw, stored)
		}
	}
}

// sameJSON reports whether a and b encode the same JSON value.
func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}
