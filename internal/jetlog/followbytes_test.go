package jetlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
)

// TestFollowBufferIsBoundedInBytes follows a conversation of records as
// large as the server lets a client publish, on servers of two
// max_payloads: every record is delivered whole and in order, and each
// pull the follower sends asks for a bounded number of bytes, and for
// more than the largest record. The server hands the test a copy of each
// pull.
// Before, a pull asked for 500 messages of any size: the follower of a
// conversation of long replies could buffer 500 MiB.
func TestFollowBufferIsBoundedInBytes(t *testing.T) {
	for _, maxPayload := range []int32{jetlog.MinPayload, 3 << 20} {
		t.Run(fmt.Sprint(maxPayload), func(t *testing.T) {
			srv := natstest.StartWith(t, func(o *server.Options) { o.MaxPayload = maxPayload })
			// Appends of several MiB, on a loaded machine, under -race.
			l := connect(t, srv.URL(), jetlog.Options{Timeout: 30 * time.Second})
			pulls := watch(t, srv, "$JS.API.CONSUMER.MSG.NEXT."+jetlog.DefaultStream+".>")
			ctx := context.Background()
			// A frame that leaves room for the record's headers only.
			frame := `"` + strings.Repeat("x", int(maxPayload)-1<<10) + `"`
			const records = 6
			var prev uint64
			var err error
			for i := range records {
				if prev, err = l.Append(ctx, "c", rec(uint64(i+1), frame), prev); err != nil {
					t.Fatalf("append %d: %v", i+1, err)
				}
			}
			got := make(chan *jetlog.Record, records)
			f, err := l.Follow(ctx, "c", 1, slog.Default(), func(r *jetlog.Record) { got <- r })
			if err != nil {
				t.Fatal(err)
			}
			defer f.Stop()
			for i := range records {
				r := <-got
				if r.Seq != uint64(i+1) || len(r.Frames) != 1 || string(r.Frames[0]) != frame {
					t.Fatalf("record %d: seq %d, %d frames", i+1, r.Seq, len(r.Frames))
				}
			}
			bound := l.FollowBytes()
			if bound < 2*len(frame) || bound > 4*int(maxPayload) {
				t.Fatalf("a follower buffers up to %d bytes, for messages of %d at most", bound, maxPayload)
			}
			// The first pull came before the first record; the others
			// that have come are checked too.
			for n := 0; ; n++ {
				var msg *nats.Msg
				if n == 0 {
					msg = <-pulls
				} else {
					select {
					case msg = <-pulls:
					default:
						return
					}
				}
				var pull struct {
					Batch    int `json:"batch"`
					MaxBytes int `json:"max_bytes"`
				}
				if err := json.Unmarshal(msg.Data, &pull); err != nil {
					t.Fatal(err)
				}
				if pull.MaxBytes <= len(frame) || pull.MaxBytes > bound {
					t.Fatalf("a pull asked for %d messages of %d bytes in all; want more than a record (%d) and %d at most", pull.Batch, pull.MaxBytes, len(frame), bound)
				}
			}
		})
	}
}
