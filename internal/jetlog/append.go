package jetlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Headers of a record's message.
const (
	// hdrSeq is the seq of the record's first event.
	hdrSeq = "Gw-Seq"
	// hdrCount is how many events the record holds, when more than one.
	hdrCount = "Gw-Count"
	// hdrMeta is the conversation's metadata after the record.
	hdrMeta = "Gw-Meta"
	// hdrID is the record's unique id, by which a writer recognises its
	// own record after an append whose answer it did not get.
	hdrID = "Gw-Id"
)

// Record is one append to a conversation: one or more consecutive events,
// stored as one message, so that they are stored together or not at all.
type Record struct {
	// ID identifies the record; Append sets it if it is empty. An append
	// tried again with the same ID after an error is stored at most once.
	ID string
	// Dedupe, when not empty, makes JetStream store at most one record
	// under it within the stream's duplicate window (two minutes), whoever
	// writes it: a second one fails with ErrDuplicate.
	Dedupe string
	// Seq is the seq of the first event; the others follow without gaps.
	Seq uint64
	// Pos is the record's position in the stream, which counts across
	// every conversation (set by the Log).
	Pos uint64
	// Frames are the events as stored (the JSON frames clients get).
	Frames [][]byte
	// Meta is the conversation's metadata after these events, as the
	// writer encoded it (a header: it must not hold CR or LF).
	Meta []byte
	// Time is when the stream stored the record (set by the Log).
	Time time.Time
}

// Last is the seq of the record's last event.
func (r *Record) Last() uint64 { return r.Seq + uint64(len(r.Frames)) - 1 }

// Append stores rec in conversation id's log, on condition that the
// conversation's newest record is at position prev (0: it has none). It
// returns once JetStream has acknowledged it (stored it on a quorum of
// replicas, fsynced where the server is set to), with its position. It
// fails with ErrFenced if another record was stored after prev meanwhile:
// the caller must read what it missed before it tries again; with
// ErrInFlight, rec not stored, if another append to the conversation
// (maybe an earlier try of rec) was still being stored; with
// ErrDuplicate, and the position of the record stored first, if another
// record with rec.Dedupe was stored within the window. When an
// append fails otherwise (a timeout, a lost connection), the record may
// or may not be stored: trying the same rec again tells which.
func (l *Log) Append(ctx context.Context, id string, rec *Record, prev uint64) (uint64, error) {
	if rec.ID == "" {
		rec.ID = nuid.Next()
	}
	msg := nats.NewMsg(l.subject(id))
	if len(rec.Frames) == 1 {
		msg.Data = rec.Frames[0]
	} else {
		// A JSON array of the frames, which are JSON objects.
		msg.Data = append(append([]byte{'['}, bytes.Join(rec.Frames, []byte{','})...), ']')
		msg.Header.Set(hdrCount, strconv.Itoa(len(rec.Frames)))
	}
	msg.Header.Set(hdrSeq, strconv.FormatUint(rec.Seq, 10))
	msg.Header.Set(hdrID, rec.ID)
	if len(rec.Meta) > 0 {
		msg.Header.Set(hdrMeta, string(rec.Meta))
	}
	if rec.Dedupe != "" {
		msg.Header.Set(jetstream.MsgIDHeader, rec.Dedupe)
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(prev, 10))
	ack, err := l.pub.publish(ctx, msg)
	if inFlight(err) {
		// An earlier try of this record may be the one in flight: then
		// the next try finds it stored, and returns its position.
		return 0, fmt.Errorf("%w: conversation %s, seq %d after position %d", ErrInFlight, id, rec.Seq, prev)
	}
	if wrongLast(err) {
		// An earlier try of this record may have been stored without its
		// answer reaching us: then it is the record right after prev. A
		// read that fails (an election after a server stopped, say) does
		// not tell: the append may have been stored, and trying it again
		// tells, as for any other failure. Only another record there
		// fences it.
		next, gerr := l.leaderGet(ctx, msgGetRequest{Seq: prev + 1, NextFor: l.subject(id)})
		switch {
		case gerr == nil && next.ID == rec.ID:
			return next.Pos, nil
		case gerr != nil && !errors.Is(gerr, ErrNotFound):
			return 0, fmt.Errorf("jetlog: append to %s: a try of it may be stored, and reading it failed: %w", id, gerr)
		}
		return 0, fmt.Errorf("%w: conversation %s, seq %d after position %d", ErrFenced, id, rec.Seq, prev)
	}
	if err != nil {
		return 0, fmt.Errorf("jetlog: append to %s: %w", id, err)
	}
	if ack.Duplicate {
		// It may be this record, stored by an earlier try.
		if first, gerr := l.At(ctx, ack.Sequence); gerr == nil && first.ID == rec.ID {
			return ack.Sequence, nil
		}
		return ack.Sequence, fmt.Errorf("%w: conversation %s, at position %d", ErrDuplicate, id, ack.Sequence)
	}
	return ack.Sequence, nil
}

// At returns the record at position pos, from the stream's leader.
func (l *Log) At(ctx context.Context, pos uint64) (*Record, error) {
	return l.leaderGet(ctx, msgGetRequest{Seq: pos})
}

// recordOf decodes a stored message of the stream.
func recordOf(pos uint64, hdr nats.Header, data []byte, t time.Time) (*Record, error) {
	seq, err := strconv.ParseUint(hdr.Get(hdrSeq), 10, 64)
	if err != nil || seq == 0 {
		return nil, fmt.Errorf("jetlog: message at position %d has no valid %s header", pos, hdrSeq)
	}
	rec := &Record{ID: hdr.Get(hdrID), Seq: seq, Pos: pos, Time: t}
	if m := hdr.Get(hdrMeta); m != "" {
		rec.Meta = []byte(m)
	}
	if hdr.Get(hdrCount) == "" {
		rec.Frames = [][]byte{data}
		return rec, nil
	}
	n, err := strconv.Atoi(hdr.Get(hdrCount))
	var frames []json.RawMessage
	if err == nil {
		err = json.Unmarshal(data, &frames)
	}
	if err != nil || n < 1 || len(frames) != n || seq+uint64(n)-1 < seq {
		return nil, fmt.Errorf("jetlog: message at position %d: not %s events from seq %d", pos, hdr.Get(hdrCount), seq)
	}
	rec.Frames = make([][]byte, len(frames))
	for i, f := range frames {
		rec.Frames[i] = f
	}
	return rec, nil
}
