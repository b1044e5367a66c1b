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
// cursor's Next after a Delete skips a key) and from one it has not.
func TestDeleteFrom(t *testing.T) {
	for _, written := range []bool{true, false} {
		t.Run(fmt.Sprint("written=", written), func(t *testing.T) {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			key := func(i int) []byte { return []byte(fmt.Sprintf("k%02d", i)) }
			fill := func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte("b"))
				for i := range 20 {
					if err == nil {
						err = bk.Put(key(i), nil)
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
				if err := deleteFrom(bk, key(5), func(k []byte) bool { return string(k) < string(key(15)) }); err != nil {
					return err
				}
				return bk.ForEach(func(k, _ []byte) error { left = append(left, string(k)); return nil })
			})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"k00", "k01", "k02", "k03", "k04", "k15", "k16", "k17", "k18", "k19"}
			if !slices.Equal(left, want) {
				t.Fatalf("left %v, want %v", left, want)
			}
		})
	}
}
