package bedrock

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/chatgateway/gateway/protocol"
)

// The retry policy has one layer: the SDK's retryer is set to a single
// attempt, and Stream retries a turn whose call failed before any chunk
// was emitted, with an error that says "try again later": throttling, a
// service unavailable, a model not ready yet, an internal server error
// (as an HTTP error or as an exception at the head of the stream), a
// model stream error (such an exception too), an HTTP 429/5xx, a
// connection error, or a stream cut or stalled before its first chunk.
// One layer means one bound (Options.MaxAttempts) and one backoff for all
// of them, including the in-stream exceptions the SDK does not retry.

// retryableCodes are the AWS error codes worth another attempt, compared
// without case: HTTP errors name them in PascalCase, the service's stream
// exceptions in camelCase.
var retryableCodes = []string{
	"ThrottlingException",
	"ServiceUnavailableException",
	"ModelNotReadyException",
	"InternalServerException",
	// "A streaming error occurred. Retry your request." (HTTP 424): the
	// stream's own failure, retried like a cut stream.
	"ModelStreamErrorException",
}

func retryable(err error) bool {
	if errors.Is(err, errStreamCut) || errors.Is(err, errStreamIdle) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		for _, code := range retryableCodes {
			if strings.EqualFold(api.ErrorCode(), code) {
				return true
			}
		}
	}
	// A failure to send the request has a ResponseError with status 0.
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() != 0 {
		status := resp.HTTPStatusCode()
		return status == http.StatusTooManyRequests || status >= 500
	}
	return retry.RetryableConnectionError{}.IsErrorRetryable(err) == aws.TrueTernary
}

// backoff is the wait after the given failed attempt (from 1): base
// doubled per attempt, capped at max, with "equal jitter" (half fixed,
// half random) so that throttled turns do not retry in lockstep.
func backoff(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + rand.N(half+1)
}

// cause strips the SDK's wrappers that only say which operation failed
// and that its retryer made its single attempt.
func cause(err error) error {
	var op *smithy.OperationError
	if errors.As(err, &op) {
		err = op.Err
	}
	var max *retry.MaxAttemptsError
	if errors.As(err, &max) {
		err = max.Err
	}
	return err
}

// modelError is the model_error shown to users for a failed stream. After
// the stream started it is "<AWS error code>: <message>"; before, it names
// the model and region, with a hint for the errors a user can fix.
func (c *Client) modelError(model string, ph phase, err error) *protocol.Error {
	code, msg := "", cause(err).Error()
	var api smithy.APIError
	if errors.As(err, &api) {
		code, msg = api.ErrorCode(), api.ErrorMessage()
	}
	if ph != phaseRequest {
		if code == "" {
			return protocol.Errorf(protocol.CodeModelError, "%s", msg)
		}
		return protocol.Errorf(protocol.CodeModelError, "%s: %s", code, msg)
	}
	where := fmt.Sprintf("model %q in region %s", model, c.region)
	switch code {
	case "AccessDeniedException":
		return protocol.Errorf(protocol.CodeModelError, "access denied to %s: %s: %s (the caller needs "+
			"bedrock:InvokeModelWithResponseStream on the model or inference profile, and access to the model "+
			"enabled in the Bedrock console)", where, code, msg)
	case "ResourceNotFoundException":
		return protocol.Errorf(protocol.CodeModelError, "unknown %s: %s: %s", where, code, msg)
	case "":
		return protocol.Errorf(protocol.CodeModelError, "cannot call Bedrock for %s: %s", where, msg)
	}
	return protocol.Errorf(protocol.CodeModelError, "%s: %s: %s", where, code, msg)
}
