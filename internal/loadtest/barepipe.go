package loadtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/cork"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// barePipe is the least a server can do for the streams step's contract,
// with none of the gateway's logic: a client's send is stored and acked;
// then the stamp model streams the reply, and every chunk is stored
// before it is sent, to the client on the connection that sent. One
// commit loop stores everything pending in one bbolt transaction with
// fsync (a send as one record, each stream's chunks since the last commit
// as one delta record, under one global key sequence: append-only, so a
// commit dirties few pages), then queues the frames for the connections'
// writers, one goroutine each, which write the frames queued together
// with one system call. There are no conversations, metadata, hubs or
// turns. It records into the gateway's metrics, so that the streams step
// reads it like a gateway.
//
// With proto, it sends and stores the protocol's events for the same
// work (see protoFrames) and reads a conversation's messages back before
// each reply: the least a server that speaks the protocol can do.
//
// Without storage (db nil) it is the floor under every pipeline on this
// machine: the same clients, model, loop and writers, but nothing is
// stored and no commit waits for the disk: what the clients, the model's
// chunks and one WebSocket frame per event cost, less than the contract
// allows.
//
// By conversation, it keys each record by its stream and seq instead, as
// a log that reads a conversation back by its keys lays it out: a
// commit then writes into each stream's own key range, not at the end of
// one sequence. Through a tail, it keys the records of a turn in progress
// by the global sequence and moves them under their stream and seq when
// the turn ends, deleting moved records from the tail's head, as the
// gateway's first layout did: the least layout that reads a conversation
// back by its keys after a restart and writes into each stream's range
// once per turn. Through an index, every record stays in the global
// sequence, and a turn's end stores where its records are, as the
// gateway's log does.
type barePipe struct {
	db     *bolt.DB // nil: nothing is stored
	layout pipeLayout
	// proto makes the pipe send and store the protocol's events: a
	// send's message and turn_start (the ack not stored), deltas and a
	// turn_end with the whole reply as its message, each with its ts;
	// and each reply first reads its conversation's messages back.
	proto   bool
	model   *stampModel
	metrics *metrics.Metrics
	ctx     context.Context // ends the model streams when the pipe closes
	wake    chan struct{}   // capacity 1: "something is pending"
	key     uint64          // the last number of the global sequence (not by conversation); only the loop uses it
	// moved are the tail's records moved out and not deleted yet, and
	// head the first record the tail may still hold (through a tail;
	// only the loop uses them).
	moved map[uint64]bool
	head  uint64

	mu      sync.Mutex
	pending []*bareStream // streams with something to commit, each once
	closed  bool
	exited  chan struct{}
}

// bareStream is one connection's stream. The fields under mu are shared
// by its reader, the model, the commit loop and its writer.
type bareStream struct {
	ws   *websocket.Conn
	sock *cork.Conn // ws's socket
	id   string
	wake chan struct{} // capacity 1: "frames are queued"

	mu sync.Mutex
	// queued says the stream is in barePipe.pending.
	queued bool
	// send is the id of a send not committed yet ("" none).
	send string
	// text is the chunks not committed yet; ended says the model is done
	// (the turn_end is due after them).
	text  []byte
	ended bool
	// seq is the stream's last stored event; only the commit loop uses it.
	seq uint64
	// out is the frames committed and not written yet.
	out [][]byte
	// turn counts the stream's turns, started is when the last one's
	// send was stored, reply is the reply's text so far and history the
	// keys of its stored messages (proto only; the loop's, history shared
	// with the reply under mu).
	turn    int
	started time.Time
	reply   []byte
	history []recordKey
	// turnRecords are the stored records of the turn in progress, with
	// their data through a tail (to move them), their keys only through
	// an index (to list them); only the loop uses it.
	turnRecords []tailRecord
}

// recordKey is where a record is stored: seq is its seq in its stream,
// and g its number in the global sequence (0: none).
type recordKey struct{ seq, g uint64 }

