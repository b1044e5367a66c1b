package conn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/cork"
)

// Send queues f without blocking; it implements convo.Subscriber. A full
// queue makes the connection a slow consumer: its queue is dropped, it is
// closed with 1008, and Send returns false.
func (c *conn) Send(f convo.Frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pushLocked(f)
}

// SendWait implements convo.Subscriber with pushWait.
func (c *conn) SendWait(ctx context.Context, f convo.Frame) error { return c.pushWait(ctx, f) }

// push queues a reply frame without blocking, like Send.
func (c *conn) push(data []byte) bool { return c.Send(convo.Frame{Data: data}) }

// pushWait queues f once it fits in half the queue, in frames and in
// bytes, so that a replay paces itself to the client while live events of
// other conversations still fit: a replay never holds more than half of
// SendQueueBytes in the queue, however large the log.
func (c *conn) pushWait(ctx context.Context, frame convo.Frame) error {
	for {
		c.mu.Lock()
		if c.closeCode != 0 || c.dead {
			c.mu.Unlock()
			return errClosed
		}
		if c.roomLocked(len(frame.Data)) {
			c.pushLocked(frame)
			c.mu.Unlock()
			return nil
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return errClosed
		}
	}
}

// pushLocked queues frame and makes sure a
// writer runs. It reports false when the connection is closing or too
// slow. Call with c.mu held.
func (c *conn) pushLocked(frame convo.Frame) bool {
	if c.closeCode != 0 || c.dead {
		return false
	}
	n := len(c.queue)
	if n >= c.h.opts.SendQueue || n > 0 && c.queued+len(frame.Data) > c.h.opts.SendQueueBytes {
		c.log.Warn("closing slow consumer", "queued", n, "bytes", c.queued)
		c.h.metrics.SlowConsumers.Inc()
		c.dropQueueLocked()
		c.wakeLocked()
		c.closeLocked(websocket.StatusPolicyViolation, "slow consumer")
		return false
	}
	if c.queueArray == nil {
		c.queueArray = framePool.Get().(*frameArray)
		c.queue = c.queueArray[:0]
	}
	c.queued += len(frame.Data)
	c.queue = append(c.queue, frame)
	c.startWriterLocked()
	return true
}

// pooledFrames is the length of the arrays in framePool: more frames than
// a burst to one connection usually brings.
const pooledFrames = 16

// frameArray holds the frames of a burst: the queue's while they wait,
// or a writer's batch while it writes them.
type frameArray [pooledFrames]convo.Frame

// framePool lends frame arrays to connections only while they have frames
// to write, so that neither a burst nor its batch allocates one and an
// idle connection holds none.
var framePool = sync.Pool{New: func() any { return new(frameArray) }}

// putFrames clears a, so that the pool holds no frame's data, and puts it
// back in framePool. Its borrower must hold no slice of it any more.
func putFrames(a *frameArray) {
	clear(a[:])
	framePool.Put(a)
}

// dropQueueLocked empties the queue and puts its array back in
// framePool. That is safe because the queue's slice is the array's only
// user: the writer copies the frames it takes out of it (see next).
func (c *conn) dropQueueLocked() {
	if c.queueArray != nil {
		putFrames(c.queueArray)
		c.queueArray = nil
	}
	c.queue, c.queued = nil, 0
}

// closeAfterQueue closes the connection with code and reason once the
// frames already queued are written; later frames are refused.
func (c *conn) closeAfterQueue(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

func (c *conn) closeLocked(code websocket.StatusCode, reason string) {
	if c.closeCode != 0 || c.dead {
		return
	}
	c.noteEndLocked(endForCode(code))
	c.closeCode, c.closeReason = code, reason
	c.startWriterLocked()
}

// closing reports whether the connection is being closed.
func (c *conn) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode != 0 || c.dead
}

// roomLocked reports whether a frame of size bytes fits in half the
// queue; an empty queue takes any frame.
func (c *conn) roomLocked(size int) bool {
	n := len(c.queue)
	return n == 0 || n <= c.h.opts.SendQueue/2 && c.queued+size <= c.h.opts.SendQueueBytes/2
}

// wakeLocked wakes SendWait callers once the queue is at most half full;
// each checks again whether its frame fits.
func (c *conn) wakeLocked() {
	if c.room != nil && len(c.queue) <= c.h.opts.SendQueue/2 && c.queued <= c.h.opts.SendQueueBytes/2 {
		close(c.room)
		c.room = nil
	}
}

