package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chatgateway/gateway/client"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/demo"
	"github.com/chatgateway/gateway/protocol"
)

// fast reconnects quickly, so that tests do not wait on backoff.
var fast = client.Options{MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}

// dial connects a client to url, closed when the test ends. The test
// gateway (conntest.Start) checks every frame it sends and receives
// against protocol/asyncapi.yaml.
func dial(t *testing.T, url string, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(conntest.Deadline(t), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startTurn creates conversation, subscribes to it from its start and
// sends it a message.
func startTurn(t *testing.T, c *client.Client, conversation string) *client.Subscription {
	t.Helper()
	ctx := conntest.Deadline(t)
	if _, err := c.Create(ctx, protocol.Create{Conversation: conversation}); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, conversation, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, conversation, "hello"); err != nil {
		t.Fatal(err)
	}
	return sub
}

// readTurn reads events until a turn_end and returns them all.
func readTurn(t *testing.T, sub *client.Subscription) []protocol.Event {
	t.Helper()
	var evs []protocol.Event
	for {
		ev, err := sub.Next(conntest.Deadline(t))
		if err != nil {
			t.Fatalf("after %d events: %v", len(evs), err)
		}
		evs = append(evs, ev)
		if ev.Type == protocol.EventTurnEnd {
			return evs
		}
	}
}

// readUntilText reads events until the delta texts hold want.
func readUntilText(t *testing.T, sub *client.Subscription, want string) []protocol.Event {
	t.Helper()
	var evs []protocol.Event
	var text strings.Builder
	for !strings.Contains(text.String(), want) {
		ev, err := sub.Next(conntest.Deadline(t))
		if err != nil {
			t.Fatalf("after %d events: %v", len(evs), err)
		}
		evs = append(evs, ev)
		if ev.Type == protocol.EventDelta {
			text.WriteString(ev.Text)
		}
	}
	return evs
}

// checkLog checks that got is the conversation's stored log from seq 1
// on, event for event: nothing missing, nothing twice, in order.
func checkLog(t *testing.T, base, conversation string, got []protocol.Event) {
	t.Helper()
	stored := storedLog(t, base, conversation)
	if len(got) != len(stored) {
		t.Fatalf("got %d events (first seqs %v), the log has %d", len(got), seqs(got[:min(len(got), 20)]), len(stored))
	}
	for i := range got {
		if got[i].Seq != uint64(i+1) || got[i].Seq != stored[i].Seq || got[i].Type != stored[i].Type || got[i].Text != stored[i].Text {
			t.Fatalf("event %d: got seq %d %s %q, stored seq %d %s %q", i, got[i].Seq, got[i].Type, got[i].Text,
				stored[i].Seq, stored[i].Type, stored[i].Text)
		}
	}
}

// storedLog reads the conversation's whole log over HTTP, page by page.
func storedLog(t *testing.T, base, conversation string) []protocol.Event {
	t.Helper()
	var all []protocol.Event
	for {
		url := fmt.Sprintf("%s/v1/conversations/%s/events?after=%d&limit=1000", base, conversation, uint64(len(all)))
		status, body := conntest.Do(t, http.MethodGet, url, "")
		if status != http.StatusOK {
			t.Fatalf("events: %d %s", status, body)
		}
		var page []protocol.Event
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
	}
}

func seqs(evs []protocol.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

// TestRequests runs every request against a real gateway.
func TestRequests(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{})
	c := dial(t, srv.URL, fast)
	ctx := conntest.Deadline(t)

	conv, err := c.Create(ctx, protocol.Create{Conversation: "trip", Title: "Trip", System: "Be brief."})
	if err != nil || conv.ID != "trip" || conv.Title != "Trip" {
		t.Fatalf("Create: %+v, %v", conv, err)
	}
	sub, err := c.Subscribe(ctx, "trip", 0)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := c.Send(ctx, "trip", "hello")
	if err != nil || ack.Message.Seq != 1 || ack.Conversation != "trip" {
		t.Fatalf("Send: %+v, %v", ack, err)
	}
	evs := readTurn(t, sub)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopEndTurn || end.Message == nil {
		t.Fatalf("turn_end %+v", end)
	}
	checkLog(t, srv.URL, "trip", evs)

	h, err := c.History(ctx, "trip", 0, 10)
	if err != nil || len(h.Messages) != 2 || h.Messages[0].Text != "hello" {
		t.Fatalf("History: %+v, %v", h, err)
	}
	list, err := c.List(ctx, "", 0)
	if err != nil || len(list.Conversations) != 1 || list.Conversations[0].ID != "trip" || list.Next != "" {
		t.Fatalf("List: %+v, %v", list, err)
	}
	if err := c.Cancel(ctx, "trip"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	// A request whose context is done is not sent: this Send stores
	// nothing. (The gateway serves a connection's requests in order, so
	// once the Ping is answered a Send written before it is stored.)
	done, cancel := context.WithCancel(ctx)
	cancel()
	if ack, err := c.Send(done, "trip", "never"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a cancelled context: %+v, %v; want context.Canceled", ack, err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if h, err := c.History(ctx, "trip", 0, 10); err != nil || len(h.Messages) != 2 {
		t.Fatalf("History after a cancelled Send: %+v, %v; want the 2 messages before it", h, err)
	}
	var perr *protocol.Error
	if _, err := c.Send(ctx, "nope", "hi"); !errors.As(err, &perr) || perr.Code != protocol.CodeNotFound {
		t.Fatalf("Send to an unknown conversation: %v, want not_found", err)
	}
	if _, err := c.Subscribe(ctx, "nope", 0); !errors.As(err, &perr) || perr.Code != protocol.CodeNotFound {
		t.Fatalf("Subscribe to an unknown conversation: %v, want not_found", err)
	}
	if err := c.Delete(ctx, "trip"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if ev, err := sub.Next(ctx); !errors.Is(err, client.ErrDeleted) {
		t.Fatalf("Next after Delete: %+v, %v; want ErrDeleted", ev, err)
	}
}

// TestListPages reads the caller's conversations a page at a time, with
// List and Next and with the Conversations loop: each one once, in the
// order of the whole list.
func TestListPages(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{})
	c := dial(t, srv.URL, fast)
	ctx := conntest.Deadline(t)
	for i := range 5 {
		if _, err := c.Create(ctx, protocol.Create{Conversation: fmt.Sprintf("c%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	whole, err := c.List(ctx, "", 0)
	if err != nil || len(whole.Conversations) != 5 || whole.Next != "" {
		t.Fatalf("List of all: %+v, %v", whole, err)
	}
	want := ids(whole.Conversations)

	var paged []string
	var sizes []int
	before := ""
	for range 5 { // a bound, in case Next never ends
		page, err := c.List(ctx, before, 2)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, ids(page.Conversations)...)
		sizes = append(sizes, len(page.Conversations))
		if before = page.Next; before == "" {
			break
		}
	}
	if !slices.Equal(paged, want) || !slices.Equal(sizes, []int{2, 2, 1}) {
		t.Fatalf("List by 2: %v in pages of %v, want %v in pages of [2 2 1]", paged, sizes, want)
	}

	var looped []string
	for conv, err := range c.Conversations(ctx, 2) {
		if err != nil {
			t.Fatal(err)
		}
		if looped = append(looped, conv.ID); len(looped) > 10 {
			break
		}
	}
	if !slices.Equal(looped, want) {
		t.Fatalf("Conversations(2): %v, want %v", looped, want)
	}
	var first []string
	for conv := range c.Conversations(ctx, 2) {
		if first = append(first, conv.ID); len(first) == 3 {
			break
		}
	}
	if !slices.Equal(first, want[:3]) {
		t.Fatalf("Conversations(2), stopped after 3: %v, want %v", first, want[:3])
	}

	var perr *protocol.Error
	if _, err := c.List(ctx, "not a next", 2); !errors.As(err, &perr) || perr.Code != protocol.CodeBadRequest {
		t.Fatalf("List with a made-up before: %v, want bad_request", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	var errs []error
	for _, err := range c.Conversations(cancelled, 2) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("Conversations with a cancelled context yielded %v, want context.Canceled once", errs)
	}
}

func ids(list []protocol.Conversation) []string {
	out := make([]string, len(list))
	for i, c := range list {
		out[i] = c.ID
	}
	return out
}

// TestResumeAfterDrop cuts the connection in the middle of a reply: the
// subscriber still sees every event once, in order.
func TestResumeAfterDrop(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	srv := conntest.Start(t, conntest.Config{Model: conntest.GatedModel{Gate: gate}})
	p := newProxy(t, srv.URL)
	c := dial(t, p.URL(), fast)
	sub := startTurn(t, c, "c")
	evs := readUntilText(t, sub, "a4")
	p.drop()
	close(gate)
	evs = append(evs, readTurn(t, sub)...)
	checkLog(t, srv.URL, "c", evs)
	if n := p.connections(); n < 2 {
		t.Fatalf("%d connections through the proxy, want a reconnection", n)
	}
}

// TestResumeAcrossRestart stops the gateway in the middle of a reply and
// starts it again on the same file and address: the subscriber sees the
// turn end "interrupted", then the next turn, every event once, in order.
func TestResumeAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{Model: conntest.GatedModel{Gate: make(chan struct{})}})
	p := newProxy(t, srv.URL)
	c := dial(t, p.URL(), fast)
	ctx := conntest.Deadline(t)
	sub := startTurn(t, c, "c")
	evs := readUntilText(t, sub, "a4")
	srv.Close(t)
	srv2 := conntest.Start(t, conntest.Config{Path: srv.Path})
	p.setBackend(srv2.URL)

	evs = append(evs, readTurn(t, sub)...)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopInterrupted {
		t.Fatalf("first turn ended %q, want interrupted", end.StopReason)
	}
	if _, err := c.Send(ctx, "c", "again"); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, readTurn(t, sub)...)
	checkLog(t, srv2.URL, "c", evs)
}

// TestSlowReader stops reading a subscription with a small buffer while
// a long reply streams: the client drops what does not fit instead
// of stalling the connection, so the gateway sees no slow consumer, and
// the subscriber, reading again once the turn has ended, still sees every
// event once, in order.
func TestSlowReader(t *testing.T) {
	t.Parallel()
	// Far more frames than the gateway's queue and the socket buffers
	// hold, with a queue that leaves a reader (the watcher's too) some
	// slack on a busy machine: 8 frames did not.
	long := strings.Repeat("word ", 1000)
	srv := conntest.Start(t, conntest.Config{
		Model:      demo.New(demo.Options{WordDelay: 200 * time.Microsecond, Reply: func(convo.ModelRequest) string { return long }}),
		Conn:       conn.Options{SendQueue: 32},
		SendBuffer: 4096,
	})
	opts := fast
	opts.Buffer = 16
	opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: smallReadBuffer(4096)}}
	var connects atomic.Int32
	opts.OnConnect = func() { connects.Add(1) }
	c := dial(t, srv.URL, opts)
	sub := startTurn(t, c, "c")
	watcher := srv.Dial(t, "conversation=c")
	watcher.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	evs := readTurn(t, sub)
	checkLog(t, srv.URL, "c", evs)
	if n := connects.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// TestSendRetriedOnce loses the ack of a send: the client sends it again
// on the next connection, and the gateway stores it once.
func TestSendRetriedOnce(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{})
	p := newProxy(t, srv.URL)
	c := dial(t, p.URL(), fast)
	ctx := conntest.Deadline(t)
	if _, err := c.Create(ctx, protocol.Create{Conversation: "c"}); err != nil {
		t.Fatal(err)
	}
	watcher := srv.Dial(t, "conversation=c")
	watcher.ReadUntil(conntest.IsType(protocol.ReplySubscribed))

	p.silence()
	type result struct {
		ack *protocol.Ack
		err error
	}
	done := make(chan result, 1)
	go func() {
		ack, err := c.Send(ctx, "c", "hello")
		done <- result{ack, err}
	}()
	stored := watcher.ReadUntil(conntest.IsType(protocol.EventMessage))
	p.drop()
	r := <-done
	if r.err != nil {
		t.Fatalf("Send: %v", r.err)
	}
	if want := stored[len(stored)-1].Seq; r.ack.Message.Seq != want {
		t.Fatalf("ack of seq %d, want the stored message's %d", r.ack.Message.Seq, want)
	}
	watcher.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	h, err := c.History(ctx, "c", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 2 {
		t.Fatalf("history %+v, want the message once and its reply", h.Messages)
	}
}

// TestToken asks TokenFunc for a token on every connection.
func TestToken(t *testing.T) {
	t.Parallel()
	user := conntest.JWTUser(t)
	srv := conntest.Start(t, conntest.Config{Conn: conn.Options{User: user}})
	p := newProxy(t, srv.URL)

	var perr *protocol.Error
	if _, err := client.Dial(conntest.Deadline(t), p.URL(), fast); !errors.As(err, &perr) || perr.Code != protocol.CodeUnauthorized {
		t.Fatalf("Dial without a token: %v, want unauthorized", err)
	}
	var calls atomic.Int32
	opts := fast
	opts.TokenFunc = func(context.Context) (string, error) {
		calls.Add(1)
		return conntest.Token(t, "alice"), nil
	}
	c := dial(t, p.URL(), opts)
	ctx := conntest.Deadline(t)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	p.drop()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n < 2 {
		t.Fatalf("TokenFunc called %d times, want once per connection", n)
	}
}

// smallReadBuffer dials with a small kernel receive buffer, so that a
// client that stops reading stalls the gateway quickly.
func smallReadBuffer(size int) conntest.Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(size)
		}
		return c, err
	}
}

