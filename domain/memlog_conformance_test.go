package domain_test

import (
	"testing"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/eventlogtest"
)

// TestMemLogConformance holds the domain tests' in-memory log to the contract of the real one.
func TestMemLogConformance(t *testing.T) {
	t.Parallel()
	eventlogtest.Run(t, func(*testing.T) domain.EventLog { return domain.NewMemLog() })
}
