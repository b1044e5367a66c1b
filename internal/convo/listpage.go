package convo

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// listPage returns up to limit of list's conversations that come after
// the cursor before ("": from the first), in the list order, and the
// cursor after the last one returned when more remain. The order is most
// recently updated first, then by id, so that a cursor names one place.
func listPage(list []protocol.Conversation, before string, limit int) ([]protocol.Conversation, string, error) {
	slices.SortStableFunc(list, func(a, b protocol.Conversation) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if before != "" {
		at, id, err := parseCursor(before)
		if err != nil {
			return nil, "", err
		}
		start, _ := slices.BinarySearchFunc(list, struct{}{}, func(c protocol.Conversation, _ struct{}) int {
			// -1 while c comes before or at the cursor.
			if c.UpdatedAt.After(at) || c.UpdatedAt.Equal(at) && c.ID <= id {
				return -1
			}
			return 1
		})
		list = list[start:]
	}
	if len(list) <= limit {
		return list, "", nil
	}
	last := list[limit-1]
	return list[:limit], cursor(last), nil
}

// cursor names the place after c in the list order.
func cursor(c protocol.Conversation) string {
	return strconv.FormatInt(c.UpdatedAt.UnixNano(), 10) + "." + c.ID
}

// parseCursor reads a cursor that cursor made.
func parseCursor(s string) (time.Time, string, error) {
	ns, id, ok := strings.Cut(s, ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", protocol.Errorf(protocol.CodeBadRequest, "before: not the next of a conversations reply")
	}
	return time.Unix(0, n).UTC(), id, nil
}