// TestSilentGatewayDropped stops everything the gateway sends, as a dead
// peer or network would: the client's pings go unanswered, it drops the
// connection and makes a new one, and a request in flight gets its reply
// there.
func TestSilentGatewayDropped(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{})
	p := newProxy(t, srv.URL)
	opts := fast
	opts.PingInterval = 50 * time.Millisecond
	c := dial(t, p.URL(), opts)
	ctx := conntest.Deadline(t)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	p.silence()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping on a silent connection: %v", err)
	}
	if n := p.connections(); n < 2 {
		t.Fatalf("%d connections through the proxy, want a reconnection", n)
	}
}

// TestLongOutage keeps the gateway unreachable for dozens of reconnection
// attempts with waits of minutes (in a synctest bubble, so no real time
// passes): once the doubling wait would overflow a time.Duration, the
// client still waits at most MaxBackoff and tries again, and when the
// gateway is back it reconnects.
func TestLongOutage(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{})
	p := newProxy(t, srv.URL) // outside the bubble: it does real network I/O
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close() // a port that refuses connections
	synctest.Test(t, func(t *testing.T) {
		failed := make(chan struct{})
		connected := make(chan struct{}, 1)
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		c, err := client.Dial(context.Background(), p.URL(), client.Options{
			MinBackoff: time.Minute, MaxBackoff: time.Hour,
			HTTPClient:   &http.Client{Transport: tr},
			OnDisconnect: func(error) { failed <- struct{}{} },
			OnConnect:    func() { connected <- struct{}{} },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		<-connected
		p.setBackend(closed.Addr().String())
		p.drop()
		for range 40 { // the drop, then 39 failed attempts
			<-failed
		}
		p.setBackend(srv.URL)
		<-connected
		if err := c.Ping(context.Background()); err != nil {
			t.Fatalf("Ping after the outage: %v", err)
		}
	})
}

// TestSendBeforeResubscribe sends a message on a new connection before
// the client has subscribed it again to a conversation whose reply went
// on while it was away. The gateway follows a sending connection from
// the live edge, so the new message's events come before the replay of
// the ones missed; the subscriber still sees every event once, in order.
func TestSendBeforeResubscribe(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	srv := conntest.Start(t, conntest.Config{Model: conntest.GatedModel{Gate: gate}})
	p := newProxy(t, srv.URL)
	ctx := conntest.Deadline(t)
	// OnConnect runs before the resubscriptions start: holding it, the
	// second connection resubscribes only once the Send on it is stored,
	// as when the scheduler runs the Send's goroutine first.
	opts, _, release := holdReconnect(ctx)
	c := dial(t, p.URL(), opts)
	sub := startTurn(t, c, "c")
	evs := readUntilText(t, sub, "a4")
	watcher := srv.Dial(t, "conversation=c")
	watcher.ReadUntil(conntest.IsType(protocol.ReplySubscribed))

	p.drop()
	close(gate)
	watcher.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	sent := make(chan error, 1)
	go func() {
		_, err := c.Send(ctx, "c", "again")
		sent <- err
	}()
	watcher.ReadUntil(conntest.IsType(protocol.EventMessage))
	close(release)
	if err := <-sent; err != nil {
		t.Fatalf("Send: %v", err)
	}
	ends := watcher.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	last := ends[len(ends)-1].Seq
	for evs[len(evs)-1].Seq < last {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after seqs %v: %v", seqs(evs), err)
		}
		evs = append(evs, ev)
	}
	checkLog(t, srv.URL, "c", evs)
}

