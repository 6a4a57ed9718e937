package eventstore

import (
	"strconv"
	"testing"
)

// TestEvictHalf: a full cache keeps half of its entries, the others untouched.
func TestEvictHalf(t *testing.T) {
	m := make(map[string]string)
	for i := range keyCacheSize - 1 {
		m[strconv.Itoa(i)] = "k" + strconv.Itoa(i)
	}
	evictHalf(m)
	if len(m) != keyCacheSize-1 {
		t.Fatalf("a cache below the bound lost entries: %d left", len(m))
	}
	m["last"] = "klast"
	evictHalf(m)
	if len(m) != keyCacheSize/2 {
		t.Fatalf("%d entries left, want %d", len(m), keyCacheSize/2)
	}
	for k, v := range m {
		if v != "k"+k {
			t.Fatalf("entry %s = %s", k, v)
		}
	}
}
