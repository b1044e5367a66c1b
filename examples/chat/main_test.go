package main

import (
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
)

// TestChat types two lines into the chat and reads both replies.
func TestChat(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{})
	var out strings.Builder
	if err := run(conntest.Deadline(t), srv.URL, "", "", strings.NewReader("hello\n\nagain\n"), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"you: hello\n", "assistant: (Demo model", "You said: “hello”", "you: again\n", "You said: “again”"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