// TestSendsBeyondMaxSubscriptions sends to more conversations than a
// connection may follow, without subscribing to them: the gateway
// follows a sending connection to the conversation, but the client,
// which has no Subscription for it, does not keep that up, so every Send
// succeeds.
func TestSendsBeyondMaxSubscriptions(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{Conn: conn.Options{MaxSubscriptions: 2}})
	c := dial(t, srv.URL, fast)
	ctx := conntest.Deadline(t)
	sub := startTurn(t, c, "followed")
	for i := range 3 {
		if _, err := c.Send(ctx, "", fmt.Sprintf("new conversation %d", i)); err != nil {
			t.Fatalf("Send %d to a new conversation: %v", i, err)
		}
	}
	if _, err := c.Create(ctx, protocol.Create{Conversation: "other"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Send(ctx, "other", fmt.Sprintf("message %d", i)); err != nil {
			t.Fatalf("Send %d to a conversation not followed: %v", i, err)
		}
	}
	// The followed conversation still streams.
	evs := readTurn(t, sub)
	if _, err := c.Send(ctx, "followed", "again"); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, readTurn(t, sub)...)
	checkLog(t, srv.URL, "followed", evs)
}

// TestResubscribeBusy makes the gateway answer a resubscription busy: a
// send on the new connection, written before it, takes the one
// subscription the connection may have. The error is temporary: the
// subscription is not ended but subscribed again once there is room, and
// still sees every event once, in order.
func TestResubscribeBusy(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{Conn: conn.Options{MaxSubscriptions: 1}})
	p := newProxy(t, srv.URL)
	ctx := conntest.Deadline(t)
	// OnConnect runs before the resubscriptions start: holding it, the
	// second connection resubscribes only once the gateway has stored
	// the Send on it, and so follows its conversation.
	opts, _, release := holdReconnect(ctx)
	c := dial(t, p.URL(), opts)
	if _, err := c.Create(ctx, protocol.Create{Conversation: "other"}); err != nil {
		t.Fatal(err)
	}
	sub := startTurn(t, c, "c")
	evs := readTurn(t, sub)
	watcher := srv.Dial(t, "conversation=other")
	watcher.ReadUntil(conntest.IsType(protocol.ReplySubscribed))

	p.drop()
	sent := make(chan error, 1)
	go func() {
		_, err := c.Send(ctx, "other", "hi")
		sent <- err
	}()
	watcher.ReadUntil(conntest.IsType(protocol.EventMessage))
	close(release)
	if err := <-sent; err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := c.Send(ctx, "c", "again"); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, readTurn(t, sub)...)
	checkLog(t, srv.URL, "c", evs)
}

