package client_test

import (
	"context"
	"fmt"
	"log"

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
