package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// TestDiskFull runs the program on a small tmpfs and fills it while a
// reply streams. While it cannot write, a send is refused with
// unavailable, never acked without being stored, and the connection stays
// open; once space is freed, the conversation answers again without a
// restart. It needs root to mount the tmpfs and skips without.
//
// The model is the Bedrock fake, held after its first chunk until the
// disk is full, so that the reply's next chunk is what the full disk
// refuses, however slowly the test runs. Both that chunk and the first
// (which the cut turn's turn_end carries) are larger than the space a
// filled disk leaves and than any run of free pages the database file
// may have, so that neither can be stored until space is freed.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	dir := smallDisk(t, "4m")
	hold := make(chan struct{})
	chunk := strings.Repeat("word ", 40<<10) // 200 KiB
	fake := fakebedrock.New(func(call int, _ fakebedrock.Request) fakebedrock.Reply {
		if call == 1 {
			return fakebedrock.Reply{Chunks: []string{chunk, chunk}, Hold: hold, HoldAfter: 1}
		}
		return fakebedrock.Reply{Chunks: []string{"Here."}}
	})
	t.Cleanup(fake.Close)
	g := startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(dir, "gateway.db")}, "-addr", "127.0.0.1:0",
		"-provider", "bedrock", "-model", "m", "-region", "us-east-1", "-bedrock-endpoint", fake.URL)
	c := conntest.Dial(t, g.URL, "/v1/ws")
	c.Request(&protocol.Send{ID: "first", Text: "tell me a story"})
	frames := c.ReadUntil(conntest.IsType(protocol.EventDelta))
	conversation, firstTurn := frames[0].Conversation, frames[len(frames)-1].Turn

	// The reply's next chunk fails, and so does its turn_end, which the
	// gateway retries while the disk stays full.
	retrying := g.log.watch(regexp.MustCompile(`msg="store turn_end failed, retrying"`))
	fill := fillDisk(t, dir)
	// Each send carries 60 KB, which a full disk cannot take for long.
	big := strings.Repeat("x", 60<<10)
	var acked []string
	refused := false
	for i := 0; i < 100 && !refused; i++ {
		id := fmt.Sprint("s", i)
		reply := c.Call(&protocol.Send{ID: id, Conversation: conversation, Text: big})
		switch {
		case reply.Type == protocol.ReplyAck:
			acked = append(acked, reply.StoredMessage().ID)
		case reply.Type == protocol.ReplyError && reply.Code == protocol.CodeUnavailable:
			refused = true
		default:
			t.Fatalf("send %d on a full disk: %+v, want an ack or unavailable", i, reply)
		}
	}
	if !refused {
		t.Fatal("100 sends of 60 KB on a full disk were all acked")
	}
	t.Logf("%d sends acked, then one refused with unavailable", len(acked))
	close(hold)
	select {
	case <-retrying:
	case <-time.After(conntest.Timeout):
		t.Fatal("the reply's turn_end was not retried")
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	// The turn cut by the full disk ends, the acked messages' turns run,
	// and a new message is answered.
	rest := c.ReadUntil(func(f *protocol.ServerFrame) bool { return f.Type == protocol.EventTurnEnd && f.Turn == firstTurn })
	if end := rest[len(rest)-1]; end.StopReason != protocol.StopError || end.Error == nil || end.Error.Code != protocol.CodeUnavailable {
		t.Errorf("the cut reply ended %q (%+v), want error unavailable", end.StopReason, end.Error)
	}
	after := c.Call(&protocol.Send{ID: "after", Conversation: conversation, Text: "are you there?"})
	if after.Type != protocol.ReplyAck {
		t.Fatalf("send after freeing space: %+v", after)
	}
	turn := after.StoredMessage().Turn
	c.ReadUntil(func(f *protocol.ServerFrame) bool { return f.Type == protocol.EventTurnEnd && f.Turn == turn })
	stored := map[string]bool{}
	for before := uint64(0); ; {
		h := c.Call(&protocol.History{ID: "h", Conversation: conversation, Before: before, Limit: protocol.MaxHistoryLimit})
		for _, m := range h.Messages {
			stored[m.ID] = true
		}
		if !h.HasMore || len(h.Messages) == 0 {
			break
		}
		before = h.Messages[0].Seq
	}
	for _, id := range append(acked, after.StoredMessage().ID) {
		if !stored[id] {
			t.Errorf("acked message %s is not in the history", id)
		}
	}
}

// smallDisk mounts a tmpfs of size on a new directory and unmounts it at
// the end of the test, or skips the test where that cannot be done.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a size-limited tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the disk is full and returns its
// path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "fill")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return path
		}
	}
}
