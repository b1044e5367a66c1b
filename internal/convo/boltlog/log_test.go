package boltlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/logtest"
	"github.com/chatgateway/gateway/protocol"
)

func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) func(t *testing.T) convo.Log {
		path := filepath.Join(t.TempDir(), "gateway.db")
		return func(t *testing.T) convo.Log {
			l, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
	})
}

// TestGroupCommit checks that concurrent appends share transactions.
func TestGroupCommit(t *testing.T) {
	l := openTest(t)
	create(t, l, "c")
	const writers = 200
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			appendEvents(t, l, "c", delta("x"))
		}()
	}
	c0, o0 := l.Stats()
	close(start)
	wg.Wait()
	c1, o1 := l.Stats()
	commits, ops := c1-c0, o1-o0
	t.Logf("%d ops in %d commits", ops, commits)
	if ops != writers || commits >= ops {
		t.Fatalf("%d ops took %d commits: no grouping", ops, commits)
	}
}

// TestPostsWhileCommitting holds a commit that took some of the queued
// reply chunks and left the others (see take), and posts more while it
// is in flight: the queue goes on in an array of its own, never in that
// of the commit in progress, whose ops the leftovers or the posts would
// overwrite. Every done is called once, with its own append's event,
// and the chunks are stored in the order they were posted.
func TestPostsWhileCommitting(t *testing.T) {
	const maxDeferrable, chunks = 4, 12
	ctx := context.Background()
	l := openDeferring(t, maxDeferrable)
	create(t, l, "c")
	create(t, l, "h")
	var mu sync.Mutex
	done := map[string]int{}
	var errs []error
	var posted sync.WaitGroup
	post := func(i int) {
		text := fmt.Sprint(i)
		posted.Add(1)
		l.Post(ctx, &convo.Append{Conversation: "c", Deferrable: true,
			Build: func(*convo.Meta) ([]convo.Draft, error) { return []convo.Draft{{Event: delta(text)}}, nil }},
			func(res *convo.Appended, err error) {
				defer posted.Done()
				mu.Lock()
				defer mu.Unlock()
				done[text]++
				switch {
				case err != nil:
					errs = append(errs, err)
				case len(res.Events) != 1 || res.Events[0].Text != text:
					errs = append(errs, fmt.Errorf("the done of %s got %+v", text, res.Events))
				}
			})
	}
	queued := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.queue)
	}

	// Half the chunks queue behind a held commit, then an append that
	// holds the next commit from inside its transaction.
	_, release := holdCommit(t, l, "h")
	for i := range chunks / 2 {
		post(i)
	}
	entered, proceed, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	l.Post(ctx, &convo.Append{Conversation: "h", Build: func(*convo.Meta) ([]convo.Draft, error) {
		close(entered)
		<-proceed
		return nil, nil
	}}, func(_ *convo.Appended, err error) { held <- err })
	release()
	<-entered
	// That commit took the append and maxDeferrable/othersShare chunks.
	left := chunks/2 - maxDeferrable/othersShare
	if n := queued(); n != left {
		t.Fatalf("%d ops left queued by the commit in flight, want %d", n, left)
	}
	for i := chunks / 2; i < chunks; i++ {
		post(i)
	}
	if n := queued(); n != left+chunks/2 {
		t.Fatalf("%d ops queued, want %d", n, left+chunks/2)
	}
	close(proceed)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	posted.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i := range chunks {
		if n := done[fmt.Sprint(i)]; n != 1 {
			t.Errorf("the done of chunk %d was called %d times", i, n)
		}
	}
	frames, err := l.Events(ctx, "c", 0, 0, 2*chunks)
	if err != nil || len(frames) != chunks {
		t.Fatalf("%d events (%v), want %d", len(frames), err, chunks)
	}
	for i, f := range frames {
		var ev protocol.Event
		if err := json.Unmarshal(f, &ev); err != nil || ev.Text != fmt.Sprint(i) {
			t.Fatalf("event %d is %s (%v)", i+1, f, err)
		}
	}
}

// TestFailedCommitLeavesNothing fails a commit that carries a new
// conversation and appends to an existing one, and checks that neither
// the file nor the metadata the Log keeps in memory changed, and that
// nothing was reported.
func TestFailedCommitLeavesNothing(t *testing.T) {
	ctx := context.Background()
	l := openTest(t)
	var reported []convo.Committed
	l.Start(func(evs []convo.Committed) { reported = append(reported, evs...) })
	create(t, l, "c")
	appendEvents(t, l, "c", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	reported = nil
	l.failCommit = func() error { return errors.New("disk full") }
	_, err := l.Append(ctx, &convo.Append{Conversation: "c", Build: func(*convo.Meta) ([]convo.Draft, error) {
		return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1"}}}, nil
	}})
	if !errors.Is(err, convo.ErrUnavailable) {
		t.Fatalf("append in a failing commit: %v, want ErrUnavailable", err)
	}
	if _, err := l.Append(ctx, &convo.Append{Conversation: "new", New: &convo.Meta{Owner: "u1"},
		Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }}); !errors.Is(err, convo.ErrUnavailable) {
		t.Fatalf("create in a failing commit: %v", err)
	}
	l.failCommit = nil
	if len(reported) != 0 {
		t.Fatalf("a failed commit reported %+v", reported)
	}
	m, err := l.Meta(ctx, "c")
	if err != nil || m.OpenTurn == nil || m.LastSeq != 1 {
		t.Fatalf("metadata after a failed commit: %+v, %v", m, err)
	}
	if _, err := l.Meta(ctx, "new"); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("a failed create left a conversation: %v", err)
	}
	appendEvents(t, l, "c", delta("works again"))
	checkLog(t, l, "c", 2)
}

// TestLockedDatabaseFailsFast opens a file another Log holds: the second
// Open must give up after its own timeout with a clear error, instead of
// waiting for the lock for ever. It runs in a synctest bubble, whose fake
// clock bbolt's lock retries (a sleep of 50 ms each) advance, so an hour's
// timeout passes at once and the wait it took is exact: the default
// timeout, or none, shows as a wrong wait, not as a slow test.
func TestLockedDatabaseFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	first := openAt(t, path)
	synctest.Test(t, func(t *testing.T) {
		const timeout = time.Hour
		type result struct {
			err    error
			waited time.Duration
		}
		done := make(chan result, 1)
		go func() {
			start := time.Now()
			l, err := Open(path, Options{Timeout: timeout})
			if err == nil {
				l.Close()
			}
			done <- result{err, time.Since(start)}
		}()
		select {
		case r := <-done:
			if !errors.Is(r.err, bolterrors.ErrTimeout) {
				t.Fatalf("second Open of a locked file: %v, want bbolt's %v", r.err, bolterrors.ErrTimeout)
			}
			// bbolt gives up once fewer than 50 ms of the timeout are left.
			if r.waited > timeout || r.waited < timeout-50*time.Millisecond {
				t.Errorf("second Open waited %s for the lock, want its %s timeout", r.waited, timeout)
			}
			for _, want := range []string{"in use by another process", path} {
				if !strings.Contains(r.err.Error(), want) {
					t.Errorf("error %q does not say %q", r.err, want)
				}
			}
		case <-time.After(2 * timeout):
			first.Close() // frees the lock, so that the waiting Open ends
			<-done
			t.Fatalf("second Open still waiting after %s with a %s timeout", 2*timeout, timeout)
		}
	})
}
