package eventstore_test

import (
	"testing"
	"time"
)

// eventually polls cond until it holds and fails the test if it does not within limit; what
// names the condition. It is the package's way to wait: no test sleeps for a fixed time.
func eventually(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			if cond() {
				return
			}
			tb.Fatalf("%s: not within %s", what, limit)
		}
	}
}
