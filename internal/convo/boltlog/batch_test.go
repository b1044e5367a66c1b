package boltlog

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestDeleteFrom deletes a run of keys from a bucket whose leaf the
// transaction has written already (its node is in memory, where a
// cursor's Next after a Delete skips a key) and from one it has not; in
// one leaf, and across many leaves, which the deletes empty one after
// another while the run goes on.
func TestDeleteFrom(t *testing.T) {
	for _, n := range []int{20, 3000} {
		for _, written := range []bool{true, false} {
			t.Run(fmt.Sprintf("keys=%d/written=%v", n, written), func(t *testing.T) {
				testDeleteFrom(t, n, written)
			})
		}
	}
}

// testDeleteFrom fills a bucket with n keys and deletes all but the
// first and last five.
func testDeleteFrom(t *testing.T, n int, written bool) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%04d", i)) }
	val := make([]byte, 100)
	fill := func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("b"))
		for i := range n {
			if err == nil {
				err = bk.Put(key(i), val)
			}
		}
		return err
	}
	if !written {
		if err := db.Update(fill); err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	err = db.Update(func(tx *bolt.Tx) error {
		if written {
			if err := fill(tx); err != nil {
				return err
			}
		}
		bk := tx.Bucket([]byte("b"))
		if err := deleteFrom(bk, key(5), func(k []byte) bool { return string(k) < string(key(n-5)) }); err != nil {
			return err
		}
		return bk.ForEach(func(k, _ []byte) error { left = append(left, string(k)); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, i := range []int{0, 1, 2, 3, 4, n - 5, n - 4, n - 3, n - 2, n - 1} {
		want = append(want, string(key(i)))
	}
	if !slices.Equal(left, want) {
		t.Fatalf("%d keys left, want %v", len(left), want)
	}
}