// TestDeletedWhileAway deletes a followed conversation while the client
// is disconnected, and maybe creates another under its id, shorter or
// longer than what the subscription saw: once back, the subscription ends
// with ErrDeleted wrapping the gateway's not_found, as when the deletion
// happens while it is connected. The resubscription sends the created_at
// of the first subscribed reply: without it, a longer new conversation
// would be resumed from the old one's last seq, its first events silently
// missed.
func TestDeletedWhileAway(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		recreate bool
		// more is how many events the new conversation has beyond
		// the old one's last seq (0: it has none).
		more int
	}{
		{"deleted", false, 0},
		{"recreated shorter", true, 0},
		{"recreated longer", true, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := conntest.Start(t, conntest.Config{})
			p := newProxy(t, srv.URL)
			c := dial(t, p.URL(), fast)
			ctx := conntest.Deadline(t)
			sub := startTurn(t, c, "c")
			seen := readTurn(t, sub)

			p.setBackend("127.0.0.1:1") // nothing listens there: reconnections fail
			p.drop()
			other := dial(t, srv.URL, fast)
			if err := other.Delete(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			if tt.recreate {
				if _, err := other.Create(ctx, protocol.Create{Conversation: "c"}); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; tt.more > 0 && i < len(seen)+tt.more; i++ {
				if status, body := conntest.Do(t, http.MethodPost, srv.URL+"/v1/conversations/c/actions", `{"name":"step"}`); status != http.StatusCreated {
					t.Fatalf("action: %d %s", status, body)
				}
			}
			p.setBackend(srv.URL)
			var perr *protocol.Error
			if ev, err := sub.Next(ctx); !errors.Is(err, client.ErrDeleted) || !errors.As(err, &perr) || perr.Code != protocol.CodeNotFound {
				t.Fatalf("Next after a delete while away: %+v, %v; want ErrDeleted and not_found", ev, err)
			}
		})
	}
}

