package bedrock

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
)

// inMemoryBody wraps the SDK's HTTP client so that every request body is
// an in-memory reader when the transport sends it.
//
// smithy-go closes the request body as soon as the response headers
// arrive. The transport's write loop may still be finishing the request
// then: it fails the write (with io.EOF, seen with httptrace) and closes
// the connection, which kills the event stream being read ("use of closed
// network connection") or at least loses the connection for reuse. A
// server that answers right after the body arrives (loopback) or a write
// loop held up by a busy CPU hits it: without this wrapper, 200 turns
// against the local fake under -race lost their connection about 30 times
// and their stream about once. With a body read into memory first, the
// SDK's close no longer touches what the transport reads, and net/http
// writes headers and body at once. ConverseStream bodies are small JSON.
type inMemoryBody struct {
	next bedrockruntime.HTTPClient
}

// Do implements bedrockruntime.HTTPClient.
func (c inMemoryBody) Do(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return c.next.Do(req)
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("bedrock: read the request body: %w", err)
	}
	r := req.WithContext(req.Context()) // a shallow copy: the SDK keeps req
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.ContentLength = int64(len(b))
	return c.next.Do(r)
}

// withHeaderTimeout sets the response header timeout of the SDK's default
// HTTP client, which has none: without it a turn against an endpoint that
// never answers would wait until it is cancelled. A client the AWS
// configuration replaced is used as it is.
func withHeaderTimeout(c bedrockruntime.HTTPClient, d time.Duration) bedrockruntime.HTTPClient {
	b, ok := c.(*awshttp.BuildableClient)
	if !ok {
		return c
	}
	return b.WithTransportOptions(func(tr *http.Transport) { tr.ResponseHeaderTimeout = d })
}
