package convo

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// EachStoredFrame calls f with ev's frame encoded each way the Logs
// encode one: with MarshalJSON, as bbolt does, and with json.Marshal, as
// jetlog does; with none when MarshalJSON refuses ev (a fuzzed field it
// rejects).
func EachStoredFrame(t *testing.T, ev *protocol.Event, f func(frame []byte)) {
	t.Helper()
	viaMarshalJSON, err := ev.MarshalJSON()
	if err != nil {
		return
	}
	viaMarshal, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	f(viaMarshalJSON)
	f(viaMarshal)
}

// WaitTurns waits until no turn runs or ctx ends.
func (s *Service) WaitTurns(ctx context.Context) error { return s.waitTurns(ctx) }

// KickDeleted takes conversation id's hub, drops it as a delete of the
// conversation does, then kicks it, and reports whether a runner started
// on it.
func (s *Service) KickDeleted(id string) bool {
	h := s.acquire(id)
	defer s.release(h)
	s.hubDeleted(h)
	return s.startRunner(h, nil)
}

// KickConversation takes conversation id's hub and kicks it, as a send
// does, and reports whether a runner started.
func (s *Service) KickConversation(id string) bool {
	h := s.acquire(id)
	defer s.release(h)
	return s.startRunner(h, nil)
}

// DropWhenNotRunning takes the Service's lock, closes held, waits (with
// the lock held, so that nothing else takes it meanwhile) until
// conversation id's hub has no runner in progress, and then drops the
// hub if nothing uses it, as releaseIfIdle does; it reports whether it
// dropped it. It lands a release between a runner's end and whatever
// that runner does next.
func (s *Service) DropWhenNotRunning(id string, held chan<- struct{}) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(held)
	h := s.hubs[id]
	for {
		h.mu.Lock()
		if h.running == nil {
			idle := h.idle()
			if idle {
				s.dropHub(h)
			}
			h.mu.Unlock()
			return idle
		}
		h.mu.Unlock()
		runtime.Gosched()
	}
}

// ToolUsesLen is what uses take from a turn's room (see toolUsesLen).
var ToolUsesLen = toolUsesLen

// ToolSteps is toolSteps: the tool steps of conversation id's turns but
// open's, read from the log within room bytes.
func (s *Service) ToolSteps(ctx context.Context, id, open string, room int) (map[string][]HistoryMessage, error) {
	return s.toolSteps(ctx, id, open, room)
}

// Bounds of the histories hubs keep between model calls.
const (
	HistoryHubBytes   = historyHubBytes
	HistoryCacheBytes = historyCacheBytes
)

// KeptHistoryBytes is what the histories hubs keep count against
// HistoryCacheBytes.
func (s *Service) KeptHistoryBytes() int64 { return s.historyBytes.Load() }