// TestSendDuringLongReplay subscribes with a small buffer to a
// conversation with a long log, and sends to it before reading a single
// event: the replay overflows the buffer, yet the Send gets its ack, and
// the subscriber then still sees every event once, in order.
func TestSendDuringLongReplay(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 6000)
	srv := conntest.Start(t, conntest.Config{
		Model:      demo.New(demo.Options{WordDelay: -1, Reply: func(convo.ModelRequest) string { return long }}),
		Conn:       conn.Options{SendQueue: 8},
		SendBuffer: 4096,
	})
	ctx := conntest.Deadline(t)
	writer := dial(t, srv.URL, fast)
	readTurn(t, startTurn(t, writer, "c"))

	opts := fast
	opts.Buffer = 4
	opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: smallReadBuffer(4096)}}
	c := dial(t, srv.URL, opts)
	sub, err := c.Subscribe(ctx, "c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, "c", "again"); err != nil {
		t.Fatalf("Send during the replay: %v", err)
	}
	evs := readTurn(t, sub)
	evs = append(evs, readTurn(t, sub)...)
	checkLog(t, srv.URL, "c", evs)
}

// TestSubscribeCancelledAfterSent ends a Subscribe's context once its
// frame is written, before the reply is read: the gateway, which took the
// subscribe, must not go on following the conversation for nobody.
func TestSubscribeCancelledAfterSent(t *testing.T) {
	t.Parallel()
	checkUnfollowed(t, "Subscribe", func(ctx context.Context, c *client.Client) error {
		_, err := c.Subscribe(ctx, "a", 0)
		return err
	})
}

