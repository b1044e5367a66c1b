// Command chat is a terminal chat with the gateway: type a line, watch
// the reply stream in. Drop the connection or restart the gateway in the
// middle of a reply, and it picks up where it was, showing nothing twice.
//
//	go run ./cmd/gateway &
//	go run ./examples/chat                       # a new conversation
//	go run ./examples/chat -conversation c_1234  # replays it, then goes on
//
// With -auth jwt, put the token in GATEWAY_TOKEN.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync"

	"github.com/chatgateway/gateway/client"
	"github.com/chatgateway/gateway/protocol"
)

func main() {
	url := flag.String("url", "ws://localhost:8080", "the gateway's URL")
	conv := flag.String("conversation", "", "the conversation to continue (default: a new one)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *url, *conv, os.Getenv("GATEWAY_TOKEN"), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// run chats in conversation (a new one if empty), reading lines from in
// and writing the conversation to out. At the end of in it waits for the
// replies to what it sent.
func run(ctx context.Context, url, conversation, token string, in io.Reader, out io.Writer) error {
	var mu sync.Mutex // serialises writes to out
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format, args...)
	}
	// online is used only on the client's goroutine, which calls both hooks.
	online := true
	c, err := client.Dial(ctx, url, client.Options{
		Token: token,
		OnDisconnect: func(err error) {
			if online {
				say("\n[connection lost (%v); reconnecting…]\n", err)
			}
			online = false
		},
		OnConnect: func() {
			if !online {
				say("[reconnected]\n")
			}
			online = true
		},
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if conversation == "" {
		info, err := c.Create(ctx, protocol.Create{Title: "terminal chat"})
		if err != nil {
			return err
		}
		conversation = info.ID
	}
	sub, err := c.Subscribe(ctx, conversation, 0)
	if err != nil {
		return err
	}
	say("conversation %s: type a message and Enter; Ctrl-D ends\n", conversation)

	// The reader notes the turns that ended, for the wait at the end of
	// in. It must never block on that: a conversation can have any number
	// of turns, and the replies would stop showing.
	var endedMu sync.Mutex
	ended := map[string]bool{}
	turnEnded := make(chan struct{}, 1) // a turn ended since the last look
	reading := make(chan struct{})      // closed when the reader stops
	var readErr error                   // why it stopped, set before reading is closed
	go func() {
		defer close(reading)
		for {
			ev, err := sub.Next(ctx)
			if err != nil {
				readErr = err
				return
			}
			say("%s", render(ev))
			if ev.Type == protocol.EventTurnEnd {
				endedMu.Lock()
				ended[ev.Turn] = true
				endedMu.Unlock()
				select {
				case turnEnded <- struct{}{}:
				default:
				}
			}
		}
	}()

	// The lines come from their own goroutine, so that Ctrl-C (ctx done)
	// ends the chat while it waits for a line: a read of in cannot be
	// interrupted, and that goroutine ends with the program.
	lines := make(chan string)
	var scanErr error // set before lines is closed
	go func() {
		defer close(lines)
		s := bufio.NewScanner(in)
		for s.Scan() {
			select {
			case lines <- s.Text():
			case <-ctx.Done():
				return
			}
		}
		scanErr = s.Err()
	}()
	var waiting []string // turns of our messages
	for typing := true; typing; {
		var line string
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-reading:
			return stoppedReading(ctx, readErr)
		case line, typing = <-lines:
		}
		if line == "" {
			continue
		}
		ack, err := c.Send(ctx, conversation, line)
		if err != nil {
			say("[not sent: %v]\n", err)
			continue
		}
		waiting = append(waiting, ack.Message.Turn)
	}
	for stopped := false; ; {
		endedMu.Lock()
		waiting = slices.DeleteFunc(waiting, func(turn string) bool { return ended[turn] })
		endedMu.Unlock()
		switch {
		case len(waiting) == 0:
			return scanErr
		case stopped:
			return stoppedReading(ctx, readErr)
		}
		select {
		case <-turnEnded:
		case <-reading:
			stopped = true // look once more: the turns may have ended first
		}
	}
}

// stoppedReading is the chat's end once its conversation's events
// stopped with err: ctx's end (Ctrl-C), or else err (the conversation
// was deleted, …), which the chat reports.
func stoppedReading(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("the conversation's events stopped: %w", err)
}

// render is how an event shows in the terminal.
func render(ev protocol.Event) string {
	switch ev.Type {
	case protocol.EventMessage:
		return fmt.Sprintf("\nyou: %s\n", ev.Message.Text)
	case protocol.EventTurnStart:
		return "assistant: "
	case protocol.EventDelta:
		return ev.Text
	case protocol.EventThinking:
		return "\x1b[2m" + ev.Text + "\x1b[0m"
	case protocol.EventAction:
		return fmt.Sprintf("\n[%s %s → %s]\n", ev.Name, ev.Input, ev.Output)
	case protocol.EventTurnEnd:
		if ev.StopReason == protocol.StopEndTurn {
			return "\n"
		}
		if ev.Error != nil {
			return fmt.Sprintf("\n[%s: %s]\n", ev.StopReason, ev.Error.Message)
		}
		return fmt.Sprintf("\n[%s]\n", ev.StopReason)
	}
	return ""
}
