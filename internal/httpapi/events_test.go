package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// pageHookLog is the test gateway's bbolt Log, which runs between once,
// at the start of the next read of events after a conversation's first
// (after > 0): where GET …/events is between two pages of its answer.
// between's error, if not nil, is the read's.
type pageHookLog struct {
	convo.Log
	between atomic.Pointer[func() error]
}

func (l *pageHookLog) Events(ctx context.Context, id string, after, upTo uint64, limit int) ([][]byte, error) {
	if f := l.between.Load(); after > 0 && f != nil && l.between.CompareAndSwap(f, nil) {
		if err := (*f)(); err != nil {
			return nil, err
		}
	}
	return l.Log.Events(ctx, id, after, upTo, limit)
}

// streamed is what a client got for a streamed answer.
type streamed struct {
	status int
	body   []byte
	err    error // reading the body
}

// TestEventsEndAtDelete deletes a conversation, or fails storage, while
// GET …/events streams it: between its first page and the next. A delete
// ends the array cleanly after the events sent (the conversation as it
// was before the delete; the next request gets 404); a storage failure
// cuts the answer short, so that no client takes it as complete.
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
	// A fresh connection for each request: the transport would send a GET
	// cut off on a reused one again, and the test would see that answer.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	for _, tt := range []struct {
		name string
		// between runs on the test's goroutine between the pages, and
		// returns the error the next page's read fails with.
		between func(t *testing.T, id string) error
		// complete is whether the answer is a whole JSON array, of the
		// first page's events.
		complete bool
		// afterwards is the status of GET …/events once it is over.
		afterwards int
	}{
		{"deleted", func(t *testing.T, id string) error {
			callJSON(t, "DELETE", base+"/"+id, "", 200, &protocol.Done{})
			return nil
		}, true, 404},
		{"storage failed", func(*testing.T, string) error {
			return fmt.Errorf("%w: the disk is gone", convo.ErrUnavailable)
		}, false, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "ev-" + strings.ReplaceAll(tt.name, " ", "-")
			callJSON(t, "POST", base, `{"conversation":"`+id+`"}`, 201, &protocol.Conversation{})
			for i := range events {
				callJSON(t, "POST", base+"/"+id+"/actions", fmt.Sprintf(`{"name":"a%d","input":{"pad":%q}}`, i, pad), 201, &protocol.Event{})
			}

			// The hook waits for the test's goroutine, which does what
			// the case does between the pages.
			reached, resume := make(chan struct{}), make(chan error)
			between := func() error {
				close(reached)
				return <-resume
			}
			hooked.between.Store(&between)
			req, err := http.NewRequestWithContext(conntest.Deadline(t), "GET", base+"/"+id+"/events", nil)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan streamed, 1)
			go func() {
				resp, err := client.Do(req)
				if err != nil {
					got <- streamed{err: err}
					return
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				got <- streamed{resp.StatusCode, body, err}
			}()
			select {
			case <-reached:
				resume <- tt.between(t, id)
			case a := <-got:
				t.Fatalf("GET …/events answered %d %s (%v) without reading a second page", a.status, a.body, a.err)
			}
			a := <-got
			if a.status != 200 {
				t.Fatalf("GET …/events: status %d (%v), want 200", a.status, a.err)
			}
			var evs []protocol.Event
			decodeErr := json.Unmarshal(a.body, &evs)
			if !tt.complete {
				if a.err == nil && decodeErr == nil {
					t.Fatalf("GET …/events gave a complete answer of %d events; want it cut short", len(evs))
				}
			} else {
				if a.err != nil || decodeErr != nil {
					t.Fatalf("GET …/events cut short after %d bytes (reading: %v; decoding: %v)", len(a.body), a.err, decodeErr)
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
