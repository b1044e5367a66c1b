package convo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/chatgateway/gateway/protocol"
)

// MaxReplyBytes bounds a turn's reply and reasoning together: the bytes
// their text takes in the events that hold it (the turn_end's message,
// the thinking events), escaped as JSON (protocol.TextLen). A text chunk
// that reaches it is cut there, between two characters, the model is
// stopped, and the turn ends with stop_reason max_tokens, its deltas and
// its message holding the same text. The bound keeps every turn_end, and
// every append of a turn's chunks, with the conversation's metadata
// stored beside it, under 1 MiB: the largest message a NATS server takes
// by default, and cluster mode stores each append as one message. Without
// it, a reply that long (HTML or code, whose '<', '>' and '&' take six
// bytes each) could never end: its turn would stay open, and the
// conversation's later turns behind it; and a model that reasons without
// end would grow the log without end. Reasoning shares the reply's bound,
// as it shares the model's own output limit (max_tokens), and so do the
// actions a model shows and the input of the tools it calls (see
// addAction, toolUsesLen): neither can be cut, so one that does not fit
// ends the turn max_tokens too. Every Log applies the same bound, so that
// a turn ends the same way on each.
const MaxReplyBytes = 960 << 10

// eventOverhead bounds what a chunk event takes in its frame besides its
// text: the type, conversation id, seq, ts and turn id with their keys.
const eventOverhead = 512

// errReplyFull ends a turn's model call once its reply and reasoning
// reached MaxReplyBytes.
var errReplyFull = errors.New("convo: the reply reached its size limit")

// chunkBuffer collects a turn's chunks and stores them, one append in
// flight at a time. Consecutive text of one kind merges into one event, so
// a slow commit makes fewer, larger deltas instead of a backlog. The
// events stay in the buffer until stored: the append that stores them
// takes them when its commit runs (peek), not when it is posted, so that
// the chunks that came while it waited for the commit go with it. A chunk
// costs no event until then: the buffer keeps each event's text and makes
// the event when a peek hands it out.
//
// The appends are posted (Log.Post) by whoever finds events buffered and
// none in flight: the model's callback for a first chunk, and the end of
// the append in flight for the chunks that came meanwhile, on the Log's
// commit path. No goroutine wakes per commit to queue the next chunks.
//
// A chunk allocates nothing of its own once the buffer has grown to the
// reply: its text goes into texts, and the append that stores it, its
// events and drafts are the buffer's, made once and used again (see
// peek), so that a busy gateway's collector has little to do per chunk.
type chunkBuffer struct {
	log  Log // nil: the buffer only buffers (its tests)
	turn string
	// failed is told why an append failed; nothing more is posted.
	failed func(error)
	// full is told, once, that a text or thinking chunk did not fit in
	// the reply's room: it was cut to fit, and the buffer takes no more
	// chunks.
	full func()
	// chunks is the append that stores the buffered events (of the
	// conversation it names), and posted its done function (Log.Post):
	// made once, never changed, and posted again for each append, one at
	// a time. The Log only reads them.
	chunks Append
	posted func(*Appended, error)

	mu     sync.Mutex
	events []bufferedEvent
	// sealed is how many of the first events a peek has handed out: no
	// chunk merges into them any more, the stored text must not grow.
	sealed int
	first  time.Time // when the first chunk arrived
	// open says the buffer may post (what must precede the reply is
	// stored), posting that an append is in flight, stopped that none is
	// posted any more.
	open, posting, stopped bool
	// idle, when not nil, is closed when no append is in flight (flush
	// waits on it).
	idle chan struct{}
	// texts holds the text of each kind (ChunkText, ChunkThinking) that
	// the buffer took, in order: each text or thinking event's text is a
	// range of it. A builder only appends (growing copies to a new
	// array), so a string taken from it never changes: events and the
	// turn's reply use it without a copy. Both together hold at most the
	// room the buffer started with: a chunk is cut to the room left.
	texts [ChunkThinking + 1]strings.Builder
	// storedText is how much of texts[ChunkText] the deltas stored hold:
	// deltas are stored in order, so it is their text.
	storedText int
	// evs and drafts are what the last peek handed out, which the next
	// overwrites (see peek).
	evs    []protocol.Event
	drafts []Draft
	// room is how many more bytes the reply's text and reasoning may
	// take in their events (see MaxReplyBytes); filled says a chunk did
	// not fit.
	room   int
	filled bool
}

