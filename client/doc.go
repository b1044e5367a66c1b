// Package client is a Go client for the gateway's WebSocket protocol
// (PROTOCOL.md): typed requests, and subscriptions that deliver every
// event of a conversation in seq order, exactly once, across dropped
// connections, gateway restarts and slow-consumer closes.
//
// A Client reconnects on its own, waiting a jittered, exponentially
// growing time between attempts, and subscribes every Subscription again
// after the last event it delivered. A resubscription the gateway refuses
// for a while (busy, unavailable, internal) is tried again; one whose
// conversation was deleted meanwhile ends the Subscription with
// ErrDeleted, also when another conversation was created under its id
// since: a resubscription names the conversation by the created_at of
// the Subscription's first subscribed reply. Requests that are safe to repeat
// (Send to an existing conversation, thanks to the client_msg_id it sets;
// Subscribe, History, List, Cancel, Ping) are sent again on the next
// connection when one drops before their reply. A request whose context
// is already done is not sent: it returns the context's error. The
// client pings the gateway too, so that a peer that vanished without
// closing the connection is noticed.
//
//	c, err := client.Dial(ctx, "ws://localhost:8080", client.Options{})
//	if err != nil { … }
//	defer c.Close()
//	conv, _ := c.Create(ctx, protocol.Create{Title: "hello"})
//	sub, _ := c.Subscribe(ctx, conv.ID, 0)
//	c.Send(ctx, conv.ID, "Hello!")
//	for {
//		ev, err := sub.Next(ctx)
//		if err != nil { … }
//		fmt.Print(ev.Text)
//		if ev.Type == protocol.EventTurnEnd { break }
//	}
//
// A program that resumes across restarts of its own saves its position
// once it has handled an event: the conversation, the event's seq and
// the Subscription's CreatedAt. It passes them back to Subscribe, the
// creation time with the CreatedAt option, so that a conversation deleted
// meanwhile, and maybe created again under its id, is ErrDeleted on that
// first Subscribe too, instead of a subscription to the new conversation
// after a seq that counted the old one's events:
//
//	sub, err := c.Subscribe(ctx, saved.ID, saved.Seq, client.CreatedAt(saved.CreatedAt))
//	if errors.Is(err, client.ErrDeleted) { … }
//	for {
//		ev, err := sub.Next(ctx)
//		if err != nil { … }
//		handle(ev)
//		save(position{sub.Conversation(), ev.Seq, sub.CreatedAt()})
//	}
package client
