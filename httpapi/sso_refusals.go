package httpapi

import (
	"sync"
	"time"

	"github.com/idledger/idledger/domain"
)

// Defaults of the budget of anonymous refused sign-ins recorded in the event log, per company.
//
// The ACS is open to anyone, and the event log can never be trimmed: without a bound, anyone
// could grow it for ever by posting garbage to /saml/<company>/acs. Legitimate anonymous
// refusals come one at a time (a user whose IdP is misconfigured retrying, an admin testing the
// setup, a security review running its whole suite of forged responses) or as one short wave
// when the IdP's certificate expires; 60 at once and then one every 10 s records all of those,
// or a steady sample of them (360 an hour) that shows the problem in the login history. A flood
// then adds at most 8,700 events (a few MB) a day per company, where before it added as many as
// the network allowed; what exceeds the budget still goes to the server log and to
// idledger_saml_signin_refusals_unrecorded_total.
const (
	defaultRefusalBurst = 60
	defaultRefusalEvery = 10 * time.Second
	// refusalSummaryEvery is how often, at most, a company's unrecorded refusals are summed
	// up in one log line while they go on.
	refusalSummaryEvery = time.Minute
	// maxRefusalCompanies bounds the budget's table. Only companies that exist get an entry,
	// so it is bounded by their number already; the cap guards against a surprise.
	maxRefusalCompanies = 100_000
)

// refusalBudget keeps one token bucket per company for the refused sign-ins that name no
// verified user: each recorded refusal takes a token, and an empty bucket means the refusal is
// only logged and counted. Refusals of a known user are not limited by it. It is safe for
// concurrent use.
type refusalBudget struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu        sync.Mutex // guards companies
	companies map[domain.TenantID]*refusalBucket
}

// refusalBucket is one company's bucket and its unrecorded refusals not yet summed up in the
// log.
type refusalBucket struct {
	bucket
	dropped     int       // unrecorded refusals since the last summary
	since       time.Time // the first of them
	lastSummary time.Time
}

// newRefusalBudget returns a budget of burst refusals, refilled by one every every.
func newRefusalBudget(burst int, every time.Duration, now func() time.Time) *refusalBudget {
	if burst <= 0 {
		burst = defaultRefusalBurst
	}
	if every <= 0 {
		every = defaultRefusalEvery
	}
	return &refusalBudget{rate: 1 / every.Seconds(), burst: float64(burst), now: now,
		companies: make(map[domain.TenantID]*refusalBucket)}
}

// refusalSummary is the number of a company's refusals that were not recorded since a time.
type refusalSummary struct {
	Dropped int
	Since   time.Time
}

// take spends a token of the company's bucket and reports whether the refusal may be recorded.
// When the returned summary has Dropped > 0 the caller logs it: the unrecorded refusals since
// the last summary, given when a refusal is recorded again or, while none can be, once every
// refusalSummaryEvery. The caller must have checked that the company exists.
func (b *refusalBudget) take(t domain.TenantID) (bool, refusalSummary) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	rb := b.companies[t]
	if rb == nil {
		if len(b.companies) >= maxRefusalCompanies {
			b.pruneLocked(now)
		}
		if len(b.companies) >= maxRefusalCompanies {
			return false, refusalSummary{} // still full: record nothing new rather than grow
		}
		rb = &refusalBucket{bucket: bucket{tokens: b.burst, last: now}, lastSummary: now}
		b.companies[t] = rb
	}
	ok := rb.spend(now, b.rate, b.burst)
	if !ok {
		if rb.dropped == 0 {
			rb.since = now
		}
		rb.dropped++
	}
	var sum refusalSummary
	if rb.dropped > 0 && (ok || now.Sub(rb.lastSummary) >= refusalSummaryEvery) {
		sum = refusalSummary{Dropped: rb.dropped, Since: rb.since}
		rb.dropped, rb.lastSummary = 0, now
	}
	return ok, sum
}

// pruneLocked forgets the companies whose bucket has filled up again and that have nothing
// left to sum up: a fresh bucket is the same. b.mu must be held.
func (b *refusalBudget) pruneLocked(now time.Time) {
	for t, rb := range b.companies {
		full := rb.tokens+now.Sub(rb.last).Seconds()*b.rate >= b.burst
		if full && rb.dropped == 0 {
			delete(b.companies, t)
		}
	}
}
