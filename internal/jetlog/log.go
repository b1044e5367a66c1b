// Package jetlog keeps conversation logs in NATS JetStream, so that several
// gateways share them: one stream holds every conversation's events (one
// subject per conversation), key-value buckets hold their metadata and the
// leases of running turns.
//
// A conversation's events carry the gateway's own gapless seq in a header;
// the stream's sequence, which counts across all conversations, is only a
// position to read from. Every append names the position of the
// conversation's last event it knows of, so a writer that fell behind
// (another node wrote meanwhile) is refused instead of forking the log.
package jetlog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults for the zero values of Options.
const (
	DefaultStream   = "GATEWAY"
	DefaultLeaseTTL = 15 * time.Second
	DefaultTimeout  = 5 * time.Second
)

// Options configure a Log. Zero values mean the documented defaults.
type Options struct {
	// Stream names the stream and prefixes the buckets (default GATEWAY).
	Stream string
	// Replicas is how many servers keep each stream and bucket (default 1).
	Replicas int
	// LeaseTTL is how long a turn's lease lasts without renewal (default
	// 15s): the bound on how long a dead node's turn stays open.
	LeaseTTL time.Duration
	// Timeout bounds each request to JetStream (default 5s).
	Timeout time.Duration
}

// Errors that jetlog returns. Compare with errors.Is.
var (
	// ErrFenced means the conversation's log moved past the position an
	// append expected: another writer appended first.
	ErrFenced = errors.New("jetlog: another writer appended first")
	// ErrInFlight means the append was refused, not stored, because
	// another append to the conversation was still being stored (its
	// earlier try, or another writer's): whether the log moved past the
	// position it expected is not known yet. Trying again tells.
	ErrInFlight = errors.New("jetlog: another append to the conversation is in flight")
	// ErrDuplicate means a record with the same Record.Dedupe was stored
	// first.
	ErrDuplicate = errors.New("jetlog: stored already under its dedupe id")
	// ErrNotFound means there is no such key or event.
	ErrNotFound = errors.New("jetlog: not found")
	// ErrExists means a key to create exists already.
	ErrExists = errors.New("jetlog: exists already")
)

// Log is the conversations' storage in JetStream. Its methods are safe for
// concurrent use.
type Log struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	opts   Options
	stream string
	// events is the stream, as Open found or made it: its purges go
	// straight to the server, without asking for its info first.
	events jetstream.Stream
	// meta holds conversations' metadata (m.<id>) and the owner index
	// (o.<user>.<id>); leases, with a bucket TTL, holds running turns'
	// leases (l.<id>) and the gateways' claims of their node names
	// (n.<name>); work lists the conversations with turns to run (w.<id>).
	meta, leases, work jetstream.KeyValue
	// pub publishes records, batching concurrent ones.
	pub *publisher
}

// MinPayload is the least max_payload (the largest message) of a NATS
// server that Open accepts: nats-server's default. Each append is one
// message, and a turn_end holds the whole reply, which the Service bounds
// to fit (convo.MaxReplyBytes): a turn_end that a server refused could
// never be stored, and its turn would stay open.
const MinPayload = 1 << 20

