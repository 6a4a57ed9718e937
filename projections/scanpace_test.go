package projections

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestScanPacer: a scan parks for scanPause once it has worked scanSlice (looking at the
// clock every paceEvery rows), not before; for yieldPause after yieldSlice if its query
// yields; a pause ends early with the context's error.
func TestScanPacer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newScanPacer(false)
		ctx := context.Background()
		step := func() time.Duration {
			t.Helper()
			start := time.Now()
			if err := p.step(ctx); err != nil {
				t.Fatal(err)
			}
			return time.Since(start)
		}
		for i := range 3 * paceEvery {
			if d := step(); d != 0 {
				t.Fatalf("step %d within the slice parked %s", i, d)
			}
		}
		time.Sleep(scanSlice) // the slice is spent (the fake clock moves only here)
		for i := 1; i < paceEvery; i++ {
			if d := step(); d != 0 {
				t.Fatalf("step %d between two looks at the clock parked %s", i, d)
			}
		}
		if d := step(); d != scanPause {
			t.Fatalf("step after the slice parked %s, want %s", d, scanPause)
		}
		for i := range paceEvery {
			if d := step(); d != 0 {
				t.Fatalf("step %d of the next slice parked %s", i, d)
			}
		}

		p = newScanPacer(true)
		time.Sleep(yieldSlice)
		for i := 1; i < paceEvery; i++ {
			if d := step(); d != 0 {
				t.Fatalf("step %d of a yielding query between two looks at the clock parked %s", i, d)
			}
		}
		if d := step(); d != yieldPause {
			t.Fatalf("step of a yielding query after the slice parked %s, want %s", d, yieldPause)
		}

		cctx, cancel := context.WithCancel(ctx)
		cancel()
		time.Sleep(scanSlice)
		var err error
		for range paceEvery {
			if err = p.step(cctx); err != nil {
				break
			}
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("pause with an ended context = %v, want context.Canceled", err)
		}
	})
}