// bufferedEvent is an event the buffer will make: text of kind kind, or
// an action, with when its first chunk came.
type bufferedEvent struct {
	kind ChunkKind
	// start and end delimit a text or thinking event's text in the
	// buffer's texts[kind].
	start, end int
	action     *protocol.Event // the action event, for kind ChunkAction
	born       time.Time
	// size is at least the bytes the text or the action takes in the
	// event's frame, JSON-escaped.
	size int
}

// eventTypes is the type of the event each kind of chunk makes.
var eventTypes = [...]string{ChunkText: protocol.EventDelta, ChunkThinking: protocol.EventThinking, ChunkAction: protocol.EventAction}

// newChunkBuffer returns the buffer of a turn's chunks, storing them to
// log once opened, with room for room bytes of reply and reasoning text
// (as protocol.TextLen counts them); failed is told when an append fails,
// full when the reply reaches room.
func newChunkBuffer(log Log, conversation, turnID string, room int, failed func(error), full func()) *chunkBuffer {
	b := &chunkBuffer{log: log, turn: turnID, room: room, failed: failed, full: full}
	b.chunks = Append{Conversation: conversation, Deferrable: true, Build: b.build}
	b.posted = b.done
	return b
}

// emit is the Model's callback: it never waits for storage. Once the
// reply is full, it drops what the model sends until it stops.
func (b *chunkBuffer) emit(c Chunk) {
	now := time.Now()
	b.mu.Lock()
	if b.filled {
		b.mu.Unlock()
		return
	}
	if b.first.IsZero() {
		b.first = now
	}
	if c.Kind == ChunkAction {
		b.addAction(c, now)
	} else {
		b.addText(c, now)
	}
	filled := b.filled
	b.unlockAndPost()
	if filled {
		b.full()
	}
}

// addAction buffers an action chunk that came at now, if its event fits in
// the room left: an action cannot be cut, so one that does not fit fills
// the reply. Call with b.mu held.
func (b *chunkBuffer) addAction(c Chunk, now time.Time) {
	ev := &protocol.Event{Type: protocol.EventAction, Turn: b.turn, Name: c.Name, Input: validJSON(c.Input), Output: validJSON(c.Output)}
	size := protocol.TextLen(ev.Name) + rawLen(ev.Input) + rawLen(ev.Output)
	if b.filled = size > b.room; !b.filled {
		b.room -= size
		b.events = append(b.events, bufferedEvent{kind: ChunkAction, born: now, action: ev, size: size})
	}
}

// addText buffers a text or thinking chunk that came at now, cut to fit in
// the room left, merged into the last event if that is of its kind and
// not yet handed out. Call with b.mu held.
func (b *chunkBuffer) addText(c Chunk, now time.Time) {
	kind := ChunkText
	if c.Kind == ChunkThinking {
		kind = ChunkThinking
	}
	text, left := fitText(c.Text, b.room)
	size := b.room - left
	b.room, b.filled = left, len(text) < len(c.Text)
	if text == "" {
		return
	}
	texts := &b.texts[kind]
	start := texts.Len()
	texts.WriteString(text)
	// The last event of its kind ends where texts did: all of the kind's
	// text that came since it went into it.
	if n := len(b.events); n > b.sealed && b.events[n-1].kind == kind {
		b.events[n-1].end = texts.Len()
		b.events[n-1].size += size
	} else {
		b.events = append(b.events, bufferedEvent{kind: kind, start: start, end: texts.Len(), born: now, size: size})
	}
}

