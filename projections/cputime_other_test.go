//go:build !unix

package projections_test

import (
	"testing"
	"time"
)

// cpuTime returns 0: the process's CPU time is not measured here.
func cpuTime(testing.TB) time.Duration { return 0 }
