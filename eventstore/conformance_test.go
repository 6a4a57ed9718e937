package eventstore_test

import (
	"testing"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/eventlogtest"
)

// TestEventLogConformance runs the domain.EventLog conformance suite against the real store on
// an embedded JetStream, one fresh server per check.
func TestEventLogConformance(t *testing.T) {
	t.Parallel()
	eventlogtest.Run(t, func(t *testing.T) domain.EventLog { return MustOpenStore(t) })
}

// TestEventSourceConformance runs the domain.EventSource conformance suite against the store.
func TestEventSourceConformance(t *testing.T) {
	t.Parallel()
	eventlogtest.RunSource(t, func(t *testing.T, batches []domain.Batch) domain.EventSource {
		s := MustOpenStore(t)
		for _, b := range batches {
			if _, err := s.Append(t.Context(), b); err != nil {
				t.Fatal(err)
			}
		}
		return s
	})
}