// rawLen is at least the bytes a JSON value takes in an event's frame:
// encoding/json keeps its bytes but escapes '<', '>' and '&' (six bytes
// each) and U+2028 and U+2029 (six for three), and drops the whitespace
// between tokens.
func rawLen(v json.RawMessage) int {
	n := len(v) + 3*(bytes.Count(v, lineSep)+bytes.Count(v, paraSep))
	for _, c := range v {
		if c == '<' || c == '>' || c == '&' {
			n += 5
		}
	}
	return n
}

var lineSep, paraSep = []byte("\u2028"), []byte("\u2029")

// fitText returns the longest start of s, cut between two characters,
// whose text takes at most room bytes in a turn_end (protocol.TextLen),
// and the room left after it.
func fitText(s string, room int) (string, int) {
	if n := protocol.TextLen(s); n <= room {
		return s, room - n
	}
	i := 0
	for i < len(s) {
		_, size := utf8.DecodeRuneInString(s[i:])
		n := protocol.TextLen(s[i : i+size])
		if n > room {
			break
		}
		room -= n
		i += size
	}
	return s[:i], room
}

// openTo lets the buffer store from now on (if store is set; otherwise it
// never will), and posts what it holds.
func (b *chunkBuffer) openTo(store bool) {
	b.mu.Lock()
	b.open, b.stopped = true, !store
	b.unlockAndPost()
}

// startLocked reports whether the caller is to post an append: the buffer
// is open, holds events, and has no append in flight. Call with b.mu held.
func (b *chunkBuffer) startLocked() bool {
	if !b.open || b.posting || b.stopped || len(b.events) == 0 {
		return false
	}
	b.posting = true
	return true
}

// unlockAndPost releases b.mu, held, and posts an append if startLocked
// says so (after releasing it: Post may call stored at once, which takes
// it); with none in flight, it wakes flush.
func (b *chunkBuffer) unlockAndPost() {
	post := b.startLocked()
	if !b.posting && b.idle != nil {
		close(b.idle)
		b.idle = nil
	}
	b.mu.Unlock()
	if post {
		b.post()
	}
}

// post appends the buffered events; done takes the result.
func (b *chunkBuffer) post() {
	b.log.Post(context.Background(), &b.chunks, b.posted)
}

// build is the Build of the buffer's appends: the buffered events,
// provided the turn is still the open one. It may run again: the last
// call's events are the ones stored.
func (b *chunkBuffer) build(m *Meta) ([]Draft, error) {
	if m.OpenTurn == nil || m.OpenTurn.Turn != b.turn {
		return nil, errTurnGone
	}
	return b.peek(), nil
}

// done is the done function of the buffer's appends (Log.Post): res holds
// the events stored, those of the last build.
func (b *chunkBuffer) done(res *Appended, err error) {
	n := 0
	if err == nil {
		n = len(res.Events)
	}
	b.stored(n, err)
}

// stored ends the append in flight, which stored the first n events or
// failed with err, and posts the next one if chunks came meanwhile. It
// runs on the Log's commit path: it does little.
func (b *chunkBuffer) stored(n int, err error) {
	if err != nil {
		b.failed(err)
	}
	b.mu.Lock()
	if err != nil {
		b.stopped = true
	} else {
		b.dropLocked(n)
	}
	b.posting = false
	b.unlockAndPost()
}

// flush stores what is buffered and waits until no append is in flight:
// once the model is done, every chunk is then stored, or storing stopped.
// It returns the text of the deltas stored, and the room left.
func (b *chunkBuffer) flush() (string, int) {
	b.mu.Lock()
	idle := make(chan struct{})
	b.idle = idle
	b.unlockAndPost()
	<-idle
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.texts[ChunkText].String()[:b.storedText], b.room
}