// Open creates the stream and the buckets, or updates their settings, on
// the JetStream that nc connects to. It refuses a server whose
// max_payload is under MinPayload.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Log, error) {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if mp := nc.MaxPayload(); mp > 0 && mp < MinPayload {
		return nil, fmt.Errorf("jetlog: the NATS server allows messages of %d bytes (max_payload), the gateway needs %d at least: each event is one message, and a turn_end holds the whole reply", mp, MinPayload)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(opts.Timeout))
	if err != nil {
		return nil, fmt.Errorf("jetlog: %w", err)
	}
	l := &Log{nc: nc, js: js, opts: opts, stream: opts.Stream}
	l.pub = &publisher{l: l}
	// The stream and every bucket allow as many consumers (see
	// maxConsumers and ensureBucket).
	var consumers int
	if err := l.setup(ctx, "account limits", func(ctx context.Context) error {
		var err error
		consumers, err = l.streamMaxConsumers(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	if err := l.ensureStream(ctx, consumers); err != nil {
		return nil, err
	}
	buckets := []struct {
		kv  *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&l.meta, jetstream.KeyValueConfig{Bucket: opts.Stream + "_meta", Description: "conversation metadata and owners"}},
		// A lease that runs out leaves a marker, which watchers of the
		// bucket see (the server keeps markers for a second at least).
		{&l.leases, jetstream.KeyValueConfig{Bucket: opts.Stream + "_leases", Description: "leases of running turns, claims of node names", TTL: opts.LeaseTTL,
			LimitMarkerTTL: max(opts.LeaseTTL, time.Second)}},
		{&l.work, jetstream.KeyValueConfig{Bucket: opts.Stream + "_work", Description: "conversations with turns to run"}},
	}
	for _, b := range buckets {
		b.cfg.Replicas = opts.Replicas
		b.cfg.Storage = jetstream.FileStorage
		kv, err := l.ensureBucket(ctx, b.cfg, consumers)
		if err != nil {
			return nil, err
		}
		*b.kv = kv
	}
	return l, nil
}

// setupAttempts bounds the tries of Open to find or create the stream
// and each bucket. Several gateways starting at once race to create them,
// and a cluster that has just started may not have a leader yet: the
// losers wait and look again.
const setupAttempts = 10

// maxConsumers is the stream's limit on consumers. Each gateway follows
// each conversation its clients watch with one consumer, so the stream
// needs one per gateway and watched conversation: nats-server 2.15 and
// later limit a stream that sets no limit of its own to 1,000, which a
// cluster would reach at 1,000 conversations watched at once. An account
// that limits its consumers lower gets its own limit instead
// (streamMaxConsumers): JetStream refuses a stream that allows more.
const maxConsumers = 100_000

// ensureStream creates the stream, allowing consumers consumers, or
// updates it if its settings differ.
func (l *Log) ensureStream(ctx context.Context, consumers int) error {
	cfg := jetstream.StreamConfig{
		Name:        l.stream,
		Description: "gateway conversation events, one subject per conversation",
		Subjects:    []string{l.subjectPrefix() + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    l.opts.Replicas,
		// Direct gets let any replica answer reads, in batches.
		AllowDirect: true,
		// Concurrent appends go as one batch (nats-server 2.12 and later;
		// an older server leaves it off, and each goes alone).
		AllowAtomicPublish: true,
		MaxConsumers:       consumers,
	}
	return l.setup(ctx, "stream "+l.stream, func(ctx context.Context) error {
		s, err := l.js.Stream(ctx, l.stream)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			s, err = l.js.CreateStream(ctx, cfg)
		case err == nil:
			have := s.CachedInfo().Config
			if have.Replicas != cfg.Replicas || !have.AllowDirect || !have.AllowAtomicPublish || have.MaxConsumers != cfg.MaxConsumers ||
				len(have.Subjects) != 1 || have.Subjects[0] != cfg.Subjects[0] {
				s, err = l.js.UpdateStream(ctx, cfg)
			}
		}
		if err == nil {
			l.events = s
			l.pub.atomic = s.CachedInfo().Config.AllowAtomicPublish
		}
		return err
	})
}

// streamMaxConsumers returns the consumer limit for the stream:
// maxConsumers, or the account's limit for streams of its replicas when
// that is lower.
func (l *Log) streamMaxConsumers(ctx context.Context) (int, error) {
	ai, err := l.js.AccountInfo(ctx)
	if err != nil {
		return 0, err
	}
	limit := ai.Limits.MaxConsumers
	if t, ok := ai.Tiers[fmt.Sprintf("R%d", l.opts.Replicas)]; ok {
		limit = t.Limits.MaxConsumers
	}
	if limit > 0 && limit < maxConsumers {
		return limit, nil
	}
	return maxConsumers, nil
}

// ensureBucket opens the bucket cfg describes, creating it if it does not
// exist and updating it if its TTL, marker TTL or replicas differ. Its
// stream allows consumers consumers, as the events stream: every listing
// of its keys (a list, a delete, a restart's look for work) is a consumer
// while it runs, and with the server's default of 1,000 the 1,001st
// listing at once in the cluster would fail.
func (l *Log) ensureBucket(ctx context.Context, cfg jetstream.KeyValueConfig, consumers int) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := l.setup(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) error {
		var err error
		kv, err = l.js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = l.js.CreateKeyValue(ctx, cfg)
		}
		if err != nil {
			return err
		}
		st, err := bucketStream(ctx, kv)
		if err != nil {
			return err
		}
		if st.TTL() != cfg.TTL || st.StreamInfo().Config.Replicas != cfg.Replicas || st.LimitMarkerTTL() != cfg.LimitMarkerTTL {
			if kv, err = l.js.UpdateKeyValue(ctx, cfg); err != nil {
				return err
			}
			if st, err = bucketStream(ctx, kv); err != nil {
				return err
			}
		}
		if scfg := st.StreamInfo().Config; scfg.MaxConsumers != consumers {
			scfg.MaxConsumers = consumers
			_, err = l.js.UpdateStream(ctx, scfg)
		}
		return err
	})
	return kv, err
}

