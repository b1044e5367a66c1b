package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/chatgateway/gateway/client"
	"github.com/chatgateway/gateway/protocol"
)

// A program that asks one question and prints the streamed reply. The
// subscription survives dropped connections and gateway restarts.
func ExampleDial() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://localhost:8080", client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	conv, err := c.Create(ctx, protocol.Create{Title: "hello"})
	if err != nil {
		log.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, conv.ID, 0)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Send(ctx, conv.ID, "Hello!"); err != nil {
		log.Fatal(err)
	}
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(ev.Text)
		if ev.Type == protocol.EventTurnEnd {
			return
		}
	}
}

// A program that prints the titles of all its conversations, newest
// first, a page of 100 at a time.
func ExampleClient_Conversations() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://localhost:8080", client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for conv, err := range c.Conversations(ctx, 100) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(conv.ID, conv.Title)
	}
}

// position is where a program that resumes across its own restarts is in
// a conversation: Subscribe's arguments.
type position struct {
	Conversation string
	Seq          uint64 // the last event handled
	CreatedAt    time.Time
}

// A program that prints a conversation's events from where it stopped
// last time, saving its position in a file after each one. Were the
// conversation deleted meanwhile, also if another was created under its
// id since, it would start over rather than miss that one's first events.
func ExampleCreatedAt() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://localhost:8080", client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	pos := position{Conversation: "notes"}
	if b, err := os.ReadFile("position.json"); err == nil {
		if err := json.Unmarshal(b, &pos); err != nil {
			log.Fatal(err)
		}
	}
	sub, err := c.Subscribe(ctx, pos.Conversation, pos.Seq, client.CreatedAt(pos.CreatedAt))
	if errors.Is(err, client.ErrDeleted) {
		pos = position{Conversation: pos.Conversation}
		sub, err = c.Subscribe(ctx, pos.Conversation, 0)
	}
	if err != nil {
		log.Fatal(err)
	}
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Seq, ev.Type, ev.Text)
		pos = position{sub.Conversation(), ev.Seq, sub.CreatedAt()}
		b, _ := json.Marshal(pos)
		if err := os.WriteFile("position.json", b, 0o600); err != nil {
			log.Fatal(err)
		}
	}
}
