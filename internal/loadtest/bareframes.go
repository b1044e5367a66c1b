package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/cork"
	"github.com/chatgateway/gateway/protocol"
)

// bareFrames is how fast this machine moves small WebSocket frames over
// loopback with nothing else to do: a coder/websocket server writes
// frames one by one (a system call each, as the gateway's writer does
// when one frame is queued) to many clients that read them as the streams
// clients do.
type bareFrames struct {
	conns, frames int
	perSecond     float64
	// cpu is this process's CPU time per frame, server and client.
	cpu     time.Duration
	elapsed time.Duration
}

// bareFrameRun sends perConn copies of a delta frame from a bare server
// to each of conns clients at once.
func (r *runner) bareFrameRun(ctx context.Context, conns, perConn int) (bareFrames, error) {
	res := bareFrames{conns: conns, frames: conns * perConn}
	frame, err := json.Marshal(&protocol.Event{Type: protocol.EventDelta, Conversation: "c_" + strings.Repeat("x", 16),
		Seq: 12, TS: time.Now().UTC(), Turn: "t_" + strings.Repeat("x", 16), Text: stamp(time.Now(), 0) + strings.Repeat(".", r.cfg.ChunkBytes-MinChunkBytes)})
	if err != nil {
		return res, err
	}
	srv, url, err := serveWebSockets(func(ws *websocket.Conn, _ *cork.Conn) {
		defer ws.CloseNow()
		// The client's first frame starts the burst.
		if _, _, err := ws.Read(context.Background()); err != nil {
			return
		}
		for range perConn {
			if ws.Write(context.Background(), websocket.MessageText, frame) != nil {
				return
			}
		}
		_, _, _ = ws.Read(context.Background())
	})
	if err != nil {
		return res, err
	}
	defer srv.Close()
	clients, err := dialAll(ctx, url, conns)
	if err != nil {
		return res, err
	}
	defer closeAll(clients)
	errs := make([]error, len(clients))
	cpu, start := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			if err := c.ws.Write(context.Background(), websocket.MessageText, []byte("go")); err != nil {
				errs[i] = c.failed(err)
				return
			}
			for range perConn {
				if _, _, err := c.read(); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if err := errors.Join(slices.DeleteFunc(errs, func(e error) bool { return e == nil })...); err != nil {
		return res, err
	}
	res.perSecond = float64(res.frames) / res.elapsed.Seconds()
	res.cpu = (cpuTime() - cpu) / time.Duration(res.frames)
	return res, nil
}
