package jetlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict means a compare-and-set lost: the value changed since the
// revision the caller read.
var ErrConflict = errors.New("jetlog: the value changed meanwhile")

func metaKey(id string) string        { return "m." + token(id) }
func ownerKey(user, id string) string { return "o." + userToken(user) + "." + token(id) }
func ownerPrefix(user string) string  { return "o." + userToken(user) + "." }
func workKey(id string) string        { return "w." + token(id) }

// CreateMeta stores the metadata of a new conversation id owned by user,
// and indexes it under its owner. It fails with ErrExists if the
// conversation exists. It returns the metadata's revision.
func (l *Log) CreateMeta(ctx context.Context, id, user string, data []byte) (uint64, error) {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	// The index entry goes first: an entry whose metadata is missing (the
	// node died between the two writes) is skipped by Owned.
	if _, err := l.meta.Put(ctx, ownerKey(user, id), nil); err != nil {
		return 0, fmt.Errorf("jetlog: index %s: %w", id, err)
	}
	rev, err := l.meta.Create(ctx, metaKey(id), data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrExists
	}
	if err != nil {
		return 0, fmt.Errorf("jetlog: create %s: %w", id, err)
	}
	return rev, nil
}

// Meta returns conversation id's metadata and its revision, or ErrNotFound.
func (l *Log) Meta(ctx context.Context, id string) ([]byte, uint64, error) {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	e, err := l.meta.Get(ctx, metaKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("jetlog: read %s: %w", id, err)
	}
	return e.Value(), e.Revision(), nil
}

// LeaderMeta is Meta, read from the leader of the bucket's stream: any
// replica may answer Meta, one that lags behind too, where LeaderMeta
// sees every acknowledged write, a delete's purge among them.
func (l *Log) LeaderMeta(ctx context.Context, id string) ([]byte, error) {
	bucket := l.meta.Bucket()
	_, hdr, data, _, err := l.leaderMsg(ctx, "KV_"+bucket, msgGetRequest{LastFor: "$KV." + bucket + "." + metaKey(id)})
	if err != nil {
		return nil, fmt.Errorf("jetlog: read %s: %w", id, err)
	}
	// A purged key keeps a marker, without data.
	if op := hdr.Get(kvOperation); op == "DEL" || op == "PURGE" {
		return nil, fmt.Errorf("jetlog: read %s: %w", id, ErrNotFound)
	}
	return data, nil
}

// kvOperation is the header that marks a key-value bucket's deletes and
// purges.
const kvOperation = "KV-Operation"

// UpdateMeta replaces conversation id's metadata if its revision is still
// rev, and returns the new revision; otherwise it fails with ErrConflict.
func (l *Log) UpdateMeta(ctx context.Context, id string, data []byte, rev uint64) (uint64, error) {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	next, err := l.meta.Update(ctx, metaKey(id), data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrConflict
	}
	if err != nil {
		return 0, fmt.Errorf("jetlog: update %s: %w", id, err)
	}
	return next, nil
}

// Delete removes conversation id, owned by user: its metadata, its index
// entry, its pending work, then what Clear removes. The metadata goes
// first, so that appenders fail as not found at once; a delete that
// fails part-way leaves events without metadata, which a Delete again
// (the owner is in the events) or a create under the same id (Clear)
// removes.
func (l *Log) Delete(ctx context.Context, id, user string) error {
	tctx, cancel := l.reqCtx(ctx)
	defer cancel()
	if err := l.meta.Purge(tctx, metaKey(id)); err != nil {
		return fmt.Errorf("jetlog: delete %s: %w", id, err)
	}
	if err := l.meta.Purge(tctx, ownerKey(user, id)); err != nil {
		return fmt.Errorf("jetlog: delete %s: %w", id, err)
	}
	if err := l.work.Purge(tctx, workKey(id)); err != nil {
		return fmt.Errorf("jetlog: delete %s: %w", id, err)
	}
	return l.Clear(ctx, id)
}

// Clear removes the keys of conversation id's own (those under
// "c.<id>.") and every event of its.
func (l *Log) Clear(ctx context.Context, id string) error {
	own, err := l.keys(ctx, l.meta, "c."+token(id)+".")
	if err != nil {
		return err
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	for _, k := range own {
		if err := l.meta.Purge(ctx, "c."+token(id)+"."+token(k)); err != nil {
			return fmt.Errorf("jetlog: delete %s: %w", id, err)
		}
	}
	if err := l.events.Purge(ctx, jetstream.WithPurgeSubject(l.subject(id))); err != nil {
		return fmt.Errorf("jetlog: delete %s: %w", id, err)
	}
	return nil
}

// Owned returns the ids of user's conversations (in no order), including
// some whose metadata a crash left unwritten: callers skip those.
func (l *Log) Owned(ctx context.Context, user string) ([]string, error) {
	return l.keys(ctx, l.meta, ownerPrefix(user))
}

// keys lists the keys of kv that start with prefix, without it.
func (l *Log) keys(ctx context.Context, kv jetstream.KeyValue, prefix string) ([]string, error) {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	lister, err := kv.ListKeysFiltered(ctx, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("jetlog: list %s: %w", kv.Bucket(), err)
	}
	seen := map[string]bool{}
	var out []string
	for k := range lister.Keys() {
		id := untoken(strings.TrimPrefix(k, prefix))
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// MarkWork records that conversation id has turns to run, so that
// another node runs them if this one dies first.
func (l *Log) MarkWork(ctx context.Context, id string) error {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	if _, err := l.work.Put(ctx, workKey(id), nil); err != nil {
		return fmt.Errorf("jetlog: mark %s: %w", id, err)
	}
	return nil
}

// ClearWork forgets that conversation id has turns to run.
func (l *Log) ClearWork(ctx context.Context, id string) error {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	if err := l.work.Purge(ctx, workKey(id)); err != nil {
		return fmt.Errorf("jetlog: clear %s: %w", id, err)
	}
	return nil
}

// Work returns the conversations marked as having turns to run.
func (l *Log) Work(ctx context.Context) ([]string, error) {
	return l.keys(ctx, l.work, "w.")
}

// PutKey stores value under key in the metadata bucket.
func (l *Log) PutKey(ctx context.Context, key string, value []byte) error {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	if _, err := l.meta.Put(ctx, key, value); err != nil {
		return fmt.Errorf("jetlog: put %s: %w", key, err)
	}
	return nil
}

// GetKey returns the value under key in the metadata bucket, or
// ErrNotFound.
func (l *Log) GetKey(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	e, err := l.meta.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("jetlog: get %s: %w", key, err)
	}
	return e.Value(), nil
}
