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
