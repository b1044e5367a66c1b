package jetlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/logtest"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestConformance runs the storage seam's suite against the JetStream
// store, each test on a server of its own.
func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) func(t *testing.T) convo.Log {
		srv := natstest.Start(t)
		return func(t *testing.T) convo.Log {
			s, err := jetlog.OpenStore(context.Background(), srv.URL(), jetlog.StoreOptions{Node: "n1", Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// testLogger writes to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestUnreachableWarnings stops NATS under one store, which must warn
// that NATS is unreachable, and closes another, which must not: closing
// its own connection is no outage.
func TestUnreachableWarnings(t *testing.T) {
	t.Parallel()
	const unreachable = "NATS is unreachable"
	for _, tt := range []struct {
		name string
		end  func(*natstest.Server, *jetlog.Store)
		warn bool
	}{
		{"server stops", func(srv *natstest.Server, _ *jetlog.Store) { srv.Stop() }, true},
		{"store closes", func(_ *natstest.Server, st *jetlog.Store) { _ = st.Close() }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.Start(t)
			warnings := &warnLog{t: t, seen: make(chan string, 16)}
			closed := make(chan struct{})
			st, err := jetlog.OpenStore(context.Background(), srv.URL(), jetlog.StoreOptions{Node: "n1", Logger: slog.New(warnings)},
				nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
			if err != nil {
				t.Fatal(err)
			}
			tt.end(srv, st)
			if tt.warn {
				for msg := range warnings.seen {
					if strings.Contains(msg, unreachable) {
						break
					}
				}
			}
			_ = st.Close()
			// The client calls the disconnect handler before the closed
			// one, on one goroutine: every warning is in by now.
			<-closed
			for !tt.warn && len(warnings.seen) > 0 {
				t.Errorf("warned %q on a close of the store's own", <-warnings.seen)
			}
		})
	}
}

// warnLog is a slog.Handler that writes every record to the test's log
// and sends the message of each warning or error on seen.
type warnLog struct {
	t    *testing.T
	seen chan string
}

func (w *warnLog) Enabled(context.Context, slog.Level) bool { return true }

func (w *warnLog) Handle(_ context.Context, r slog.Record) error {
	w.t.Log(r.Level, r.Message)
	if r.Level < slog.LevelWarn {
		return nil
	}
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	select {
	case w.seen <- msg:
	default:
	}
	return nil
}

func (w *warnLog) WithAttrs([]slog.Attr) slog.Handler { return w }

func (w *warnLog) WithGroup(string) slog.Handler { return w }

// TestFollowStoppedWhileClosing stops follows while the store closes, as
// connections that end during shutdown drop their hubs: a stop must not
// race with Close's wait for the stops in progress (the race detector
// fails the test when it does), and Close must still return.
func TestFollowStoppedWhileClosing(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	for range 10 {
		s, err := jetlog.OpenStore(context.Background(), srv.URL(), jetlog.StoreOptions{Node: "n1", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		s.Start(func([]convo.Committed) {})
		var stops sync.WaitGroup
		for i := range 50 {
			stop := s.Follow(fmt.Sprint("c", i), 0, time.Time{})
			stops.Go(stop)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		stops.Wait()
	}
}

// openStore opens a Store named node, quiet, on the NATS server at url,
// with a one-second request timeout; it closes when the test ends.
func openStore(t *testing.T, url, node string) *jetlog.Store {
	t.Helper()
	return openStoreWith(t, url, node, jetlog.Options{Timeout: time.Second})
}

// openStoreWith opens a Store of node on the servers at urls, with opts.
func openStoreWith(t *testing.T, url, node string, opts jetlog.Options) *jetlog.Store {
	t.Helper()
	s, err := jetlog.OpenStore(context.Background(), url, jetlog.StoreOptions{Node: node, Logger: slog.New(slog.DiscardHandler),
		Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// reports collects the events a Store reports to its committed function.
type reports struct {
	mu    sync.Mutex
	got   []convo.Committed
	added chan struct{} // capacity 1: events were reported
}

// collect starts s with a committed function that collects into the
// reports it returns.
func collect(s *jetlog.Store) *reports {
	r := &reports{added: make(chan struct{}, 1)}
	s.Start(func(cs []convo.Committed) {
		r.mu.Lock()
		r.got = append(r.got, cs...)
		r.mu.Unlock()
		select {
		case r.added <- struct{}{}:
		default:
		}
	})
	return r
}

// waitKey waits until an event whose eventKey is key is reported, and
// returns the keys of every event reported, in order.
func (r *reports) waitKey(t *testing.T, key string) []string {
	t.Helper()
	for {
		r.mu.Lock()
		got := slices.Clone(r.got)
		r.mu.Unlock()
		keys := make([]string, len(got))
		for i, c := range got {
			keys[i] = eventKey(t, c.Frame)
		}
		if slices.Contains(keys, key) {
			return keys
		}
		<-r.added
	}
}

// eventKey is "seq:text" of an encoded event.
func eventKey(t *testing.T, frame []byte) string {
	var ev protocol.Event
	if err := json.Unmarshal(frame, &ev); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%s", ev.Seq, ev.Text)
}
