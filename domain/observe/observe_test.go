package observe_test

import (
	"testing"
	"time"

	"github.com/idledger/idledger/domain/observe"
)

func TestProjectionLag(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		lag        observe.ProjectionLag
		wantEvents uint64
		wantAge    time.Duration
	}{
		{"CaughtUp", observe.ProjectionLag{Head: 7, Checkpoint: 7}, 0, 0},
		{"Behind", observe.ProjectionLag{Head: 10, Checkpoint: 7, Since: now.Add(-3 * time.Second)}, 3, 3 * time.Second},
		{"CheckpointAheadOfHead", observe.ProjectionLag{Head: 5, Checkpoint: 7}, 0, 0},
		{"SinceInTheFuture", observe.ProjectionLag{Head: 8, Checkpoint: 7, Since: now.Add(time.Second)}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.lag.Events(); got != tt.wantEvents {
				t.Errorf("Events() = %d, want %d", got, tt.wantEvents)
			}
			if got := tt.lag.Age(now); got != tt.wantAge {
				t.Errorf("Age() = %v, want %v", got, tt.wantAge)
			}
		})
	}
}
