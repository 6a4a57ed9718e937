package saml

import (
	"time"

	"github.com/jonboulle/clockwork"
)

// funcClock adapts an injected clock function to the clockwork.Clock that crewjam's
// per-ServiceProvider Clock (a *dsig.Clock) wraps. crewjam and goxmldsig only ask it for the
// time; timers and sleeps use the real clock.
type funcClock struct {
	clockwork.Clock
	now func() time.Time
}

func (c funcClock) Now() time.Time                  { return c.now() }
func (c funcClock) Since(t time.Time) time.Duration { return c.now().Sub(t) }
func (c funcClock) Until(t time.Time) time.Duration { return t.Sub(c.now()) }
