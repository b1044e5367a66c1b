package conn

import (
	"net/http"
	"strings"

	"github.com/chatgateway/gateway/internal/cork"
	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/protocol"
)

// refusalWriter is the ResponseWriter handed to websocket.Accept. Accept
// answers a request it refuses (not an upgrade, a foreign origin, a bad
// handshake) in plain text; refusalWriter keeps that answer back, so that
// the handler sends the gateway's JSON error instead, as for every other
// refusal. Accept's text quotes the request's headers in full (Origin,
// Host, Connection, …, up to net/http's 1 MiB), so only the part that
// refusal repeats is kept of it.
type refusalWriter struct {
	*cork.Response
	// status and text are the refusal Accept wrote, if any.
	status int
	text   limits.EchoWriter
}

// WriteHeader implements http.ResponseWriter: 101 goes through, anything
// else is kept back.
func (w *refusalWriter) WriteHeader(status int) {
	if status == http.StatusSwitchingProtocols {
		w.Response.WriteHeader(status)
		return
	}
	w.status = status
}

// Write implements http.ResponseWriter.
func (w *refusalWriter) Write(p []byte) (int, error) {
	if w.status != 0 {
		return w.text.Write(p)
	}
	return w.Response.Write(p)
}

// refusal is the error to answer once Accept has refused the request:
// the code that fits the status Accept chose, with Accept's message cut
// as limits.Echo cuts (a cut one's size counts the line end Accept
// wrote).
func (w *refusalWriter) refusal() error {
	msg := strings.TrimSpace(w.text.String())
	// Accept's own headers describe its plain-text body.
	w.Header().Del("Content-Type")
	switch w.status {
	case http.StatusForbidden:
		return protocol.Errorf(protocol.CodeForbidden, "%s", msg)
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodGet)
		return protocol.Errorf(protocol.CodeMethodNotAllowed, "%s", msg)
	}
	return protocol.Errorf(protocol.CodeBadRequest, "%s", msg)
}
