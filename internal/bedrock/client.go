package bedrock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/schemas"
	"github.com/aws/smithy-go/transport/http/protocol/restjson1"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/convo"
)

// Options configures a Client. Zero values mean the documented defaults.
type Options struct {
	// Region overrides the region of the AWS default chain (AWS_REGION,
	// the profile's region, …).
	Region string
	// Endpoint overrides the Bedrock Runtime endpoint URL (http:// is
	// fine). Without it, AWS_ENDPOINT_URL_BEDROCK_RUNTIME (or
	// AWS_ENDPOINT_URL, or the profile's endpoint_url) applies, else the
	// regional AWS endpoint.
	Endpoint string
	// MaxTokens is the default inferenceConfig.maxTokens of a turn whose
	// conversation sets none; 0 leaves it to the model.
	MaxTokens int32
	// Temperature is the default inferenceConfig.temperature; nil leaves
	// it to the model.
	Temperature *float32
	// MaxAttempts bounds the calls made for one turn when Bedrock answers
	// with a retryable error before the first chunk (default 4).
	MaxAttempts int
	// BackoffBase is the wait before the second attempt (default 250ms);
	// it doubles with every attempt, up to BackoffMax (default 4s), and is
	// jittered.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// HeaderTimeout bounds the wait for the response headers of one call
	// (default 60s): an endpoint that accepts the connection and never
	// answers fails the attempt, which is retried as a connection error,
	// so a turn against it ends model_error after at most MaxAttempts such
	// waits and their backoff. It does not bound the stream once it has
	// begun.
	HeaderTimeout time.Duration
	// IdleTimeout bounds the wait for each stream event after the headers
	// (default 5m): a stream silent for that long is closed, and fails
	// like a cut one (retried if nothing was emitted yet, else a
	// model_error). It must outlast the model's own silences, such as a
	// large tool input, which Bedrock may send in one piece when it is
	// complete.
	IdleTimeout time.Duration
	// CredentialsTimeout bounds New's check that credentials resolve
	// (default 10s; the chain may probe the EC2 instance metadata service).
	CredentialsTimeout time.Duration
	// Logger receives the client's logs (default slog.Default()).
	Logger *slog.Logger
	// TracerProvider receives a span per model call (nil: tracing is
	// off, and no span is made).
	TracerProvider trace.TracerProvider
}

// Errors New returns when the AWS default chain lacks what the client
// needs. Compare with errors.Is.
var (
	ErrNoRegion = errors.New("bedrock: no AWS region: set AWS_REGION " +
		"(or region in the AWS_PROFILE's ~/.aws/config, or the -region flag)")
	ErrNoCredentials = errors.New("bedrock: no AWS credentials: set AWS_ACCESS_KEY_ID and " +
		"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (run `aws sso login` first for an SSO profile), " +
		"or run with an IAM role (EC2 instance profile, ECS or EKS task role)")
)

// Client streams replies from Amazon Bedrock with the ConverseStream API.
// It is safe for concurrent use: every call gets its own event-stream
// codec (see Concurrency in the package doc).
type Client struct {
	rt     *bedrockruntime.Client
	region string
	opts   Options
	log    *slog.Logger
	tracer trace.Tracer
}

var _ convo.Model = (*Client)(nil)

// New loads the AWS configuration from the default chain (environment,
// shared config and credentials files, SSO, ECS and EC2 roles), applies
// opts, and checks that a region is set and that credentials resolve. It
// returns an error wrapping ErrNoRegion or ErrNoCredentials, which say
// what to set, when they are missing. It makes no call to Bedrock.
func New(ctx context.Context, opts Options) (*Client, error) {
	opts = withDefaults(opts)
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(opts.Region))
	if err != nil {
		return nil, fmt.Errorf("bedrock: load the AWS configuration (check AWS_PROFILE and ~/.aws/config): %w", err)
	}
	if cfg.Region == "" {
		return nil, ErrNoRegion
	}
	cctx, cancel := context.WithTimeout(ctx, opts.CredentialsTimeout)
	defer cancel()
	if _, err := cfg.Credentials.Retrieve(cctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCredentials, err)
	}
	rt := bedrockruntime.NewFromConfig(cfg, func(o *bedrockruntime.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		// Stream owns the retries (see retry.go): one attempt per call.
		o.RetryMaxAttempts = 1
		o.HTTPClient = inMemoryBody{next: withHeaderTimeout(o.HTTPClient, opts.HeaderTimeout)}
	})
	c := &Client{rt: rt, region: cfg.Region, opts: opts, log: opts.Logger}
	if opts.TracerProvider != nil {
		c.tracer = opts.TracerProvider.Tracer("github.com/chatgateway/gateway/internal/bedrock")
	}
	return c, nil
}

func withDefaults(o Options) Options {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 250 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 4 * time.Second
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = 60 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.CredentialsTimeout <= 0 {
		o.CredentialsTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Region is the AWS region the client calls.
func (c *Client) Region() string { return c.region }

// ownCodec gives one ConverseStream call its own protocol instance. The
// SDK's protocol holds the event-stream decoder and its payload buffer,
// and a client shares one protocol between all its calls: two streams
// decoding at once race on that buffer (go test -race reports it). A new
// protocol per call keeps one client, so the calls still share the HTTP
// transport (and its connections), the credentials cache and the clock
// skew correction. TestConcurrentStreams fails under -race without it.
func ownCodec(o *bedrockruntime.Options) {
	o.Protocol = restjson1.New(schemas.AmazonBedrockFrontendService)
}
