package projections

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestCompact_NoFreedBytes: bbolt keeps a deleted value's bytes in a freed page; Compact
// rewrites the file without them, keeps every live key, and lets readers read meanwhile.
func TestCompact_NoFreedBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "projections.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	secret := []byte("Zeynep.Quixotewald@Contoso.example")
	put := func(k string, v []byte) {
		t.Helper()
		if err := db.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketUsers).Put([]byte(k), v) }); err != nil {
			t.Fatal(err)
		}
	}
	put("keep", []byte("kept value"))
	put("gone", bytes.Repeat(secret, 10))
	if err := db.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketUsers).Delete([]byte("gone")) }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.Contains(b, secret) {
		t.Fatal("the deleted value is not in a freed page: the test cannot fail")
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.view(func(tx *bolt.Tx) error {
				if string(tx.Bucket(bucketUsers).Get([]byte("keep"))) != "kept value" {
					t.Error("a reader lost the live row during the compaction")
				}
				return nil
			}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	err = db.Compact(t.Context())
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); bytes.Contains(b, secret) {
		t.Fatal("the deleted value survived the compaction")
	}
	put("after", []byte("written after"))
	if err := db.view(func(tx *bolt.Tx) error {
		if string(tx.Bucket(bucketUsers).Get([]byte("keep"))) != "kept value" || tx.Bucket(bucketUsers).Get([]byte("after")) == nil {
			t.Error("rows lost by the compaction")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
