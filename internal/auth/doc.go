// Package auth names the caller of an HTTP request or WebSocket upgrade.
//
// The gateway asks one hook, func(*http.Request) (Caller, error), for the
// caller of every request: a user id and the token's claims. None returns
// the hook for "-auth none": every caller is the same implicit local user,
// with no claims, so anyone who can reach the port owns every conversation.
// It is meant for a gateway listening on loopback. For "-auth jwt" the hook
// is the Caller method of a JWT made by NewJWT: the caller presents a JSON
// Web Token, its "sub" claim is the user id and its claims come along.
//
// # What a JWT protects
//
//   - Only the algorithms the configuration allows are accepted: HS256 when
//     a shared secret is set, RS256 and ES256 when a JWKS supplies public
//     keys, picked by the token's "kid" (a token without one only when the
//     set has a single key of its algorithm). "alg": "none" and algorithm
//     confusion (an HS256 token "signed" with an RSA public key) fail.
//   - "exp" is required; "exp", "nbf" and "iat" are checked (with a small
//     configurable leeway), and "iss" and "aud" when configured.
//   - A rejected token gets 401 with a code of "unauthorized" and a short
//     reason; the token itself is never logged or echoed.
//   - Throttle bounds the failures of each client address: once it has
//     spent its budget, its requests get 429 "rate_limited" before any
//     signature is checked, so a flood of bad tokens cannot take the CPU.
//   - Conversations belong to the "sub" that created them; the gateway
//     answers not_found to other users rather than revealing that a
//     conversation exists.
//
// # What it does not protect
//
//   - Transport: tokens are bearer secrets. Without TLS termination in
//     front of the gateway anyone on the path can replay them.
//   - Browsers cannot set headers on a WebSocket upgrade, so they pass the
//     token in the "token" query parameter, and query strings may land in
//     proxy and access logs. Use short-lived tokens (minutes), and prefer
//     the Authorization header wherever the client can set it.
//   - Revocation: a valid token stays valid until it expires; there is no
//     deny list. A connection authenticated by a token stays open after
//     the token expires.
//   - Authorization beyond ownership: any valid "sub" may create
//     conversations and use any configured model. Only agents restrict
//     their users, by the token's claims (Caller.Claims), which the
//     transports put in each request's context (CallerFrom).
package auth