// peek returns the first buffered events as drafts, made anew (the Log
// stamps them), and seals them: chunks that come later make new events.
// It returns as many as take at most MaxReplyBytes in their frames, and
// at least one: so an append holds no more than a turn_end does (in
// cluster mode, one NATS message), also when the model alternates text
// and thinking, each change making an event of its own, while a commit
// is in flight. The events stay buffered until dropped; the next append
// takes the rest.
//
// The drafts and their events are the buffer's, made again in place by
// the next peek: only the Log reads them, from the Build that returns
// them until it calls that append's done or calls Build again (then it
// stores the new ones), and the next peek runs in the next append's
// Build, which is posted after done, or in this append's Build run
// again. A Log keeps neither past done (see Append.Build), and done
// reads only how many there were.
func (b *chunkBuffer) peek() []Draft {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, total := 0, 0
	for ; n < len(b.events); n++ {
		if total += b.events[n].size + eventOverhead; n > 0 && total > MaxReplyBytes {
			break
		}
	}
	b.sealed = n
	b.evs = slices.Grow(b.evs[:0], n)[:n]
	b.drafts = slices.Grow(b.drafts[:0], n)[:n]
	for i, be := range b.events[:n] {
		ev := &b.evs[i]
		if be.action != nil {
			*ev = *be.action
		} else {
			*ev = protocol.Event{Type: eventTypes[be.kind], Turn: b.turn, Text: b.texts[be.kind].String()[be.start:be.end]}
		}
		b.drafts[i] = Draft{Event: ev, Born: be.born}
	}
	return b.drafts
}

// dropLocked removes the first n events, which a peek returned and which
// are stored now. The rest move to the front, so that the next chunks
// reuse the room. Call with b.mu held.
func (b *chunkBuffer) dropLocked(n int) {
	for _, be := range b.events[:n] {
		if be.kind == ChunkText {
			b.storedText = be.end
		}
	}
	b.events = slices.Delete(b.events, 0, n)
	b.sealed = max(0, b.sealed-n)
}

// firstChunk returns when the first chunk arrived (zero: none yet).
func (b *chunkBuffer) firstChunk() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first
}

// validJSON returns raw if it is a JSON value, raw as a JSON string if it
// is not, and nil if it is empty; a model's bad tool input must not make
// the event unstorable.
func validJSON(raw []byte) []byte {
	if len(raw) == 0 {
		return nil
	}
	if json.Valid(raw) {
		return raw
	}
	quoted, _ := json.Marshal(string(raw)) // a string always marshals
	return quoted
}

func decodeEvent(frame []byte) (*protocol.Event, error) {
	var ev protocol.Event
	if err := json.Unmarshal(frame, &ev); err != nil {
		return nil, fmt.Errorf("corrupt event: %w", err)
	}
	return &ev, nil
}

