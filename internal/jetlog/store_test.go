package jetlog_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/logtest"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
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
