package jetlog_test

import (
	"context"
	"slices"
	"testing"
)

// TestReadMarkOfRecreatedConversation reads a page of a conversation's
// events on gateway a, which keeps where the read stopped, then gateway
// b deletes the conversation and creates another, longer one under its
// id: a's read of the next page gets the new conversation's events (the
// old one's, where the mark points, are gone), as b reads them.
func TestReadMarkOfRecreatedConversation(t *testing.T) {
	a, b, _ := startPair(t)
	ctx := context.Background()
	const id = "reused"
	createWithActions(t, a, id, 20)
	if page, err := a.store.Events(ctx, id, 0, 20, 16); err != nil || len(page) != 16 {
		t.Fatalf("the first page: %d events, %v", len(page), err)
	}
	if err := b.svc.Delete(ctx, user, id); err != nil {
		t.Fatal(err)
	}
	createWithActions(t, b, id, 24)
	got, err := a.store.Events(ctx, id, 16, 20, 16)
	if err != nil {
		t.Fatalf("the next page after the conversation was created again: %v", err)
	}
	want, err := b.store.Events(ctx, id, 16, 20, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 4 || !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("a read %d events after 16:\n%s\nb read %d:\n%s", len(got), got, len(want), want)
	}
}
