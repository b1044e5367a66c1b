package convo

import (
	"fmt"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// TestListPage pages through conversations with ties in their update
// times: every conversation comes exactly once, in the list order.
func TestListPage(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	var all []protocol.Conversation
	for i := range 11 {
		// Pairs share an update time; ids order them.
		all = append(all, protocol.Conversation{ID: fmt.Sprintf("c%02d", i), UpdatedAt: t0.Add(time.Duration(i/2) * time.Second)})
	}
	for _, limit := range []int{1, 2, 3, 10, 11, 12} {
		var got []string
		before := ""
		for pages := 0; ; pages++ {
			if pages > len(all) {
				t.Fatalf("limit %d: more pages than conversations", limit)
			}
			list := append([]protocol.Conversation(nil), all...)
			page, next, err := listPage(list, before, limit)
			if err != nil {
				t.Fatalf("limit %d, before %q: %v", limit, before, err)
			}
			if len(page) > limit || len(page) == 0 && next != "" {
				t.Fatalf("limit %d: a page of %d with next %q", limit, len(page), next)
			}
			for _, c := range page {
				got = append(got, c.ID)
			}
			if next == "" {
				break
			}
			before = next
		}
		want := "[c10 c08 c09 c06 c07 c04 c05 c02 c03 c00 c01]"
		if fmt.Sprint(got) != want {
			t.Errorf("limit %d: %v, want %s", limit, got, want)
		}
	}
	for _, bad := range []string{"x", "12", ".c1", "12.", "x.c1"} {
		if _, _, err := listPage(all, bad, 5); protocol.AsError(err).Code != protocol.CodeBadRequest {
			t.Errorf("cursor %q: %v, want bad_request", bad, err)
		}
	}
}
