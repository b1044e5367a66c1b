// Package httperr writes the gateway's HTTP error bodies,
// {"error":{"code","message"}}, for every package that answers HTTP.
package httperr

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/chatgateway/gateway/protocol"
)

// Write answers with err as a JSON error body and the HTTP status of its
// code. An error that is not a *protocol.Error is unexpected: it is logged
// with its detail, and the client gets a bare "internal" 500.
func Write(w http.ResponseWriter, log *slog.Logger, err error) {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		log.Error("request failed", "err", err)
	}
	pe = protocol.AsError(err)
	if pe.RetryAfterMS > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt((pe.RetryAfterMS+999)/1000, 10))
	}
	WriteJSON(w, protocol.HTTPStatus(pe.Code), Body{Error: pe})
}

// Body is the JSON body of every HTTP error answer.
type Body struct {
	Error *protocol.Error `json:"error"`
}

// WriteJSON answers with status and v encoded as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; a failed body write means the client is gone.
	_ = json.NewEncoder(w).Encode(v)
}
