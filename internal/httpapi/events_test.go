package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// pageHookLog is the test gateway's bbolt Log, which runs a hook once,
// where GET …/events is between two pages of its answer: at the start of
// the next read of events after a conversation's first (after > 0), or,
// with metas > 0, at the start of the metas-th read of metadata once the
// hook is set. The hook's error, if not nil, is the read's.
type pageHookLog struct {
	convo.Log
	mu    sync.Mutex
	hook  func() error
	metas int
}

// set arms hook; metas is as in pageHookLog.
func (l *pageHookLog) set(hook func() error, metas int) {
	l.mu.Lock()
	l.hook, l.metas = hook, metas
	l.mu.Unlock()
}

// take returns the hook if this read is where it runs, and disarms it.
func (l *pageHookLog) take(meta bool, after uint64) func() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hook == nil || meta != (l.metas > 0) || !meta && after == 0 {
		return nil
	}
	if meta {
		if l.metas--; l.metas > 0 {
			return nil
		}
	}
	f := l.hook
	l.hook = nil
	return f
}

func (l *pageHookLog) Events(ctx context.Context, id string, after, upTo uint64, limit int) ([][]byte, error) {
	if f := l.take(false, after); f != nil {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return l.Log.Events(ctx, id, after, upTo, limit)
}

func (l *pageHookLog) Meta(ctx context.Context, id string) (*convo.Meta, error) {
	if f := l.take(true, 0); f != nil {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return l.Log.Meta(ctx, id)
}

// TestEventsEndAtDelete deletes a conversation, deletes and creates it
// again, or fails storage, while GET …/events streams it: between its
// first page and the next. A delete ends the array cleanly after the
// events sent (the conversation as it was before the delete; the next
// request gets 404), and so does a delete and re-create, whether it lands
// between two reads of the pages or in the middle of one (between the
// read of the conversation's metadata and its events): the answer never
// goes on with the new conversation's events. A storage failure cuts the
// answer short, so that no client takes it as complete.
func TestEventsEndAtDelete(t *testing.T) {
	t.Parallel()
	var hooked *pageHookLog
	s := conntest.Start(t, conntest.Config{WrapLog: func(l convo.Log) convo.Log {
		hooked = &pageHookLog{Log: l}
		return hooked
	}})
	base := s.URL + "/v1/conversations"
	const events = 20 // more than two pages
	// Events of 1 KiB: a page fills the server's buffer, so that the
	// status and the first events reach the client before the second
	// page is read.
	pad := strings.Repeat("x", 1<<10)
	// grow adds n action events named prefix0, prefix1, … to id.
	grow := func(t *testing.T, id, prefix string, n int) {
		for i := range n {
			callJSON(t, "POST", base+"/"+id+"/actions", fmt.Sprintf(`{"name":"%s%d","input":{"pad":%q}}`, prefix, i, pad), 201, &protocol.Event{})
		}
	}
	recreate := func(t *testing.T, id string) error {
		callJSON(t, "DELETE", base+"/"+id, "", 200, &protocol.Done{})
		callJSON(t, "POST", base, `{"conversation":"`+id+`"}`, 201, &protocol.Conversation{})
		grow(t, id, "new", 2*events)
		return nil
	}

	for _, tt := range []struct {
		name string
		// between runs on the test's goroutine between the pages, and
		// returns the error the next page's read fails with.
		between func(t *testing.T, id string) error
		// metas is where between runs: 0 at the start of the second
		// page's read of events; 3 at the start of the second page's
		// first read of metadata (the first page reads it before and
		// after its events).
		metas int
		// complete is whether the answer is a whole JSON array, of the
		// first page's events.
		complete bool
		// afterwards is the status of GET …/events once it is over.
		afterwards int
	}{
		{"deleted", func(t *testing.T, id string) error {
			callJSON(t, "DELETE", base+"/"+id, "", 200, &protocol.Done{})
			return nil
		}, 0, true, 404},
		{"recreated between pages", recreate, 3, true, 200},
		{"recreated during a page", recreate, 0, true, 200},
		{"storage failed", func(*testing.T, string) error {
			return fmt.Errorf("%w: the disk is gone", convo.ErrUnavailable)
		}, 0, false, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "ev-" + strings.ReplaceAll(tt.name, " ", "-")
			callJSON(t, "POST", base, `{"conversation":"`+id+`"}`, 201, &protocol.Conversation{})
			grow(t, id, "a", events)

			// The hook waits for the test's goroutine, which does what
			// the case does between the pages.
			reached, resume := make(chan struct{}), make(chan error)
			between := func() error {
				close(reached)
				return <-resume
			}
			hooked.set(between, tt.metas)
			got := conntest.GetLater(t, base+"/"+id+"/events")
			select {
			case <-reached:
				resume <- tt.between(t, id)
			case a := <-got:
				t.Fatalf("GET …/events answered %d %s (%v) without reading a second page", a.Status, a.Body, a.Err)
			}
			a := <-got
			if a.Status != 200 {
				t.Fatalf("GET …/events: status %d (%v), want 200", a.Status, a.Err)
			}
			var evs []protocol.Event
			decodeErr := json.Unmarshal(a.Body, &evs)
			if !tt.complete {
				if a.Err == nil && decodeErr == nil {
					t.Fatalf("GET …/events gave a complete answer of %d events; want it cut short", len(evs))
				}
			} else {
				if a.Err != nil || decodeErr != nil {
					t.Fatalf("GET …/events cut short after %d bytes (reading: %v; decoding: %v)", len(a.Body), a.Err, decodeErr)
				}
				if len(evs) == 0 || len(evs) >= events {
					t.Fatalf("GET …/events: %d events, want the first page's", len(evs))
				}
				for i, e := range evs {
					if e.Seq != uint64(i+1) || e.Name != fmt.Sprintf("a%d", i) {
						t.Fatalf("event %d is seq %d %q", i, e.Seq, e.Name)
					}
				}
			}
			if status, b := call(t, "GET", base+"/"+id+"/events", ""); status != tt.afterwards {
				t.Fatalf("GET …/events again: %d %s, want %d", status, b, tt.afterwards)
			}
		})
	}
}

// TestEventsCreatedAt reads the events of a conversation that was
// deleted and created again under its id, longer than the old one, as a
// client that had read the old one up to seq 2 resumes: with the old
// one's created_at it gets not_found, as subscribe does, instead of the
// new log after seq 2 that its after does not count; with the new one's,
// in any spelling of the instant, it reads the new log.
func TestEventsCreatedAt(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{})
	base := s.URL + "/v1/conversations/reused"
	create := func(n int) time.Time {
		var c protocol.Conversation
		callJSON(t, "POST", s.URL+"/v1/conversations", `{"conversation":"reused"}`, 201, &c)
		for i := range n {
			callJSON(t, "POST", base+"/actions", fmt.Sprintf(`{"name":"a%d"}`, i), 201, &protocol.Event{})
		}
		return c.CreatedAt
	}
	old := create(2)
	callJSON(t, "DELETE", base, "", 200, &protocol.Done{})
	current := create(4)
	if old.Equal(current) {
		t.Fatalf("both conversations created at %v", old)
	}

	for _, tt := range []struct {
		name      string
		after     string
		createdAt string
		status    int
		// code is the error's, seqs the events' (status 200).
		code string
		seqs []uint64
	}{
		{"none: resumes the new log blindly", "2", "", 200, "", []uint64{3, 4}},
		{"the old one", "2", old.Format(time.RFC3339Nano), 404, protocol.CodeNotFound, nil},
		{"the old one, after beyond the new end", "9", old.Format(time.RFC3339Nano), 404, protocol.CodeNotFound, nil},
		{"the new one", "0", current.Format(time.RFC3339Nano), 200, "", []uint64{1, 2, 3, 4}},
		{"the new one with an offset", "2", current.In(time.FixedZone("", 2*60*60)).Format(time.RFC3339Nano), 200, "", []uint64{3, 4}},
		{"not a time", "2", "yesterday", 400, protocol.CodeBadRequest, nil},
		{"not RFC 3339", "2", current.Format(time.RFC1123), 400, protocol.CodeBadRequest, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"after": {tt.after}}
			if tt.createdAt != "" {
				q.Set("created_at", tt.createdAt)
			}
			status, body := call(t, "GET", base+"/events?"+q.Encode(), "")
			if status != tt.status {
				t.Fatalf("status %d %s, want %d", status, body, tt.status)
			}
			if tt.code != "" {
				var e struct{ Error protocol.Error }
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tt.code {
					t.Fatalf("error %s (%v), want code %s", body, err, tt.code)
				}
				return
			}
			var evs []protocol.Event
			if err := json.Unmarshal(body, &evs); err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, e := range evs {
				seqs = append(seqs, e.Seq)
			}
			if !slices.Equal(seqs, tt.seqs) {
				t.Fatalf("seqs %v, want %v", seqs, tt.seqs)
			}
		})
	}
}
