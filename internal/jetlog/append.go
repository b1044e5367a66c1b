package jetlog

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of an event's message.
const (
	// hdrSeq is the event's seq in its conversation.
	hdrSeq = "Gw-Seq"
	// hdrClientMsgID is the client_msg_id a user message was sent with.
	hdrClientMsgID = "Gw-Cmid"
)

// Entry is one stored event of a conversation.
type Entry struct {
	// Seq is the event's seq in its conversation: 1, 2, 3, … without gaps.
	Seq uint64
	// Pos is the event's position in the stream, which counts across
	// every conversation.
	Pos uint64
	// Data is the event as stored (the JSON frame clients get).
	Data []byte
	// ClientMsgID is the client_msg_id of a user message, if it had one.
	ClientMsgID string
	// Time is when the stream stored the event.
	Time time.Time
}

// Append stores data as event seq of conversation id, on condition that
// the conversation's newest event is at position prev (0: it has none).
// It returns once JetStream has acknowledged the event (stored it on a
// quorum of replicas, fsynced where the server is set to), with the
// event's position. It fails with ErrFenced if another event was stored
// after prev meanwhile: the caller must read what it missed before it
// tries again.
func (l *Log) Append(ctx context.Context, id string, seq, prev uint64, data []byte, clientMsgID string) (uint64, error) {
	msg := nats.NewMsg(l.subject(id))
	msg.Data = data
	msg.Header.Set(hdrSeq, strconv.FormatUint(seq, 10))
	if clientMsgID != "" {
		msg.Header.Set(hdrClientMsgID, clientMsgID)
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	ack, err := l.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(prev), jetstream.WithExpectStream(l.stream))
	if wrongLast(err) {
		return 0, fmt.Errorf("%w: conversation %s, seq %d after position %d", ErrFenced, id, seq, prev)
	}
	if err != nil {
		return 0, fmt.Errorf("jetlog: append to %s: %w", id, err)
	}
	return ack.Sequence, nil
}

// entryOf decodes a stored message of the stream.
func entryOf(pos uint64, hdr nats.Header, data []byte, t time.Time) (Entry, error) {
	seq, err := strconv.ParseUint(hdr.Get(hdrSeq), 10, 64)
	if err != nil || seq == 0 {
		return Entry{}, fmt.Errorf("jetlog: message at position %d has no valid %s header", pos, hdrSeq)
	}
	return Entry{Seq: seq, Pos: pos, Data: data, ClientMsgID: hdr.Get(hdrClientMsgID), Time: t}, nil
}