// TestSendCancelledAfterSent ends a Send's context once its frame is
// written, before the ack is read: the gateway, which stored the message
// and so follows the conversation on that connection, must not go on
// following it for nobody.
func TestSendCancelledAfterSent(t *testing.T) {
	t.Parallel()
	checkUnfollowed(t, "Send", func(ctx context.Context, c *client.Client) error {
		_, err := c.Send(ctx, "a", "hello")
		return err
	})
}

// TestCreatingSendCancelledAfterSent is TestSendCancelledAfterSent
// with a Send that creates its conversation: only the ack, which the
// cancelled Send no longer reads, names the conversation the gateway
// then follows, so the client must undo the follow when that ack comes.
func TestCreatingSendCancelledAfterSent(t *testing.T) {
	t.Parallel()
	checkUnfollowed(t, "Send creating its conversation", func(ctx context.Context, c *client.Client) error {
		_, err := c.Send(ctx, "", "hello")
		return err
	})
}

// checkUnfollowed makes call (named what) to conversation "a" with a
// context that ends once its frame is written, while the reply waits
// unread; call must fail with context.Canceled. The client must then
// unsubscribe from what the gateway took, and with one subscription
// allowed per connection, a Subscribe to "b" must then succeed.
func checkUnfollowed(t *testing.T, what string, call func(context.Context, *client.Client) error) {
	t.Helper()
	srv := conntest.Start(t, conntest.Config{Conn: conn.Options{MaxSubscriptions: 1}})
	p := newProxy(t, srv.URL)
	ctx := conntest.Deadline(t)
	// OnConnect runs before the second connection is read: the reply to
	// a frame written meanwhile waits unread.
	opts, entered, release := holdReconnect(ctx)
	c := dial(t, p.URL(), opts)
	for _, id := range []string{"a", "b"} {
		if _, err := c.Create(ctx, protocol.Create{Conversation: id}); err != nil {
			t.Fatal(err)
		}
	}
	p.drop()
	<-entered
	// The gateway answers an unsubscribe in order: once it has, a
	// subscribe written after finds the connection's one place free.
	// Watched for before the call: a cancelled Subscribe writes its
	// unsubscribe as it returns, and the gateway's answer reaches the
	// proxy whether or not the held client reads it.
	undone := p.sent(`"type":"unsubscribed"`)
	if err := call(cancelOnWait{ctx, new(atomic.Bool)}, c); !errors.Is(err, context.Canceled) {
		t.Fatalf("%s cancelled while waiting for its reply: %v; want context.Canceled", what, err)
	}
	close(release)
	select {
	case <-undone:
	case <-ctx.Done():
		t.Fatalf("the client never unsubscribed after a cancelled %s", what)
	}
	if _, err := c.Subscribe(ctx, "b", 0); err != nil {
		t.Fatalf("Subscribe after a cancelled %s: %v", what, err)
	}
}

