package conntest

import (
	"testing"

	"github.com/chatgateway/gateway/internal/spec"
)

// The recorder: every frame a Client reads and every request it sends,
// every frame the connections of a test gateway carry (wiretap.go), and
// every HTTP answer Do gets, is checked against protocol/asyncapi.yaml
// and protocol/openapi.yaml, so that the end-to-end tests keep the
// documents true.

// checkFrame checks data, sent by a client if fromClient, else by the
// gateway, unless the same frame passed before.
func checkFrame(fromClient bool, data []byte) error {
	k := keyOf(fromClient, data)
	if _, ok := checked.Load(k); ok {
		return nil
	}
	s, err := spec.Load()
	if err != nil {
		return err
	}
	check := s.ServerFrame
	if fromClient {
		check = s.ClientFrame
	}
	if err := check(data); err != nil {
		return err
	}
	checked.Store(k, struct{}{})
	return nil
}

// CheckHTTP fails t when x does not match protocol/openapi.yaml. Tests
// that make HTTP requests without Do call it with what they sent and got.
func CheckHTTP(t testing.TB, x spec.Exchange) {
	t.Helper()
	s, err := spec.Load()
	if err == nil {
		err = s.HTTP(x)
	}
	if err != nil {
		t.Error(err)
	}
}
