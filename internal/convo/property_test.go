package convo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// client is one simulated connection of the property test: it resumes by
// seq like a real client and checks that the seqs it sees are consecutive.
type client struct {
	rec        *recorder
	subscribed bool
	lastSeen   uint64
}

// drain reads what has arrived and checks it continues lastSeen.
func (c *client) drain() error {
	for {
		select {
		case f := <-c.rec.ch:
			var ev protocol.Event
			if err := json.Unmarshal(f, &ev); err != nil {
				return err
			}
			if ev.Seq != c.lastSeen+1 {
				return fmt.Errorf("got seq %d after %d", ev.Seq, c.lastSeen)
			}
			c.lastSeen = ev.Seq
		default:
			return nil
		}
	}
}

// TestHubProperty runs random sequences of subscribe, unsubscribe,
// disconnect and send against one conversation while its turns stream,
// and checks the hub's invariants: every client sees consecutive seqs
// across resumes, and in the end every client reaches the last seq.
func TestHubProperty(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			// Each seed has its own service and file: their commits wait
			// for the disk side by side.
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, seed))
			s := openTest(t, &scriptModel{})
			ctx := context.Background()
			ack := send(t, s, "", "start", nil)
			id := ack.Conversation
			clients := make([]*client, 5)
			for i := range clients {
				clients[i] = &client{rec: newRecorder(10000)}
			}
			subscribe := func(c *client) {
				if err := c.drain(); err != nil {
					t.Fatal(err)
				}
				if err := s.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: id, After: c.lastSeen}, c.rec, func(*protocol.Subscribed) {}); err != nil {
					t.Fatal(err)
				}
				c.subscribed = true
			}
			sends := 1
			for step := 0; step < 80; step++ {
				c := clients[r.IntN(len(clients))]
				switch r.IntN(4) {
				case 0:
					if !c.subscribed {
						subscribe(c)
					}
				case 1:
					s.Unsubscribe(id, c.rec)
					c.subscribed = false
				case 2: // disconnect: a new connection resumes later
					s.Unsubscribe(id, c.rec)
					if err := c.drain(); err != nil {
						t.Fatal(err)
					}
					c.rec, c.subscribed = newRecorder(10000), false
				case 3:
					if sends < convo.DefaultMaxQueuedTurns {
						send(t, s, id, "more", nil)
						sends++
					}
				}
				if err := c.drain(); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
			}
			last := waitIdle(t, s, id)
			for i, c := range clients {
				if !c.subscribed {
					subscribe(c)
				}
				if err := c.drain(); err != nil {
					t.Fatalf("client %d: %v", i, err)
				}
				for c.lastSeen < last {
					if ev := c.rec.next(t); ev.Seq != c.lastSeen+1 {
						t.Fatalf("client %d: got seq %d after %d", i, ev.Seq, c.lastSeen)
					}
					c.lastSeen++
				}
			}
		})
	}
}

// waitIdle waits until conversation id has no running or pending turn and
// returns its last seq.
func waitIdle(t *testing.T, s *testService, id string) uint64 {
	t.Helper()
	// Each send kicks a runner before it returns, and a runner runs until
	// no turn is pending.
	if err := s.WaitTurns(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := s.meta(t, id)
	if m.OpenTurn != nil || len(m.Pending) > 0 {
		t.Fatalf("no turn runs, yet turn %v is open and %v pending", m.OpenTurn, m.Pending)
	}
	return m.LastSeq
}

func TestDrainLetsTurnsFinish(t *testing.T) {
	m := &scriptModel{gate: make(chan struct{})}
	s := openTest(t, m)
	rec := newRecorder(100)
	ack := send(t, s, "", "one", rec)
	send(t, s, ack.Conversation, "queued", nil)
	drained := make(chan error, 1)
	go func() { drained <- s.Drain(context.Background()) }()
	close(m.gate)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	evs := rec.until(t, protocol.EventTurnEnd)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopEndTurn {
		t.Fatalf("drained turn ended %q", end.StopReason)
	}
	m2 := s.meta(t, ack.Conversation)
	if len(m2.Pending) != 1 || m2.OpenTurn != nil {
		t.Fatalf("after drain: pending %v open %v; the queued turn must wait for the next start", m2.Pending, m2.OpenTurn)
	}
}

func TestDrainTimeoutThenCloseInterrupts(t *testing.T) {
	m := &scriptModel{gate: make(chan struct{})}
	s := openTest(t, m)
	rec := newRecorder(100)
	send(t, s, "", "one", rec)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Drain(ctx); err == nil {
		t.Fatal("drain of a blocked turn returned nil")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := rec.until(t, protocol.EventTurnEnd)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopInterrupted {
		t.Fatalf("turn ended %q, want interrupted", end.StopReason)
	}
}
