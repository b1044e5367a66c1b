package jetlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// msgGetRequest is JetStream's request for stored messages.
type msgGetRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	LastFor  string `json:"last_by_subj,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// msgGetResponse is the stream leader's answer to a msgGetRequest.
type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Seq    uint64    `json:"seq"`
		Header []byte    `json:"hdrs,omitempty"`
		Data   []byte    `json:"data,omitempty"`
		Time   time.Time `json:"time"`
	} `json:"message,omitempty"`
}

// Last returns the newest record of conversation id, or nil if it has
// none. It asks the stream's leader, so it sees every acknowledged append.
func (l *Log) Last(ctx context.Context, id string) (*Record, error) {
	rec, err := l.leaderGet(ctx, msgGetRequest{LastFor: l.subject(id)})
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return rec, err
}

// leaderGet asks the stream's leader for one message.
func (l *Log) leaderGet(ctx context.Context, req msgGetRequest) (*Record, error) {
	pos, hdr, data, t, err := l.leaderMsg(ctx, l.stream, req)
	if err != nil {
		return nil, err
	}
	return recordOf(pos, hdr, data, t)
}

// leaderMsg asks the leader of stream for one message, and returns its
// position, headers, data and time.
func (l *Log) leaderMsg(ctx context.Context, stream string, req msgGetRequest) (uint64, nats.Header, []byte, time.Time, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, nil, nil, time.Time{}, err
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	reply, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, body)
	if err != nil {
		return 0, nil, nil, time.Time{}, fmt.Errorf("jetlog: get message: %w", err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return 0, nil, nil, time.Time{}, fmt.Errorf("jetlog: get message: bad reply: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return 0, nil, nil, time.Time{}, ErrNotFound
		}
		return 0, nil, nil, time.Time{}, fmt.Errorf("jetlog: get message: %w", resp.Error)
	}
	if resp.Message == nil {
		return 0, nil, nil, time.Time{}, fmt.Errorf("jetlog: get message: empty reply")
	}
	hdr, err := nats.DecodeHeadersMsg(resp.Message.Header)
	if err != nil {
		return 0, nil, nil, time.Time{}, fmt.Errorf("jetlog: get message %d: %w", resp.Message.Seq, err)
	}
	return resp.Message.Seq, hdr, resp.Message.Data, resp.Message.Time, nil
}

// Newer reports whether conversation id has a record after position
// pos, asking the stream's leader. When it has none the answer is a few
// bytes; when it has, the leader sends the first such record whole.
func (l *Log) Newer(ctx context.Context, id string, pos uint64) (bool, error) {
	_, err := l.leaderGet(ctx, msgGetRequest{Seq: pos + 1, NextFor: l.subject(id)})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// readBytes bounds the bytes of the records one Read returns (past the
// first). Without it the server sends up to its max_pending (64 MiB by
// default) per read, whatever the caller needs: a replay of 16 events of
// a conversation of long replies held tens of MiB at once, and took
// longer than the request timeout, so that it failed every time.
const readBytes = 1 << 20

// Read returns up to limit records of conversation id from position from
// on (in seq order), stopping after position upTo (0: no bound), and
// fewer once they hold readBytes (at least one): a caller that wants more
// reads again from after the last. Any replica may answer, and a replica
// may lag behind the leader: a caller that knows a record exists must
// read again if it is missing.
func (l *Log) Read(ctx context.Context, id string, from, upTo uint64, limit int) ([]*Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	// The server bounds by position (up_to_seq) only a batch of
	// subjects' last records, not this one: the records past upTo are
	// dropped here.
	body, err := json.Marshal(msgGetRequest{Seq: max(from, 1), NextFor: l.subject(id), Batch: limit, MaxBytes: readBytes})
	if err != nil {
		return nil, err
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	for tries := 1; ; tries++ {
		recs, err := l.directGet(ctx, id, body)
		// No server answers direct gets for a moment after the stream
		// is created or changes leader: try again.
		if !errors.Is(err, nats.ErrNoResponders) || tries == noResponderTries {
			if upTo > 0 {
				recs = slices.DeleteFunc(recs, func(r *Record) bool { return r.Pos > upTo })
			}
			return recs, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("jetlog: read %s: %w", id, err)
		case <-time.After(noResponderWait):
		}
	}
}

// purged reports whether the stream's leader has none of conversation
// id's records from position from to upTo, which a read found before:
// the conversation was deleted since (its subject purged), and maybe
// created again (its records are then after upTo).
func (l *Log) purged(ctx context.Context, id string, from, upTo uint64) (bool, error) {
	rec, err := l.leaderGet(ctx, msgGetRequest{Seq: from, NextFor: l.subject(id)})
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return rec.Pos > upTo, nil
}

// Tries of a read that no server answers.
const (
	noResponderTries = 50
	noResponderWait  = 20 * time.Millisecond
)

// directGet sends one batched direct get and collects its answers, on
// an inbox of its own: one under the connection's response inbox (where
// the answers to its requests come) would match that subscription too,
// and the server would send every record twice.
func (l *Log) directGet(ctx context.Context, id string, body []byte) ([]*Record, error) {
	inbox := l.nc.NewInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("jetlog: read %s: %w", id, err)
	}
	defer sub.Unsubscribe()
	if err := l.nc.PublishRequest("$JS.API.DIRECT.GET."+l.stream, inbox, body); err != nil {
		return nil, fmt.Errorf("jetlog: read %s: %w", id, err)
	}
	var out []*Record
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("jetlog: read %s: %w", id, err)
		}
		switch msg.Header.Get("Status") {
		case "":
		case "204": // end of the batch
			return out, nil
		case "404": // nothing at or after from
			return out, nil
		default:
			return nil, fmt.Errorf("jetlog: read %s: status %s %s", id, msg.Header.Get("Status"), msg.Header.Get("Description"))
		}
		pos, err := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("jetlog: read %s: bad %s header", id, jetstream.SequenceHeader)
		}
		t, _ := time.Parse(time.RFC3339Nano, msg.Header.Get(jetstream.TimeStampHeaer))
		rec, err := recordOf(pos, msg.Header, msg.Data, t)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
}

// Locate returns the position of the record that holds event seq of
// conversation id, or ErrNotFound. It searches the stream by position, a
// few requests to the leader in all, when last (the conversation's newest
// record, if the caller has it) does not hold seq.
func (l *Log) Locate(ctx context.Context, id string, seq uint64, last *Record) (uint64, error) {
	if last == nil {
		var err error
		if last, err = l.Last(ctx, id); err != nil {
			return 0, err
		}
	}
	if last == nil {
		return 0, fmt.Errorf("%w: conversation %s has no seq %d", ErrNotFound, id, seq)
	}
	return l.locate(ctx, id, seq, headOfRecord(last))
}

// locate is Locate, given the head of the conversation's newest record.
func (l *Log) locate(ctx context.Context, id string, seq uint64, last head) (uint64, error) {
	if seq == 0 || seq > last.last {
		return 0, fmt.Errorf("%w: conversation %s has no seq %d", ErrNotFound, id, seq)
	}
	if seq >= last.seq {
		return last.pos, nil
	}
	// Seqs grow with positions: find the first position whose next record
	// of the subject ends at or after seq.
	lo, hi := uint64(1), last.pos
	for lo < hi {
		mid := lo + (hi-lo)/2
		rec, err := l.leaderGet(ctx, msgGetRequest{Seq: mid, NextFor: l.subject(id)})
		if err != nil {
			return 0, err
		}
		switch {
		case rec.Seq <= seq && seq <= rec.Last():
			return rec.Pos, nil
		case rec.Seq > seq:
			hi = min(mid, rec.Pos)
		default:
			lo = rec.Pos + 1
		}
	}
	return 0, fmt.Errorf("jetlog: conversation %s: seq %d is missing", id, seq)
}
