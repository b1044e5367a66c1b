package convo

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// TestListPage pages through conversations with ties in their update
// times and titles of different sizes, offered in a shuffled order: with
// any limit and byte bound, every conversation comes exactly once, in the
// list order, and a page never holds more than its limits allow.
func TestListPage(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	var all []protocol.Conversation
	for i := range 11 {
		// Pairs share an update time; ids order them.
		all = append(all, protocol.Conversation{ID: fmt.Sprintf("c%02d", i), UpdatedAt: t0.Add(time.Duration(i/2) * time.Second),
			Title: strings.Repeat("t", (i*37)%5*100)})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, limit := range []int{1, 2, 3, 10, 11, 12} {
		for _, maxBytes := range []int{0, 1, 300, 700, 1000} {
			var got []string
			after := ListCursor{}
			for pages := 0; ; pages++ {
				if pages > len(all) {
					t.Fatalf("limit %d, maxBytes %d: more pages than conversations", limit, maxBytes)
				}
				offered := append([]protocol.Conversation(nil), all...)
				rng.Shuffle(len(offered), func(i, j int) { offered[i], offered[j] = offered[j], offered[i] })
				p := NewListPage(after, limit, maxBytes)
				for _, c := range offered {
					p.Add(c)
					if len(p.page) > limit || maxBytes > 0 && len(p.page) > 1 && p.bytes > maxBytes {
						t.Fatalf("limit %d, maxBytes %d: the page holds %d, %d bytes", limit, maxBytes, len(p.page), p.bytes)
					}
				}
				page, more := p.Page()
				if len(page) == 0 && more {
					t.Fatalf("limit %d, maxBytes %d: an empty page with more", limit, maxBytes)
				}
				for _, c := range page {
					got = append(got, c.ID)
				}
				if !more {
					break
				}
				after = ListCursor{UpdatedAt: page[len(page)-1].UpdatedAt, ID: page[len(page)-1].ID}
			}
			want := "[c10 c08 c09 c06 c07 c04 c05 c02 c03 c00 c01]"
			if fmt.Sprint(got) != want {
				t.Errorf("limit %d, maxBytes %d: %v, want %s", limit, maxBytes, got, want)
			}
		}
	}
}

// TestCursor reads back the cursors it makes and refuses others.
func TestCursor(t *testing.T) {
	t.Parallel()
	c := protocol.Conversation{ID: "c.1", UpdatedAt: time.Date(2026, 12, 4, 9, 0, 0, 123, time.UTC)}
	got, err := parseCursor(cursor(c))
	if err != nil || got.ID != c.ID || !got.UpdatedAt.Equal(c.UpdatedAt) {
		t.Fatalf("parseCursor(%q) = %+v, %v", cursor(c), got, err)
	}
	for _, bad := range []string{"x", "12", ".c1", "12.", "x.c1"} {
		if _, err := parseCursor(bad); protocol.AsError(err).Code != protocol.CodeBadRequest {
			t.Errorf("cursor %q: %v, want bad_request", bad, err)
		}
	}
}

// FuzzParseCursor feeds parseCursor what a client may send as before: it
// never panics, and a cursor it accepts names the same place once written
// back by cursor and read again.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"1764838800000000123.c.1", "0.x", "-5.c", "+5.c", "x", "12", ".c1", "12.", "x.c1", "9223372036854775807.z", "1.\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil {
			if protocol.AsError(err).Code != protocol.CodeBadRequest {
				t.Fatalf("parseCursor(%q): %v, want bad_request", s, err)
			}
			return
		}
		again, err := parseCursor(cursor(protocol.Conversation{ID: c.ID, UpdatedAt: c.UpdatedAt}))
		if err != nil || again.ID != c.ID || !again.UpdatedAt.Equal(c.UpdatedAt) {
			t.Fatalf("parseCursor(%q) = %+v, which reads back as %+v, %v", s, c, again, err)
		}
	})
}
