package protocol_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// TestHTTPStatus pins the status of every error code; PROTOCOL.md lists it.
func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]int{
		protocol.CodeBadRequest:           400,
		protocol.CodeUnknownType:          400,
		protocol.CodeUnauthorized:         401,
		protocol.CodeForbidden:            403,
		protocol.CodeNotFound:             404,
		protocol.CodeMethodNotAllowed:     405,
		protocol.CodeTooLarge:             413,
		protocol.CodeUnsupportedMediaType: 415,
		protocol.CodeRateLimited:          429,
		protocol.CodeModelError:           502,
		protocol.CodeBusy:                 503,
		protocol.CodeUnavailable:          503,
		protocol.CodeInternal:             500,
		"no_such_code":                    500,
	} {
		t.Run(code, func(t *testing.T) {
			if got := protocol.HTTPStatus(code); got != want {
				t.Errorf("HTTPStatus(%q) = %d, want %d", code, got, want)
			}
		})
	}
}

func TestAsError(t *testing.T) {
	t.Parallel()
	notFound := protocol.Errorf(protocol.CodeNotFound, "conversation %s not found", "c1")
	for _, tc := range []struct {
		name string
		err  error
		want protocol.Error
	}{
		{"itself", notFound, *notFound},
		{"wrapped", fmt.Errorf("subscribe: %w", notFound), *notFound},
		{"anything else is internal and says nothing", errors.New("bolt: disk I/O error at /var/db"),
			protocol.Error{Code: protocol.CodeInternal, Message: "internal error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := protocol.AsError(tc.err); *got != tc.want {
				t.Errorf("AsError(%v) = %+v, want %+v", tc.err, *got, tc.want)
			}
		})
	}
	if got := notFound.Error(); got != "not_found: conversation c1 not found" {
		t.Errorf("Error() = %q", got)
	}
}

func TestEncodeRequestRefusesNil(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  protocol.Request
	}{
		{"nil interface", nil},
		{"nil *Send", (*protocol.Send)(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if frame, err := protocol.EncodeRequest(tc.req); err == nil {
				t.Errorf("EncodeRequest = %s, want an error", frame)
			}
		})
	}
}
