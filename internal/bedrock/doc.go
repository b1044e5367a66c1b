// Package bedrock implements convo.Model with the Amazon Bedrock Runtime
// ConverseStream API, through the AWS SDK for Go v2.
//
// # Credentials and region
//
// New loads the AWS default chain (config.LoadDefaultConfig): environment
// variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// AWS_REGION), the shared config and credentials files with AWS_PROFILE
// (including SSO profiles after `aws sso login`), web identity, and the
// ECS/EKS task role or EC2 instance profile. Options.Region overrides the
// chain's region. New fails with ErrNoRegion when no region is set (the SDK
// itself would sign for an empty region and get 403s), and with
// ErrNoCredentials when the chain finds no credentials within
// Options.CredentialsTimeout; off EC2, set AWS_EC2_METADATA_DISABLED=true
// to skip the instance metadata probe.
//
// # Permissions and model access
//
// The caller needs bedrock:InvokeModelWithResponseStream on the model's
// foundation-model ARN, or on the inference profile ARN and the
// foundation models it routes to, and access to the model granted in the
// Bedrock console for the account and region. Model ids are passed as
// they are: base model ids ("anthropic.claude-3-5-haiku-20241022-v1:0"),
// inference profile ids ("us.anthropic…") and ARNs all work. Access
// denied and unknown model errors name the model and region.
//
// # Endpoint
//
// Options.Endpoint (BaseEndpoint) overrides the endpoint; without it the
// SDK honours AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL and the
// profile's endpoint_url (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true turns
// those off), then the regional endpoint. Package fakebedrock is a local
// endpoint for tests.
//
// # Requests
//
// A turn's system prompt becomes System (omitted when blank) and its
// history becomes Messages, shaped as the service requires (roles
// alternate, first and last are user, no blank text): replies with no
// text (failed or cancelled turns) are skipped, consecutive messages of one
// role are joined with a blank line, partial replies with text are kept,
// and assistant messages before the first user message or after the last
// are dropped. The model id goes in ModelId as it is. InferenceConfig carries the conversation's max tokens and
// temperature, else Options.MaxTokens and Options.Temperature, else
// nothing (the model's defaults).
//
// # Tools
//
// ModelRequest.Tools become toolConfig (schemas sent as decoded JSON
// values, numbers exact: the SDK encodes a document by reflection, so a
// json.RawMessage would go out as an array of bytes). An agent's earlier
// steps are replayed exactly: an assistant message's text, then its
// toolUse blocks (an input that is not a JSON object, as when the model
// sent broken JSON, goes as {}; a name outside ^[a-zA-Z0-9_-]{1,64}$, as
// when the model called a tool it was not given, goes with its other
// characters made "_" and cut at 64), and the next user message starts
// with one toolResult per tool use, in their order (an object output as json, any
// other as text, never blank; an error as status error with its message;
// a use without a result gets an error result). toolConfig is sent
// whenever the history holds tool blocks, declaring with an open schema
// any tool used there that Tools lacks (the service refuses tool blocks
// without it).
//
// # Replies
//
// Text deltas become ChunkText and reasoning text ChunkThinking. Tool use
// blocks are assembled from their streamed fragments ({} when a tool
// without arguments streams none) and returned in Result.ToolUses, in
// order, with messageStop's stop reason and metadata's usage. Bedrock's own metadata.metrics.latencyMs (the service-side
// duration of the call) is only logged at debug level: turn_end.latency_ms
// is measured by convo, as the time from the start of the turn to its
// first chunk, so it includes the network path to Bedrock and any retries.
//
// # Errors and retries
//
// Retries have one layer, this package's: the SDK's retryer makes a single
// attempt. A call that fails before any chunk was emitted with throttling,
// service unavailable, model not ready, an internal server error (as an
// HTTP error or an exception at the head of the stream), a model stream
// error (such an exception too), an HTTP 429 or 5xx, a connection error,
// or a stream cut short or stalled (no event for Options.IdleTimeout) is
// retried up to Options.MaxAttempts calls in all,
// waiting BackoffBase, then twice as long each time up to BackoffMax,
// jittered (half fixed, half random).
// Once a chunk was emitted nothing is retried (the user has seen it): an
// exception in the stream, a dropped connection or a stall returns a
// *protocol.Error model_error "<AWS error code>: <message>", and convo ends
// the turn with stop reason "error", keeping the partial text. When the
// turn's context is done the HTTP stream is closed at once and the error
// wraps ctx.Err().
//
// # Concurrency
//
// A Client serves any number of concurrent turns over one HTTP transport.
// Each ConverseStream call gets its own event-stream codec, because the SDK
// shares one between all calls of a client, and concurrent streams race
// on it. Each request body is read into memory before it is sent, because
// the SDK closes it when the response headers arrive, which can make
// net/http close the connection of the stream being read.
package bedrock
