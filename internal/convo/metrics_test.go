package convo_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

func TestMetricsAreRecorded(t *testing.T) {
	reg := metrics.New()
	s, err := boltlog.OpenService(filepath.Join(t.TempDir(), "db"), boltlog.Options{}, &scriptModel{}, convo.Config{Metrics: reg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	rec := newRecorder(100)
	ack := send(t, s, "", "hi", rec)
	evs := rec.until(t, protocol.EventTurnEnd)
	s.Unsubscribe(ack.Conversation, rec)
	if err := s.WaitTurns(context.Background()); err != nil {
		t.Fatal(err)
	}

	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"gateway_events_appended_total":     float64(len(evs)),
		"gateway_ack_seconds_count":         1,
		"gateway_turns_ended_total":         1,
		"gateway_first_token_seconds_count": 1,
		"gateway_model_tokens_total":        3 + 4,
		"gateway_subscriptions":             0,
		"gateway_turns_active":              0,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if got["gateway_commit_seconds_count"] < 1 || got["gateway_commit_ops_sum"] < got["gateway_commit_seconds_count"] {
		t.Errorf("commit metrics: %v commits carrying %v ops", got["gateway_commit_seconds_count"], got["gateway_commit_ops_sum"])
	}
	// Every op a commit carried waited in its queue first.
	if got["gateway_commit_wait_seconds_count"] != got["gateway_commit_ops_sum"] {
		t.Errorf("%v queue waits for %v ops committed", got["gateway_commit_wait_seconds_count"], got["gateway_commit_ops_sum"])
	}
}

// TestHistoryTooLongCounted ends a plain turn and an agent's turn whose
// history is too long at the start: each counts in
// gateway_turns_ended_total as the one turn ended, stop reason error.
func TestHistoryTooLongCounted(t *testing.T) {
	for name, agent := range map[string]string{"plain": "", "agent": "bench"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := metrics.New()
			// Less than any message takes.
			cfg := convo.Config{MaxHistoryBytes: 100, Agents: benchAgents{}, Metrics: reg, Logger: testLogger(t)}
			s, err := convo.New(openBolt(t), &scriptModel{}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			conv, err := s.Create(context.Background(), "u1", &protocol.Create{Agent: agent})
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(100)
			send(t, s, conv.ID, "hi", rec)
			endsTooLong(t, rec)
			wantTurnsEnded(t, s, reg, 1)
		})
	}
}

// wantTurnsEnded checks, once no turn of s runs, that reg counts want
// ended turns.
func wantTurnsEnded(t *testing.T, s *convo.Service, reg *metrics.Metrics, want float64) {
	t.Helper()
	if err := s.WaitTurns(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if n := got["gateway_turns_ended_total"]; n != want {
		t.Fatalf("gateway_turns_ended_total = %v, want %v", n, want)
	}
}
