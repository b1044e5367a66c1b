package loadtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/pause"
)

// baselineResult holds the limits the gateway's figures are compared with.
type baselineResult struct {
	// commit is bare bbolt commits one after another, in the same
	// directory as the gateway's files; paced the same one pacing apart
	// (the chunk delay: how a lone stream's commits come).
	commit, paced bareCommits
	pacing        time.Duration
	// twoFiles is bare commits back to back to two files at once, one
	// writer each: whether a second bbolt file (a second writer) would
	// commit more.
	twoFiles bareCommits
	// firstEvent and wholeStream are the time from a direct SDK
	// ConverseStream call to the fake Bedrock to its first event and to the
	// end of its stream.
	firstEvent, wholeStream summary
	// frames is bare WebSocket frames to as many clients as the largest
	// streams step has conversations.
	frames  bareFrames
	elapsed time.Duration
	cut     bool
	// pipes are the streams step at the largest C against the bare
	// pipelines (see barePipe), each with its own time cap, or the error
	// that ended it, in the order of barePipeVariants.
	pipes []stepResult[streamsResult]
}

// baseline measures the bare limits, each bounded by count and by
// cfg.Duration.
func (r *runner) baseline(parent context.Context) (baselineResult, error) {
	var res baselineResult
	ctx, cancel := context.WithTimeout(parent, r.cfg.Duration)
	defer cancel()
	start := time.Now()
	var err error
	if res.commit, err = r.bareCommits(ctx, r.cfg.Commits, 0, 1); err != nil {
		return res, err
	}
	if res.twoFiles, err = r.bareCommits(ctx, r.cfg.Commits, 0, 2); err != nil {
		return res, err
	}
	if res.pacing = r.cfg.ChunkDelay; res.pacing > 0 {
		if res.paced, err = r.bareCommits(ctx, r.cfg.PacedCommits, res.pacing, 1); err != nil {
			return res, err
		}
	}
	first, whole, err := r.fakeBedrockCalls(ctx)
	if err != nil {
		return res, err
	}
	res.firstEvent, res.wholeStream = summarize(first), summarize(whole)
	if res.frames, err = r.bareFrameRun(ctx, slices.Max(r.cfg.Conversations), r.cfg.Chunks*r.cfg.Turns); err != nil {
		return res, err
	}
	res.elapsed, res.cut = time.Since(start), ctx.Err() != nil
	for _, v := range barePipeVariants {
		pipe, err := r.streams(parent, slices.Max(r.cfg.Conversations), r.model, func(m *stampModel) (*target, error) {
			return startBarePipe(r.dir, m, v)
		})
		pipe.server = v.name()
		res.pipes = append(res.pipes, stepOf(pipe, err))
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// pipeVariant is what a bare pipeline does (see barePipe): store or not,
// speak the protocol or not, and how it lays out what it stores.
type pipeVariant struct {
	store, proto bool
	layout       pipeLayout
}

// pipeLayout is how a bare pipeline keys what it stores.
type pipeLayout int

const (
	// globalLayout keys every record by one global sequence.
	globalLayout pipeLayout = iota
	// byConversation keys each record by its conversation and seq.
	byConversation
	// throughTail keys the records of a turn in progress by one global
	// sequence (a tail), and moves them under their conversation and seq
	// when the turn ends, as the gateway's first layout did.
	throughTail
	// throughIndex keys every record by one global sequence, and when a
	// turn ends stores one index record under its conversation and first
	// seq that lists where the turn's records are, as the gateway's log
	// does.
	throughIndex
)

// name is how the report names the pipeline.
func (v pipeVariant) name() string {
	name := "bare pipeline"
	if v.proto {
		name += ", protocol events"
	}
	if !v.store {
		name += ", nothing stored"
	}
	switch v.layout {
	case byConversation:
		name += ", by conversation"
	case throughTail:
		name += ", by conversation through a tail"
	case throughIndex:
		name += ", by conversation through an index"
	}
	return name
}

// barePipeVariants are the bare pipelines the baseline runs, in this order.
var barePipeVariants = []pipeVariant{{store: true}, {store: true, proto: true}, {}, {proto: true}, {store: true, proto: true, layout: byConversation}, {store: true, proto: true, layout: throughTail}, {store: true, proto: true, layout: throughIndex}}

// bareCommits is the latency of bare bbolt commits, how many were made
// per second, and the bytes each wrote to storage.
type bareCommits struct {
	latency   summary
	perSecond float64
	written   float64
}

// bareCommits times n bbolt transactions that each put one 8-byte key
// with a 64-byte value, waiting gap before each, spread over as many new
// files in r.dir as files says, each with its own writer goroutine.
func (r *runner) bareCommits(ctx context.Context, n int, gap time.Duration, files int) (bareCommits, error) {
	var res bareCommits
	times := make([][]time.Duration, files)
	errs := make([]error, files)
	written := storageWritten()
	start := time.Now()
	var wg sync.WaitGroup
	for f := range files {
		wg.Go(func() {
			path := filepath.Join(r.dir, fmt.Sprintf("bare%d.db", f))
			times[f], errs[f] = BareCommits(ctx, path, (n+f)/files, gap)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	all := slices.Concat(times...)
	res.latency = summarize(all)
	if len(all) > 0 {
		res.perSecond = float64(len(all)) / elapsed.Seconds()
		res.written = float64(storageWritten()-written) / float64(len(all))
	}
	return res, nil
}

// BareCommits times n bare commits (one small put each, gap apart) to a
// new bbolt file at path, opened with the gateway's options, and removes
// it: what a durable append costs on that disk without the gateway.
func BareCommits(ctx context.Context, path string, n int, gap time.Duration) ([]time.Duration, error) {
	db, err := bolt.Open(path, 0o600, boltlog.BoltOptions(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("loadtest: open %s: %w", path, err)
	}
	defer os.Remove(path)
	defer db.Close()
	bucket, value := []byte("events"), make([]byte, 64)
	out := make([]time.Duration, 0, n)
	for i := range n {
		if pause.For(ctx, gap) != nil {
			break
		}
		key := binary.BigEndian.AppendUint64(nil, uint64(i)+1)
		start := time.Now()
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			return b.Put(key, value)
		})
		if err != nil {
			return nil, fmt.Errorf("loadtest: bare commit: %w", err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// fakeBedrockCalls makes cfg.BedrockCalls ConverseStream calls, one after
// another, with the AWS SDK to a local fake Bedrock that streams
// cfg.Chunks text chunks, and times each call's first event and end.
func (r *runner) fakeBedrockCalls(ctx context.Context) (first, whole []time.Duration, err error) {
	chunks := make([]string, r.cfg.Chunks)
	for i := range chunks {
		chunks[i] = stamp(time.Now(), i)
	}
	fake := fakebedrock.New(fakebedrock.Always(fakebedrock.Reply{Chunks: chunks}))
	defer fake.Close()
	rt := bedrockruntime.New(bedrockruntime.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(fake.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDLOADTEST", SecretAccessKey: "secret", Source: "loadtest"}, nil
		}),
		RetryMaxAttempts: 1,
		HTTPClient:       bufferedBody{http.DefaultClient},
	})
	in := &bedrockruntime.ConverseStreamInput{
		ModelId: aws.String("loadtest"),
		Messages: []types.Message{{
			Role:    types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "load test"}},
		}},
	}
	for range r.cfg.BedrockCalls {
		if ctx.Err() != nil {
			break
		}
		f, w, err := converseOnce(ctx, rt, in)
		if err != nil {
			return nil, nil, err
		}
		first, whole = append(first, f), append(whole, w)
	}
	return first, whole, nil
}

// bufferedBody sends each request with its body read into memory first,
// as internal/bedrock does (see its httpclient.go): smithy-go closes the
// body when the response headers arrive, and over loopback the fake can
// answer while net/http still writes the body, which kills the stream.
type bufferedBody struct{ next bedrockruntime.HTTPClient }

// Do implements bedrockruntime.HTTPClient.
func (c bufferedBody) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, fmt.Errorf("loadtest: request body: %w", err)
		}
		req = req.Clone(req.Context())
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	}
	return c.next.Do(req)
}

func converseOnce(ctx context.Context, rt *bedrockruntime.Client, in *bedrockruntime.ConverseStreamInput) (first, whole time.Duration, err error) {
	start := time.Now()
	out, err := rt.ConverseStream(ctx, in)
	if err != nil {
		return 0, 0, fmt.Errorf("loadtest: fake bedrock: %w", err)
	}
	es := out.GetStream()
	defer es.Close()
	for range es.Events() {
		if first == 0 {
			first = time.Since(start)
		}
	}
	if err := es.Err(); err != nil {
		return 0, 0, fmt.Errorf("loadtest: fake bedrock stream: %w", err)
	}
	return first, time.Since(start), nil
}
