// Package protocol is the gateway's wire contract, version 1.1: the JSON frames
// a client sends over GET /v1/ws, the replies and conversation events the
// gateway sends back, and the error codes both use. It imports only the
// standard library so that Go clients can import it.
//
// Every frame is one JSON object in one WebSocket text frame. Field names are
// snake_case; unknown fields are ignored. A request may carry an "id" (at most
// 64 bytes) that the reply, or the error, repeats.
//
// Use DecodeClientFrame to turn a client frame into a typed request; the
// gateway uses it, and it is fuzzed. PROTOCOL.md at the repository root
// describes the contract for people, with a wscat example per request.
package protocol
