package convo

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// A list of conversations is in the order most recently updated first,
// then by id, so that a cursor names one place in it.

// ListCursor names a place in a list of conversations: right after the
// conversation with id ID, updated at UpdatedAt. Its zero value is the
// start of the list.
type ListCursor struct {
	UpdatedAt time.Time
	ID        string
}

// follows reports whether c comes after the place cur names.
func (cur ListCursor) follows(c *protocol.Conversation) bool {
	if cur.ID == "" {
		return true
	}
	return listOrder(&protocol.Conversation{ID: cur.ID, UpdatedAt: cur.UpdatedAt}, c) < 0
}

// listOrder compares a and b in the list order.
func listOrder(a, b *protocol.Conversation) int {
	if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// ListPage collects one page of a list of conversations while seeing each
// of them once, in any order, and holds at most a page of them: an
// implementation of Log.List feeds it every conversation of the owner, so
// that its memory is bounded by the page's limits, not by how many
// conversations the owner has.
type ListPage struct {
	after    ListCursor
	limit    int
	maxBytes int
	page     []protocol.Conversation // sorted in the list order
	bytes    int                     // the ConversationBytes of page
	// cut is the first conversation left out of the page, when one was:
	// a later one cannot join it, or the page would skip cut.
	cut  *protocol.Conversation
	more bool
}

// NewListPage returns an empty page of the conversations that come after
// the cursor after: at most limit (at least 1) of them and, past the
// first, at most maxBytes of ConversationBytes in all (≤ 0: no bound).
func NewListPage(after ListCursor, limit, maxBytes int) *ListPage {
	return &ListPage{after: after, limit: max(limit, 1), maxBytes: maxBytes}
}

// Add offers conversation c to the page; offer each conversation once.
func (p *ListPage) Add(c protocol.Conversation) {
	if !p.after.follows(&c) {
		return
	}
	if p.cut != nil && listOrder(p.cut, &c) < 0 {
		p.more = true
		return
	}
	i, _ := slices.BinarySearchFunc(p.page, &c, func(o protocol.Conversation, c *protocol.Conversation) int { return listOrder(&o, c) })
	p.page = slices.Insert(p.page, i, c)
	p.bytes += ConversationBytes(&c)
	for len(p.page) > p.limit || p.maxBytes > 0 && p.bytes > p.maxBytes && len(p.page) > 1 {
		last := p.page[len(p.page)-1]
		p.page[len(p.page)-1] = protocol.Conversation{}
		p.page = p.page[:len(p.page)-1]
		p.bytes -= ConversationBytes(&last)
		p.cut, p.more = &protocol.Conversation{ID: last.ID, UpdatedAt: last.UpdatedAt}, true
	}
}

// Page returns the conversations collected, in the list order, and
// whether more come after them.
func (p *ListPage) Page() ([]protocol.Conversation, bool) {
	if p.page == nil {
		return []protocol.Conversation{}, p.more
	}
	return p.page, p.more
}

// pageItemBytes is what MessageBytes and ConversationBytes count for the
// fields of fixed size and the JSON around them.
const pageItemBytes = 128

// ConversationBytes is about how many bytes c takes in a list reply, as
// pages count them (see protocol.MaxPageBytes).
func ConversationBytes(c *protocol.Conversation) int {
	return pageItemBytes + len(c.ID) + len(c.Title) + len(c.System) + len(c.Model) + len(c.Agent)
}

// MessageBytes is about how many bytes m takes in a history reply, as
// pages count them (see protocol.MaxPageBytes).
func MessageBytes(m *protocol.Message) int {
	return pageItemBytes + len(m.ID) + len(m.Role) + len(m.Text) + len(m.Turn)
}

// cursor names the place after c in the list.
func cursor(c protocol.Conversation) string {
	return strconv.FormatInt(c.UpdatedAt.UnixNano(), 10) + "." + c.ID
}

// parseCursor reads a cursor that cursor made.
func parseCursor(s string) (ListCursor, error) {
	ns, id, ok := strings.Cut(s, ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return ListCursor{}, protocol.Errorf(protocol.CodeBadRequest, "before: not the next of a conversations reply")
	}
	return ListCursor{UpdatedAt: time.Unix(0, n).UTC(), ID: id}, nil
}