// TestSubscribeAgainRefused subscribes again to a conversation the client
// follows, from an after beyond its log: the gateway refuses it and keeps
// the connection's subscription as it was, which the client, having ended
// the previous Subscription, must undo. With one subscription allowed per
// connection, a Subscribe to another conversation then succeeds.
func TestSubscribeAgainRefused(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{Conn: conn.Options{MaxSubscriptions: 1}})
	c := dial(t, srv.URL, fast)
	ctx := conntest.Deadline(t)
	for _, id := range []string{"a", "b"} {
		if _, err := c.Create(ctx, protocol.Create{Conversation: id}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := c.Subscribe(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "a", 99); protocol.AsError(err).Code != protocol.CodeBadRequest {
		t.Fatalf("Subscribe after a seq beyond the log: %v, want bad_request", err)
	}
	if _, err := first.Next(ctx); err == nil {
		t.Fatal("the first Subscription goes on after a second one")
	}
	if _, err := c.Subscribe(ctx, "b", 0); err != nil {
		t.Fatalf("Subscribe after a refused one: %v", err)
	}
}

// cancelOnWait is a context that is cancelled as soon as something waits
// on it: a request waits on its context only once its frame is written.
type cancelOnWait struct {
	context.Context
	waited *atomic.Bool
}

func (c cancelOnWait) Done() <-chan struct{} {
	c.waited.Store(true)
	done := make(chan struct{})
	close(done)
	return done
}

func (c cancelOnWait) Err() error {
	if c.waited.Load() {
		return context.Canceled
	}
	return nil
}

// TestCloseBeforeResubscribe closes a Subscription on a new connection
// before the client has subscribed it again: the resubscription must not
// follow the conversation after the unsubscribe of Close. With one
// subscription allowed per connection, a Subscribe to another
// conversation then succeeds.
func TestCloseBeforeResubscribe(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{Conn: conn.Options{MaxSubscriptions: 1}})
	p := newProxy(t, srv.URL)
	ctx := conntest.Deadline(t)
	// OnConnect runs before the resubscriptions start: holding it, the
	// second connection resubscribes only once the gateway has answered
	// the unsubscribe of Close.
	opts, entered, release := holdReconnect(ctx)
	c := dial(t, p.URL(), opts)
	if _, err := c.Create(ctx, protocol.Create{Conversation: "b"}); err != nil {
		t.Fatal(err)
	}
	sub := startTurn(t, c, "a")
	readTurn(t, sub)

	p.drop()
	<-entered
	unsubscribed := p.sent(`"type":"unsubscribed"`)
	closed := make(chan error, 1)
	go func() { closed <- sub.Close() }()
	<-unsubscribed
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.Subscribe(ctx, "b", 0); err != nil {
		t.Fatalf("Subscribe after a Close: %v", err)
	}
}

// holdReconnect returns the fast options with an OnConnect that holds the
// client's second connection, before it is read or subscribed again,
// until release is closed (or ctx ends); entered is closed once it holds.
func holdReconnect(ctx context.Context) (opts client.Options, entered <-chan struct{}, release chan struct{}) {
	held := make(chan struct{})
	release = make(chan struct{})
	var connects atomic.Int32
	opts = fast
	opts.OnConnect = func() {
		if connects.Add(1) == 2 {
			close(held)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}
	return opts, held, release
}
