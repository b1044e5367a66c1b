package conntest

import (
	"testing"

	"github.com/chatgateway/gateway/internal/spec"
)

// The recorder: every frame a Client reads and every request it sends,
// and every HTTP answer Do gets, is checked against protocol/asyncapi.yaml
// and protocol/openapi.yaml, so that the end-to-end tests keep the
// documents true.

// checkFrame checks data with check, a method of the loaded spec.
func checkFrame(check func(*spec.Spec, []byte) error, data []byte) error {
	s, err := spec.Load()
	if err != nil {
		return err
	}
	return check(s, data)
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
