package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jsonobj"
	"github.com/chatgateway/gateway/protocol"
)

// readObject reads r's body, at most MaxBodyBytes, and checks that it is
// one JSON object; an empty body is an empty object. It returns the
// object without white space around it.
func (a *api) readObject(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, a.opts.MaxBodyBytes+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "body: not received within %v", a.opts.BodyTimeout)
	}
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "body: %v", err)
	}
	if int64(len(body)) > a.opts.MaxBodyBytes {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "body: over the limit of %d bytes", a.opts.MaxBodyBytes)
	}
	if !utf8.Valid(body) {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "body: invalid UTF-8")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return []byte("{}"), nil
	}
	// Into nothing, only to check the syntax: that allocates nothing,
	// however many fields the body has.
	if body[0] != '{' || json.Unmarshal(body, new(struct{})) != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "body: must be one JSON object")
	}
	return body, nil
}

// bodyDeadline gives a request with a body BodyTimeout to deliver it,
// every request, not only those whose route reads the body: net/http
// reads up to 256 KiB of a body the handler left unread before it sends
// the answer (a refusal, say), and without a deadline a client that
// trickles it would hold the connection for as long as it likes. net/http
// clears the deadline once the body has been read (its background read,
// which notices a client that goes away, must not time out) and before
// it reads the next request.
func (a *api) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.opts.BodyTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// decodeRequest decodes r's body as a client frame of type typ for
// conversation (when not empty), so that the HTTP API validates exactly as
// the WebSocket does, with the same messages naming the bad field. set
// holds more string fields that the path gives (a call id). The frame is
// the body with those fields appended, which override the body's own (a
// frame's later field wins), and an id of null, which drops the body's.
func (a *api) decodeRequest(r *http.Request, typ, conversation string, set ...string) (protocol.Request, error) {
	body, err := a.readObject(r)
	if err != nil {
		return nil, err
	}
	set = append(set, "type", typ)
	if conversation != "" {
		set = append(set, "conversation", conversation)
	}
	// The body, without its closing brace, then the fields.
	frame := bytes.TrimRight(body[:len(body)-1], " \t\r\n")
	if len(frame) > 1 {
		frame = append(frame, ',')
	}
	frame = append(frame, `"id":null`...)
	for i := 0; i+1 < len(set); i += 2 {
		// Strings always marshal.
		name, _ := json.Marshal(set[i])
		value, _ := json.Marshal(set[i+1])
		frame = append(append(append(append(frame, ','), name...), ':'), value...)
	}
	req, _, err := protocol.DecodeClientFrame(append(frame, '}'))
	return req, err
}

// actionFields are the fields of an action's body; the others are
// ignored.
var actionFields = map[string]struct{}{"name": {}, "turn": {}, "input": {}, "output": {}}

// decodeAction decodes the body of POST …/actions: name (required), input,
// output (any JSON) and turn.
func (a *api) decodeAction(r *http.Request) (convo.Action, error) {
	body, err := a.readObject(r)
	if err != nil {
		return convo.Action{}, err
	}
	obj := jsonobj.Fields(body, actionFields)
	act := convo.Action{Input: obj["input"], Output: obj["output"]}
	if err := decodeString(obj, "name", &act.Name); err != nil {
		return act, err
	}
	if act.Name == "" {
		return act, protocol.Errorf(protocol.CodeBadRequest, "name: required")
	}
	return act, decodeString(obj, "turn", &act.Turn)
}

// decodeString sets *dst to obj[field] when it is present.
func decodeString(obj map[string]json.RawMessage, field string, dst *string) error {
	raw, ok := obj[field]
	if !ok || string(raw) == "null" {
		return nil
	}
	if json.Unmarshal(raw, dst) != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "%s: must be a string", field)
	}
	return nil
}

// query parses r's query. One that does not parse is refused, not read
// in part: a parameter dropped would change the answer unseen.
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "query: %v", err)
	}
	return q, nil
}

// queryUint parses the query parameter name as a non-negative integer; an
// absent one is 0.
func queryUint(q url.Values, name string) (uint64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, notUint(name)
	}
	return n, nil
}

// queryTime parses the query parameter name, an RFC 3339 time as in the
// JSON; absent is the zero time.
func queryTime(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := protocol.ParseTimestamp(s)
	if err != nil {
		return time.Time{}, protocol.Errorf(protocol.CodeBadRequest, "%s: %v", name, err)
	}
	return t, nil
}

// queryLimit parses the query parameter "limit": absent or 0 means def,
// more than max means max, also beyond uint64, as a limit in a WebSocket
// frame does.
func queryLimit(q url.Values, def, max int) (int, error) {
	s := q.Get("limit")
	n, err := strconv.ParseUint(s, 10, 64)
	switch {
	case s == "" || err == nil && n == 0:
		return def, nil
	case errors.Is(err, strconv.ErrRange) || err == nil && n > uint64(max):
		return max, nil
	case err != nil:
		return 0, notUint("limit")
	}
	return int(n), nil
}

// notUint is the error for a query parameter that is not a non-negative
// integer.
func notUint(name string) error {
	return protocol.Errorf(protocol.CodeBadRequest, "%s: must be a non-negative integer", name)
}