// bucketStream returns kv's status, with the settings of the stream
// behind it.
func bucketStream(ctx context.Context, kv jetstream.KeyValue) (*jetstream.KeyValueBucketStatus, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil, fmt.Errorf("bucket %s: status of type %T, not a stream's", kv.Bucket(), st)
	}
	return bs, nil
}

// setup tries do until it succeeds, setupAttempts times at most, each try
// bounded by the request timeout.
func (l *Log) setup(ctx context.Context, what string, do func(ctx context.Context) error) error {
	var err error
	for range setupAttempts {
		tctx, cancel := l.reqCtx(ctx)
		err = do(tctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		// Another gateway may be creating it, or there is no leader
		// yet: look again in a moment.
		select {
		case <-ctx.Done():
		case <-time.After(l.opts.Timeout / 10):
		}
	}
	if err != nil {
		return fmt.Errorf("jetlog: set up %s: %w", what, err)
	}
	return nil
}

// LeaseTTL is how long a lease lasts without renewal.
func (l *Log) LeaseTTL() time.Duration { return l.opts.LeaseTTL }

func (l *Log) subjectPrefix() string { return "conv." }

// subject is conversation id's subject. Ids may hold dots, which NATS
// reads as token separators; '=' is never in an id, so it stands in.
func (l *Log) subject(id string) string {
	return l.subjectPrefix() + token(id)
}

// token is id made safe as one subject token or key part.
func token(id string) string { return strings.ReplaceAll(id, ".", "=") }

// untoken undoes token.
func untoken(t string) string { return strings.ReplaceAll(t, "=", ".") }

// userToken is user made safe as one key part (user ids are free text).
func userToken(user string) string { return "u" + base64.RawURLEncoding.EncodeToString([]byte(user)) }

// reqCtx bounds one request by the configured timeout.
func (l *Log) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.opts.Timeout)
}

// wrongLast reports whether err is JetStream's "wrong last sequence"
// (10071): the subject's last message is not the one expected.
func wrongLast(err error) bool {
	return apiErrorCode(err) == jetstream.JSErrCodeStreamWrongLastSequence
}

// inFlight reports whether err is JetStream's "wrong last sequence"
// without a sequence (10164), which a replicated stream's leader answers
// while another message on the subject is proposed and not yet applied
// (nats-server's jetstream_batching.go): it cannot check the expected
// last sequence yet, and stores nothing.
func inFlight(err error) bool {
	return apiErrorCode(err) == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// apiErrorCode returns the JetStream error code of err, or 0.
func apiErrorCode(err error) jetstream.ErrorCode {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return 0
	}
	return apiErr.ErrorCode
}