// tailRecord is a record stored in the tail.
type tailRecord struct {
	recordKey
	data []byte
}

// startBarePipe starts the bare pipeline v on 127.0.0.1:0, streaming
// model's replies, with a fresh bbolt file in dir if v stores.
func startBarePipe(dir string, model *stampModel, v pipeVariant) (*target, error) {
	var db *bolt.DB
	if v.store {
		path := filepath.Join(dir, fmt.Sprintf("bare-pipe-%d.db", dbCount.Add(1)))
		var err error
		if db, err = bolt.Open(path, 0o600, boltlog.BoltOptions(2*time.Second)); err != nil {
			return nil, fmt.Errorf("loadtest: open %s: %w", path, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &barePipe{db: db, layout: v.layout, proto: v.proto, model: model, metrics: metrics.New(), ctx: ctx,
		wake: make(chan struct{}, 1), exited: make(chan struct{}), moved: map[uint64]bool{}, head: 1}
	var conns sync.WaitGroup
	var n atomic.Int64
	srv, url, err := serveWebSockets(func(ws *websocket.Conn, sock *cork.Conn) {
		id := "c" + strconv.FormatInt(n.Add(1), 10)
		conns.Go(func() { p.serve(&bareStream{ws: ws, sock: sock, id: id, wake: make(chan struct{}, 1)}) })
	})
	if err != nil {
		cancel()
		p.closeDB()
		return nil, err
	}
	go p.loop()
	return &target{
		wsURL:     url,
		gather:    func(context.Context) (map[string]float64, error) { return p.metrics.Gather() },
		inProcess: true,
		close: func() error {
			err := srv.Close()
			cancel()
			conns.Wait()
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			poke(p.wake)
			<-p.exited
			return errors.Join(err, p.closeDB())
		},
	}, nil
}

// closeDB closes the pipe's file, if it has one.
func (p *barePipe) closeDB() error {
	if p.db == nil {
		return nil
	}
	return p.db.Close()
}

// serve reads s's sends until the connection ends; its writer writes
// what the commit loop queued. Reads and writes take a context that is
// never done, as the clients' do (coder/websocket then arms no timer per
// call): closing the pipe closes the connection instead.
func (p *barePipe) serve(s *bareStream) {
	done := make(chan struct{})
	defer close(done)
	stop := context.AfterFunc(p.ctx, func() { _ = s.ws.CloseNow() })
	defer stop()
	defer s.ws.CloseNow()
	go s.writeLoop(done)
	for {
		_, data, err := s.ws.Read(context.Background())
		if err != nil {
			return
		}
		var send struct{ ID string }
		if json.Unmarshal(data, &send) != nil {
			return
		}
		s.mu.Lock()
		s.send = send.ID
		s.mu.Unlock()
		p.queue(s)
	}
}

// queue puts s in the next commit.
func (p *barePipe) queue(s *bareStream) {
	s.mu.Lock()
	first := !s.queued
	s.queued = true
	s.mu.Unlock()
	if first {
		p.mu.Lock()
		p.pending = append(p.pending, s)
		p.mu.Unlock()
	}
	poke(p.wake)
}

// poke tells wake's reader, whose channel has room for one, that there is
// work, without waiting if it was told already.
func poke(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// loop commits whatever is pending, one commit after another.
func (p *barePipe) loop() {
	defer close(p.exited)
	for range p.wake {
		p.mu.Lock()
		streams, closed := p.pending, p.closed
		p.pending = nil
		p.mu.Unlock()
		if closed {
			return
		}
		if len(streams) == 0 {
			continue
		}
		// Take what each stream has, and make its frames.
		batch := make([]taken, 0, len(streams))
		for _, s := range streams {
			s.mu.Lock()
			t := taken{s: s, seq: s.seq}
			if p.proto {
				p.protoFrames(s, &t)
			} else {
				p.bareFrames(s, &t)
			}
			s.queued = false
			s.mu.Unlock()
			batch = append(batch, t)
		}
		if err := p.store(batch); err != nil {
			panic(fmt.Sprintf("loadtest: bare pipeline commit: %v", err))
		}
		// Durable: now the frames may go out, the messages are history,
		// and the replies start.
		for _, t := range batch {
			t.s.mu.Lock()
			t.s.out = append(t.s.out, t.frames...)
			for _, i := range t.messages {
				if t.keys != nil { // stored
					t.s.history = append(t.s.history, t.keys[i])
				}
			}
			t.s.mu.Unlock()
			poke(t.s.wake)
			if t.start {
				go p.reply(t.s)
			}
		}
		// As the gateway's commit loop does: the writers just woken run
		// now, not behind every goroutine queued meanwhile.
		runtime.Gosched()
	}
}

// bareFrames takes s's pending send, text and end as frames, each also
// stored as one record. Call with s.mu held.
func (p *barePipe) bareFrames(s *bareStream, t *taken) {
	if s.send != "" {
		s.seq++
		t.frames = append(t.frames, fmt.Appendf(nil, `{"type":"ack","id":%q,"conversation":%q,"seq":%d}`, s.send, s.id, s.seq))
		t.start, s.send = true, ""
	}
	if len(s.text) > 0 {
		s.seq++
		// The stamp model's text needs no JSON escaping.
		t.frames = append(t.frames, fmt.Appendf(nil, `{"type":"delta","conversation":%q,"seq":%d,"text":"%s"}`, s.id, s.seq, s.text))
		s.text = s.text[:0]
	}
	if s.ended {
		s.seq++
		t.frames = append(t.frames, fmt.Appendf(nil, `{"type":"turn_end","conversation":%q,"seq":%d,"stop_reason":"end_turn"}`, s.id, s.seq))
		s.ended = false
	}
	t.records = t.frames
}

// protoFrames takes s's pending send, text and end as the protocol's
// frames and events, encoded as the gateway encodes them. Call with s.mu
// held.
func (p *barePipe) protoFrames(s *bareStream, t *taken) {
	now := time.Now().UTC()
	if s.send != "" {
		s.turn++
		msg := &protocol.Message{ID: "m" + strconv.Itoa(s.turn), Seq: s.seq + 1, Role: protocol.RoleUser, Text: "load test", Turn: s.turnID(), CreatedAt: now}
		ack, err := json.Marshal(&protocol.Ack{Type: protocol.ReplyAck, ID: s.send, Conversation: s.id, Message: msg})
		if err != nil {
			panic(fmt.Sprintf("loadtest: bare pipeline ack: %v", err))
		}
		t.frames = append(t.frames, ack)
		t.messages = append(t.messages, len(t.records))
		s.event(t, &protocol.Event{Type: protocol.EventMessage, TS: now, Message: msg})
		s.event(t, &protocol.Event{Type: protocol.EventTurnStart, TS: now, Turn: msg.Turn, Model: "stamp"})
		t.start, s.send, s.started = true, "", now
	}
	if len(s.text) > 0 {
		s.event(t, &protocol.Event{Type: protocol.EventDelta, TS: now, Turn: s.turnID(), Text: string(s.text)})
		s.reply = append(s.reply, s.text...)
		s.text = s.text[:0]
	}
	if s.ended {
		latency := now.Sub(s.started).Milliseconds()
		t.messages = append(t.messages, len(t.records))
		s.event(t, &protocol.Event{Type: protocol.EventTurnEnd, TS: now, Turn: s.turnID(), StopReason: protocol.StopEndTurn,
			Message: &protocol.Message{ID: "r" + strconv.Itoa(s.turn), Seq: s.seq + 1, Role: protocol.RoleAssistant, Text: string(s.reply), Turn: s.turnID(), CreatedAt: now},
			Usage:   &protocol.Usage{InputTokens: int64(10 * s.turn), OutputTokens: int64(p.model.chunks)}, LatencyMS: &latency})
		s.reply = s.reply[:0]
		s.ended = false
	}
}

// turnID is the id of s's turn. Call with s.mu held.
func (s *bareStream) turnID() string { return "t" + strconv.Itoa(s.turn) }

// event gives ev the next seq of s, and puts it in t as a frame and a
// record. Call with s.mu held.
func (s *bareStream) event(t *taken, ev *protocol.Event) {
	s.seq++
	ev.Conversation, ev.Seq = s.id, s.seq
	data, err := ev.MarshalJSON()
	if err != nil {
		panic(fmt.Sprintf("loadtest: bare pipeline event: %v", err))
	}
	t.frames, t.records = append(t.frames, data), append(t.records, data)
}

// taken is what the loop took from a stream for one commit.
type taken struct {
	s *bareStream
	// frames are sent once records are stored; messages are the indexes
	// of the records that hold a message (proto only).
	frames, records [][]byte
	messages        []int
	// seq is the stream's seq before the records, each of which takes
	// the next; keys are where the records were stored, once they are.
	seq   uint64
	keys  []recordKey
	start bool // the send was stored: start the reply
}

// Buckets of the bare pipelines that store: one log (a global sequence,
// or by conversation), or the tail and events, through a tail.
var (
	bareLog    = []byte("log")
	bareTail   = []byte("tail")
	bareEvents = []byte("events")
	bareIndex  = []byte("index")
)

// maxTailCut bounds the records a commit deletes from the tail's head,
// as boltlog's does.
const maxTailCut = 4096

// store commits the records of batch in one transaction, noting the key
// of each, and records the commit; without a file it only counts them.
func (p *barePipe) store(batch []taken) error {
	events := 0
	for _, t := range batch {
		events += len(t.records)
	}
	p.metrics.Events.WithLabelValues("bare").Add(float64(events))
	if p.db == nil {
		return nil
	}
	start := time.Now()
	err := p.db.Update(func(tx *bolt.Tx) error {
		var bks [4]*bolt.Bucket
		for i, name := range [][]byte{bareLog, bareTail, bareEvents, bareIndex} {
			var err error
			if bks[i], err = tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		bk := pipeBuckets{log: bks[0], tail: bks[1], events: bks[2], index: bks[3]}
		// Appended in key order: no half-full pages behind (in each
		// stream's range, boltlog's fill).
		bk.log.FillPercent, bk.tail.FillPercent, bk.events.FillPercent, bk.index.FillPercent = 1, 1, 0.9, 0.9
		if p.layout == byConversation {
			bk.log.FillPercent = 0.9
		}
		for i := range batch {
			if err := p.put(&batch[i], bk); err != nil {
				return err
			}
		}
		if p.layout == throughTail {
			return p.cutTail(tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.metrics.CommitSeconds.Observe(time.Since(start).Seconds())
	p.metrics.CommitOps.Observe(float64(len(batch)))
	return nil
}

// pipeBuckets are a commit's buckets: those of its layout are used.
type pipeBuckets struct{ log, tail, events, index *bolt.Bucket }

// put stores t's records in the buckets of the pipe's layout.
func (p *barePipe) put(t *taken, bk pipeBuckets) error {
	s := t.s
	t.keys = make([]recordKey, len(t.records))
	for i, f := range t.records {
		k := recordKey{seq: t.seq + uint64(i) + 1}
		end := bytes.HasPrefix(f, turnEndFrame)
		var err error
		switch {
		case p.layout == byConversation:
			err = bk.log.Put(s.key(k.seq), f)
		case p.layout == globalLayout:
			k.g = p.next()
			err = bk.log.Put(binary.BigEndian.AppendUint64(nil, k.g), f)
		case p.layout == throughIndex:
			k.g = p.next()
			s.turnRecords = append(s.turnRecords, tailRecord{recordKey: k})
			err = bk.log.Put(binary.BigEndian.AppendUint64(nil, k.g), f)
			if err == nil && end {
				// One record under the stream lists where the turn's are.
				var where []byte
				for _, r := range s.turnRecords {
					where = binary.BigEndian.AppendUint64(where, r.g)
				}
				err = bk.index.Put(s.key(s.turnRecords[0].seq), where)
				s.turnRecords = s.turnRecords[:0]
			}
		case !end:
			k.g = p.next()
			s.turnRecords = append(s.turnRecords, tailRecord{k, f})
			err = bk.tail.Put(binary.BigEndian.AppendUint64(nil, k.g), f)
		default:
			// The turn ends: its records move under the stream.
			for _, r := range s.turnRecords {
				if err := bk.events.Put(s.key(r.seq), r.data); err != nil {
					return err
				}
				p.moved[r.g] = true
			}
			s.turnRecords = s.turnRecords[:0]
			err = bk.events.Put(s.key(k.seq), f)
		}
		if err != nil {
			return err
		}
		t.keys[i] = k
	}
	return nil
}

// next takes the next number of the global sequence.
func (p *barePipe) next() uint64 {
	p.key++
	return p.key
}

// turnEndFrame starts the frame of a turn_end event.
var turnEndFrame = []byte(`{"type":"` + protocol.EventTurnEnd + `"`)

// cutTail deletes the records moved out of the tail from its head, in
// order, up to maxTailCut.
func (p *barePipe) cutTail(tx *bolt.Tx) error {
	tail := tx.Bucket(bareTail)
	for n := 0; n < maxTailCut && p.moved[p.head]; n++ {
		if err := tail.Delete(binary.BigEndian.AppendUint64(nil, p.head)); err != nil {
			return err
		}
		delete(p.moved, p.head)
		p.head++
	}
	return nil
}

// key is the key of s's record seq, by conversation: s's id, a zero byte
// and seq.
func (s *bareStream) key(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(s.id), 0), seq)
}

// stored returns the record stored at k of s, or nil.
func (p *barePipe) stored(tx *bolt.Tx, s *bareStream, k recordKey) []byte {
	switch p.layout {
	case byConversation:
		return tx.Bucket(bareLog).Get(s.key(k.seq))
	case globalLayout, throughIndex:
		return tx.Bucket(bareLog).Get(binary.BigEndian.AppendUint64(nil, k.g))
	}
	if data := tx.Bucket(bareEvents).Get(s.key(k.seq)); data != nil || k.g == 0 {
		return data
	}
	return tx.Bucket(bareTail).Get(binary.BigEndian.AppendUint64(nil, k.g))
}

// reply streams the model's reply into s's pending text, having read
// the conversation's messages back first if the pipe is proto.
func (p *barePipe) reply(s *bareStream) {
	if p.proto && p.db != nil {
		s.mu.Lock()
		keys := slices.Clone(s.history)
		s.mu.Unlock()
		err := p.db.View(func(tx *bolt.Tx) error {
			for _, k := range keys {
				if p.stored(tx, s, k) == nil {
					return fmt.Errorf("loadtest: message %d not found", k.seq)
				}
			}
			return nil
		})
		if err != nil {
			panic(fmt.Sprintf("loadtest: bare pipeline history: %v", err))
		}
	}
	_, err := p.model.Stream(p.ctx, convo.ModelRequest{}, func(c convo.Chunk) {
		s.mu.Lock()
		s.text = append(s.text, c.Text...)
		s.mu.Unlock()
		p.queue(s)
	})
	if err != nil {
		return
	}
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	p.queue(s)
}

// writeLoop writes s's committed frames in order, one message each,
// until done is closed; the frames queued together reach the socket
// with one system call, as in the gateway.
func (s *bareStream) writeLoop(done <-chan struct{}) {
	for {
		select {
		case <-s.wake:
		case <-done:
			return
		}
		s.mu.Lock()
		out := s.out
		s.out = nil
		s.mu.Unlock()
		if len(out) > 0 && cork.Write(s.ws, s.sock, out, func(f []byte) []byte { return f }) != nil {
			return
		}
	}
}