func (c *conn) startWriterLocked() {
	if c.writing || c.dead {
		return
	}
	c.writing = true
	c.writer.Add(1)
	go c.runWriter()
}

// maxBatchBytes bounds the frames the writer takes from the queue to
// write at once; a larger frame is written alone.
const maxBatchBytes = 64 << 10

// writeLoop writes the queued frames, then the close frame if one is due,
// and exits when there is nothing left to do. It owns every write to the
// socket; a connection with nothing to send has no writer goroutine.
func (c *conn) writeLoop() {
	defer c.writer.Done()
	// The batch is this goroutine's alone: next copies the frames into
	// it, and its array goes back to the pool when the goroutine ends.
	array := framePool.Get().(*frameArray)
	defer putFrames(array)
	batch := array[:0]
	for {
		var closeCode websocket.StatusCode
		var closeReason string
		batch, closeCode, closeReason = c.next(batch[:0])
		switch {
		case len(batch) > 0:
			if err := c.write(batch); err != nil {
				c.writeFailed(err)
				return
			}
			now := time.Now()
			for _, f := range batch {
				if !f.Born.IsZero() {
					c.h.metrics.RelaySeconds.Observe(now.Sub(f.Born).Seconds())
				}
				if !f.Durable.IsZero() {
					c.h.metrics.DeliverySeconds.Observe(now.Sub(f.Durable).Seconds())
				}
			}
		case closeCode != 0:
			if err := c.ws.Close(closeCode, closeReason); err != nil {
				c.log.Debug("close handshake failed", "err", err)
			}
			return
		default:
			return
		}
	}
}

// next appends the writer's next frames to batch, popping them from the
// queue: every queued one, up to maxBatchBytes. With none left it appends
// nothing and returns the close code when a close is due, or nothing and
// marks the writer stopped.
func (c *conn) next(batch []convo.Frame) ([]convo.Frame, websocket.StatusCode, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		c.writing = false
		return batch, 0, ""
	}
	if len(c.queue) > 0 {
		n, size := 1, len(c.queue[0].Data)
		for n < len(c.queue) && size+len(c.queue[n].Data) <= maxBatchBytes {
			size += len(c.queue[n].Data)
			n++
		}
		// Copied out, the frames leave the queue's array to the frames
		// queued while they are written, and to the pool after.
		batch = append(batch, c.queue[:n]...)
		c.queue = slices.Delete(c.queue, 0, n)
		c.queued -= size
		c.wakeLocked()
		return batch, 0, ""
	}
	c.dropQueueLocked() // let an idle connection hold no array
	if c.closeCode != 0 {
		// This writer closes the socket; no other starts after it.
		c.dead = true
		return batch, c.closeCode, c.closeReason
	}
	c.writing = false
	return batch, 0, ""
}

// errWriteTimeout is why a write that outlasted WriteTimeout failed.
var errWriteTimeout = errors.New("conn: write timed out")

// write writes a batch of frames within WriteTimeout. Several frames are
// written to the corked socket and reach it with one system call. The
// frames are written with a context that is never done, so that the
// websocket library arms nothing per frame; instead one timer per
// connection, armed around each batch, closes the socket when the write
// takes too long, which makes it fail. Only the writer goroutine calls
// write (one at a time, ordered by c.mu).
func (c *conn) write(batch []convo.Frame) error {
	if c.stall == nil {
		c.stall = time.AfterFunc(c.h.opts.WriteTimeout, func() {
			c.noteEnd(endWriteTimeout)
			_ = c.ws.CloseNow()
		})
	} else {
		c.stall.Reset(c.h.opts.WriteTimeout)
	}
	err := cork.Write(c.ws, c.sock, batch, func(f convo.Frame) []byte { return f.Data })
	if !c.stall.Stop() {
		// The timer fired: the socket is closed, whatever err says.
		return fmt.Errorf("%w after %v", errWriteTimeout, c.h.opts.WriteTimeout)
	}
	return err
}

// writeFailed stops writing after a failed write; the websocket library
// has closed the connection, so the reader ends too.
func (c *conn) writeFailed(err error) {
	c.mu.Lock()
	c.noteEndLocked(endWriteError)
	c.dead = true
	c.writing = false
	c.dropQueueLocked()
	c.wakeLocked()
	c.mu.Unlock()
	if c.ctx.Err() == nil {
		c.log.Info("write failed, closing", "err", err)
	}
	_ = c.ws.CloseNow()
}
