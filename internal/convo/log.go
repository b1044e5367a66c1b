package convo

import (
	"context"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// Log is the durable storage behind a Service: every conversation's
// metadata and its event log. The Service holds no state that the Log does
// not have; it keeps only what is live (hubs, running turns). One Log
// implementation keeps everything in a bbolt file (internal/convo/boltlog);
// another may share conversations between gateways (cluster mode).
//
// The contract, which internal/convo/logtest checks for any
// implementation:
//
//   - Seqs: a conversation's events are numbered 1, 2, 3, … with no gap and
//     no repeat, in the order the Log stored them. An Append's events get
//     consecutive seqs.
//   - Durable before visible: Append returns, calls Append.Durable, and
//     reports events as committed only once they are stored durably. Every
//     event a reader (Events, Messages, Meta) sees is durable.
//   - Compare-and-set: Append.Build sees the conversation's metadata as of
//     the end of its log, and the events it returns are stored right after
//     that end or not at all. Writers that race for one conversation are
//     serialised: a Log may call Build again with fresher metadata.
//   - Committed events: every event stored by Append is passed, once it is
//     durable, to the function given to Start, in seq order per
//     conversation and after the Append's Durable call. A Log shared by
//     several processes also reports the events other processes commit to
//     the conversations being followed (see Follow).
//
// Methods are safe for concurrent use. Errors are ErrNotFound for a
// conversation that does not exist, ErrExists, ErrClosed after Close, an
// error wrapping ErrUnavailable when storage cannot be read or written
// (nothing was stored), one wrapping ErrTooLarge when the events are more
// than the Log stores at once (nothing was stored, and nothing will be),
// a Build's own error as is, or the ctx's error for
// an Append whose ctx ended before it was taken up (nothing was stored).
type Log interface {
	// Start sets the function that receives committed events; call it
	// once, before any other method. committed is called from one
	// goroutine at a time, with events of one or more conversations in
	// commit order. It must not block, nor call the Log: the next commit
	// (or delivery) waits for it. The slice and events are the callee's.
	// The Service calls no Log method while it holds a lock that
	// committed takes, so a Log may call committed under locks of its
	// own that those methods wait for.
	Start(committed func([]Committed))

	// Append stores the events a.Build returns at the end of conversation
	// a.Conversation's log, creating the conversation first when a.New is
	// set, and returns them as stored. See Append for the details.
	Append(ctx context.Context, a *Append) (*Appended, error)

	// Post is Append without the wait: it queues a and returns, and done
	// gets what Append would have returned, once, when the append is
	// durable, refused or failed (or before Post returns, if it cannot be
	// queued). A reply's turn posts its chunks this way, so that no
	// goroutine wakes for each commit to queue the next ones. done may run
	// on the Log's commit path: it must be quick and must not block, nor
	// call the Log but to Post again.
	Post(ctx context.Context, a *Append, done func(*Appended, error))

	// Delete removes conversation id with its whole log if it belongs to
	// owner, or returns ErrNotFound, and returns the creation time of the
	// conversation it removed: one deleted and created again under id
	// since the caller last read it is told from the one the caller saw.
	// Its events are no longer reported to the committed function once
	// Delete returns.
	Delete(ctx context.Context, id, owner string) (created time.Time, err error)

	// Meta returns a copy of conversation id's metadata as of its last
	// durable event, or ErrNotFound. It does not check the owner.
	Meta(ctx context.Context, id string) (*Meta, error)

	// Events returns up to limit encoded events of conversation id with
	// after < seq ≤ upTo (upTo 0: no upper bound), in seq order: each
	// exactly the Committed.Frame the event had. ErrNotFound if the
	// conversation does not exist.
	Events(ctx context.Context, id string, after, upTo uint64, limit int) ([][]byte, error)

	// Messages returns conversation id's stored messages (the Message of
	// its message and turn_end events) with seq < before (before 0: all):
	// the newest of them, up to limit (limit ≤ 0: no limit) and, past the
	// newest, up to maxBytes of MessageBytes in all (maxBytes ≤ 0: no
	// bound); oldest first, and whether older ones remain. It holds about
	// one page of messages at once however long the conversation is.
	Messages(ctx context.Context, id string, before uint64, limit, maxBytes int) ([]protocol.Message, bool, error)

	// List returns the conversations owned by owner that come after the
	// cursor after (its zero value: from the first), in the list order
	// (most recently updated first, then by id): up to limit of them and,
	// past the first, up to maxBytes of ConversationBytes in all (maxBytes
	// ≤ 0: no bound); and whether more come after them. It holds about
	// one page of them at once however many owner has: an implementation
	// that cannot read them in that order feeds every one to a ListPage.
	List(ctx context.Context, owner string, after ListCursor, limit, maxBytes int) ([]protocol.Conversation, bool, error)

	// Unfinished returns the metadata of every conversation with an open
	// turn or pending turns: the work a restart must pick up.
	Unfinished(ctx context.Context) ([]*Meta, error)

	// Follow asks the Log to report conversation id's events with seq >
	// after to the committed function, including those other processes
	// commit, until stop is called. A Log that only this process writes
	// reports every commit anyway and may do nothing here. Events may be
	// reported more than once (the hubs skip seqs they have delivered)
	// but never out of order. created is the conversation's CreatedAt as
	// read with after (zero: it did not exist): a conversation created
	// again under a deleted one's id is another log, whose seqs start
	// again from 1, and the Log reports its events after after, not
	// the deleted one's.
	Follow(id string, after uint64, created time.Time) (stop func())

	// Close waits for the appends in progress, then releases the storage.
	// Later calls fail with ErrClosed.
	Close() error
}

// Append is one conditional append to a conversation: a compare-and-set on
// its metadata, whose new value follows from the events appended.
type Append struct {
	// Conversation is the id of the conversation to append to.
	Conversation string
	// New, when not nil, creates the conversation with this metadata (its
	// ID is Conversation) in the same commit as the events; the Log sets
	// CreatedAt and UpdatedAt. If the id is taken the append fails with
	// ErrExists. Without New, a missing conversation is ErrNotFound.
	New *Meta
	// ClientMsgID, when not empty, makes the append idempotent: if the
	// conversation already stored a message under this key, nothing is
	// stored, Build is not called and Appended.Duplicate is that message.
	// Otherwise the first event Build returns that carries a Message is
	// recorded under the key.
	ClientMsgID string
	// Build returns the events to append, given the conversation's
	// metadata as of the end of its log, or an error that refuses the
	// append (returned by Append as is; nothing is stored). The metadata
	// may be the Log's own: Build reads it, and neither modifies it nor
	// keeps it. It may return no events. The Log may call it more than once (again
	// with fresher metadata after losing a race with another writer) and
	// calls it inside its commit path: it must be quick, must not block,
	// and must not call the Log or have effects besides its result. The
	// drafts it returns, and their events, are the Log's to stamp and
	// encode until Append returns (Post: until done is called) or it
	// calls Build again, and no longer: the caller may then reuse them
	// (a turn's chunk appends do): a Log keeps none of them, nor its
	// Appended.Events, past that.
	Build func(m *Meta) ([]Draft, error)
	// Durable, when not nil, is called once with the result when the
	// events are durable, before any of them is reported as committed. It
	// must not block. The Service queues a send's ack there, so that the
	// ack reaches the sender before the message event does.
	Durable func(*Appended)
	// Deferrable marks an append that may wait: a reply's chunks, whose
	// turn sends the next ones only once these are stored. A busy Log may
	// put the other appends first and leave deferrable ones for a later
	// commit, so that a send never waits behind a flood of other
	// conversations' replies; their turns meanwhile merge the chunks that
	// keep coming into fewer, larger events. Deferrable appends keep their
	// order.
	Deferrable bool
}

// Draft is an event not stored yet: the Log fills in its Conversation,
// Seq and TS, and its Message's Seq and CreatedAt.
type Draft struct {
	Event *protocol.Event
	// Born is when the first model chunk the event carries arrived (zero
	// for events not made from chunks); see Frame.Born.
	Born time.Time
}

// Appended is the result of an Append.
type Appended struct {
	// Events are the stored events, with seq and time set, in seq order.
	Events []*protocol.Event
	// Meta is the conversation's metadata right after the append. The Log
	// may keep it (as its latest metadata, without a copy): read it, do
	// not modify it.
	Meta *Meta
	// Duplicate is the message stored earlier under Append.ClientMsgID;
	// when it is set, nothing was stored.
	Duplicate *protocol.Message
}

// Committed is one durable event, as the Log reports it to the Service.
type Committed struct {
	Conversation string
	// Type is the event's type (protocol.EventMessage, …).
	Type string
	Seq  uint64
	// Frame is the event's JSON, exactly as stored and as Events returns it.
	Frame []byte
	// Born and Durable are as in Frame; Born is zero for events of other
	// processes.
	Born, Durable time.Time
}