// stream calls the model and stores its chunks as they come, coalescing
// while a commit is in flight, up to *room bytes of reply and reasoning
// text, actions and tool uses (see MaxReplyBytes, toolUsesLen), which it
// takes from *room. It returns the turn_end to store (nil when the
// conversation is gone), the text stored in deltas and the tool uses the
// model asked for (none when they did not fit: the turn then ends
// max_tokens). after, when not nil, is closed once the events that
// must precede the reply's (the previous step's tool results, or the
// user message of an early turn) are stored: the model is called at once,
// and the reply stored after them; if they were not (ctx's cause is then
// errNotOpened), nothing of it is. The call takes slot first, waiting
// for its turn if the model calls in progress are at their bound, and
// gives it back once the model returns; a turn stopped while it waits
// never calls the model.
func (s *Service) stream(ctx context.Context, id, turnID string, req ModelRequest, after <-chan struct{}, room *int, slot *callSlot) (*protocol.Event, string, []ToolUse) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	buf := newChunkBuffer(s.log, id, turnID, *room, func(err error) {
		if errors.Is(err, ErrNotFound) || errors.Is(err, errTurnGone) {
			// Deleted while streaming: a user's action, not a failure.
			cancel(errDeleted)
			return
		}
		s.logger.Error("store reply chunk", "conversation", id, "turn", turnID, "err", err)
		cancel(errStorage)
	}, func() {
		s.logger.Warn("reply cut at its size limit", "conversation", id, "turn", turnID, "limit", MaxReplyBytes)
		cancel(errReplyFull)
	})
	// Once what must precede the reply is stored, the buffer stores it
	// too, unless the send did not open the turn: then nothing of the
	// reply is. That may come while the model streams: a goroutine waits
	// for it, only until then, and the model runs on this one (a
	// goroutine less for every turn in progress, whose stack each
	// collection would scan).
	opened := make(chan struct{})
	open := func() {
		buf.openTo(context.Cause(ctx) != errNotOpened)
		close(opened)
	}
	if after == nil {
		open()
	} else {
		go func() {
			<-after
			open()
		}()
	}
	var res Result
	var started time.Time
	// A take that fails stopped the turn while it waited: ctx's cause
	// says how it ends.
	err := slot.take(ctx)
	if err == nil {
		started = time.Now()
		res, err = s.model.Stream(ctx, req, buf.emit)
		slot.give()
	}
	<-opened
	text, left := buf.flush()
	uses := res.ToolUses
	if n := toolUsesLen(uses); n > left {
		// A tool_call cannot be cut: none of the step's is stored, and
		// the turn ends as a reply over the limit does (unless it ends
		// otherwise already).
		if ctx.Err() == nil {
			s.logger.Warn("tool input over the reply's size limit", "conversation", id, "turn", turnID, "limit", MaxReplyBytes)
		}
		cancel(errReplyFull)
		uses = nil
	} else {
		left -= n
	}
	*room = left
	end := &protocol.Event{Usage: &protocol.Usage{}}
	if first := buf.firstChunk(); !first.IsZero() {
		ttft := first.Sub(started)
		ms := ttft.Milliseconds()
		end.LatencyMS = &ms
		s.cfg.Metrics.FirstTokenSeconds.WithLabelValues(s.cfg.Metrics.ModelLabel(req.Model, true)).Observe(ttft.Seconds())
	}
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errDeleted), errors.Is(cause, errLeaseLost), errors.Is(cause, errNotOpened):
		// Deleted, or another gateway ends the turn, or it never opened.
		return nil, "", nil
	case errors.Is(cause, errStorage):
		// Before a model that finished: its last chunks may be the ones
		// not stored, and the reply is then incomplete.
		end.StopReason = protocol.StopError
		end.Error = protocol.AsError(ErrUnavailable)
		if err == nil {
			*end.Usage = res.Usage
		}
	case errors.Is(cause, errReplyFull):
		// Also when the model finished as its last chunk was cut: the
		// reply stored is not the whole of its answer.
		end.StopReason = protocol.StopMaxTokens
		if err == nil {
			*end.Usage = res.Usage
		}
	case err == nil:
		end.StopReason = res.StopReason
		if end.StopReason == "" {
			end.StopReason = protocol.StopEndTurn
		}
		*end.Usage = res.Usage
	case errors.Is(cause, errCancelled):
		end.StopReason = protocol.StopCancelled
	case errors.Is(cause, errShutdown):
		end.StopReason = protocol.StopInterrupted
	case errors.Is(err, ErrTooManyWaiting):
		end.StopReason = protocol.StopError
		end.Error = ErrTooManyWaiting
		s.logger.Warn("turn refused: too many turns wait for a model call", "conversation", id, "turn", turnID,
			"limit", s.cfg.MaxWaitingTurns)
	default:
		end.StopReason = protocol.StopError
		end.Error = modelError(err)
		s.logger.Warn("model failed", "conversation", id, "turn", turnID, "err", err)
	}
	return end, text, uses
}

// toolUsesLen is at least what uses take in the frames of their tool_call
// events and, for a step refused at max_steps (see refuse), of their
// tool_result events too: each use's input, and twice its id, its name
// and an event's overhead. Tool inputs share the reply's room, so that a
// step's tool_call events fit in one append, as its chunks do, and a
// model that calls tools without end grows its turn no more than one that
// writes without end.
func toolUsesLen(uses []ToolUse) int {
	n := 0
	for _, u := range uses {
		n += rawLen(toolInput(u.Input)) + 2*(protocol.TextLen(u.ID)+protocol.TextLen(u.Name)+eventOverhead)
	}
	return n
}
