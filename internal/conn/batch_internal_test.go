package conn

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/convo"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// countWrites makes c's socket count the writes that reach it.
func countWrites(c *conn) *countingConn {
	var cc *countingConn
	c.sock.Wrap(func(nc net.Conn) net.Conn {
		cc = &countingConn{Conn: nc}
		return cc
	})
	return cc
}

// numerals are the data of the frames sendBatch queues, made once, so
// that a benchmark counts only the allocations of queueing and writing.
var numerals = func() [][]byte {
	data := make([][]byte, 256)
	for i := range data {
		data[i] = []byte(strconv.Itoa(i))
	}
	return data
}()

// sendBatch queues n numbered frames at once (n at most 256), as a
// commit that stores many events does, so that the writer finds them all
// queued. The frames carry the times of live events, which the writer
// observes.
func sendBatch(t testing.TB, c *conn, n int) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range n {
		if !c.pushLocked(convo.Frame{Data: numerals[i], Born: now, Durable: now}) {
			t.Fatal("a frame was refused")
		}
	}
}

// readNumbered reads n frames numbered from 0, in order.
func readNumbered(t testing.TB, ws *websocket.Conn, n int) error {
	for i := range n {
		_, b, err := ws.Read(t.Context())
		if err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
		if string(b) != strconv.Itoa(i) {
			return fmt.Errorf("frame %d: got %q", i, b)
		}
	}
	return nil
}

// TestQueuedFramesShareAWrite checks that frames queued together reach
// the socket in one write, in order, and that control frames written
// meanwhile (pongs to the client's pings) still get through.
func TestQueuedFramesShareAWrite(t *testing.T) {
	t.Parallel()
	ws, c := serveOne(t, Options{})
	cc := countWrites(c)
	const n = 200
	sendBatch(t, c, n)
	if err := readNumbered(t, ws, n); err != nil {
		t.Fatal(err)
	}
	if got := cc.writes.Load(); got != 1 {
		t.Errorf("%d frames queued together took %d writes, want 1", n, got)
	}

	// Batches and pongs, concurrently: the client pings while the server
	// writes and the client reads. Each batch waits for the previous one
	// to be read, to stay within the send queue.
	const rounds = 20
	read := make(chan error)
	go func() {
		for range rounds {
			read <- readNumbered(t, ws, n)
		}
	}()
	var wg sync.WaitGroup
	wg.Go(func() {
		for range rounds {
			if err := ws.Ping(t.Context()); err != nil {
				t.Errorf("ping: %v", err)
				return
			}
		}
	})
	for range rounds {
		sendBatch(t, c, n)
		if err := <-read; err != nil {
			t.Fatal(err)
		}
	}
	// A ping gets its pong only while the client reads.
	ws.CloseRead(t.Context())
	wg.Wait()
}

// TestConcurrentWritersKeepTheirFrames checks that connections written to
// at once, with frames queued while their writers write, each deliver
// exactly their own frames in order. Their queues and batches borrow
// arrays from one pool, and a batch is written while its queue refills:
// an array shared with a batch still being written, or given back to the
// pool while still in use, would mix, lose or repeat frames (and -race
// would report it).
func TestConcurrentWritersKeepTheirFrames(t *testing.T) {
	t.Parallel()
	// Bursts of 1 to 2*pooledFrames frames, so that some outgrow the
	// pool's arrays.
	const conns, bursts, maxBurst = 4, 128, 2 * pooledFrames
	size := func(burst int) int { return burst%maxBurst + 1 }
	frame := func(conn, burst, i int) string { return fmt.Sprintf("%d/%d/%d", conn, burst, i) }
	var wg sync.WaitGroup
	for conn := range conns {
		ws, c := serveOne(t, Options{})
		// Each burst is queued once the client has read the first frame
		// of the one before, so that it is queued while that one is
		// being written or just after.
		started := make(chan struct{}, bursts)
		wg.Go(func() {
			defer close(started)
			for b := range bursts {
				for i := range size(b) {
					_, got, err := ws.Read(t.Context())
					if err != nil {
						t.Errorf("connection %d, burst %d, frame %d: %v", conn, b, i, err)
						return
					}
					if want := frame(conn, b, i); string(got) != want {
						t.Errorf("connection %d: got frame %q, want %q", conn, got, want)
						return
					}
					if i == 0 {
						started <- struct{}{}
					}
				}
			}
		})
		wg.Go(func() {
			for b := range bursts {
				c.mu.Lock()
				for i := range size(b) {
					if !c.pushLocked(convo.Frame{Data: []byte(frame(conn, b, i))}) {
						t.Errorf("connection %d: frame %d of burst %d refused", conn, i, b)
					}
				}
				c.mu.Unlock()
				<-started
			}
		})
	}
	wg.Wait()
}

// BenchmarkQueuedFrames measures the cost per frame of writing frames to
// a WebSocket client over loopback (and of the client reading them), one
// at a time or queued together. The client drops what it reads with a
// context that is never done, which arms no timer per read, so that
// nearly every allocation counted is the server's.
func BenchmarkQueuedFrames(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("queued=%d", n), func(b *testing.B) {
			ws, c := serveOne(b, Options{})
			b.ReportAllocs()
			for b.Loop() {
				sendBatch(b, c, n)
				for range n {
					_, r, err := ws.Reader(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, r); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/frame")
		})
	}
}
