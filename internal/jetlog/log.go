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
	// meta holds conversations' metadata (m.<id>) and the owner index
	// (o.<user>.<id>); leases holds running turns' leases (bucket TTL);
	// work lists the conversations with turns to run (w.<id>).
	meta, leases, work jetstream.KeyValue
}

// Open creates the stream and the buckets, or updates their settings, on
// the JetStream that nc connects to.
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
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(opts.Timeout))
	if err != nil {
		return nil, fmt.Errorf("jetlog: %w", err)
	}
	l := &Log{nc: nc, js: js, opts: opts, stream: opts.Stream}
	ctx, cancel := context.WithTimeout(ctx, 4*opts.Timeout)
	defer cancel()
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        opts.Stream,
		Description: "gateway conversation events, one subject per conversation",
		Subjects:    []string{l.subjectPrefix() + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		// Direct gets let any replica answer reads, in batches.
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("jetlog: create stream %s: %w", opts.Stream, err)
	}
	buckets := []struct {
		kv  *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&l.meta, jetstream.KeyValueConfig{Bucket: opts.Stream + "_meta", Description: "conversation metadata and owners"}},
		{&l.leases, jetstream.KeyValueConfig{Bucket: opts.Stream + "_leases", Description: "leases of running turns", TTL: opts.LeaseTTL}},
		{&l.work, jetstream.KeyValueConfig{Bucket: opts.Stream + "_work", Description: "conversations with turns to run"}},
	}
	for _, b := range buckets {
		b.cfg.Replicas = opts.Replicas
		b.cfg.Storage = jetstream.FileStorage
		kv, err := js.CreateOrUpdateKeyValue(ctx, b.cfg)
		if err != nil {
			return nil, fmt.Errorf("jetlog: create bucket %s: %w", b.cfg.Bucket, err)
		}
		*b.kv = kv
	}
	return l, nil
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

// wrongLast reports whether err is JetStream's "wrong last sequence":
// 10071, or 10164 from a replicated stream.
func wrongLast(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
