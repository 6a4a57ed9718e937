package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// rateLimiter keeps one token bucket per company, so one company's burst (or a runaway script
// with its token) cannot starve the others. Each request authenticated by a company token
// takes a token; an empty bucket answers 429 with Retry-After, which Entra honours by pausing
// the job and retrying the failed requests (docs/entra-scim.md §8) rather than counting them as
// failures. It is safe for concurrent use.
type rateLimiter struct {
	rate  float64 // tokens added per second
	burst float64 // bucket size
	now   func() time.Time

	mu      sync.Mutex // guards buckets
	buckets map[domain.TenantID]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// spend refills b for the time since its last use (rate tokens per second, at most burst) and
// takes one token if there is one.
func (b *bucket) spend(now time.Time, rate, burst float64) bool {
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(burst, b.tokens+elapsed*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// newRateLimiter returns a limiter of rate requests per second with the given burst (at least
// one request); a rate of zero or less returns nil, which admits everything.
func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	if rate <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(math.Ceil(2 * rate))
	}
	if now == nil {
		now = time.Now
	}
	return &rateLimiter{rate: rate, burst: float64(max(burst, 1)), now: now, buckets: make(map[domain.TenantID]*bucket)}
}

// take spends one token of the company's bucket. When the bucket is empty it returns false and
// how long until a token is back.
func (l *rateLimiter) take(t domain.TenantID) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[t]
	if b == nil {
		// Companies are created by the operator, so the map is bounded by their number.
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[t] = b
	}
	if b.spend(now, l.rate, l.burst) {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// limit answers 429 Too Many Requests with Retry-After (whole seconds, at least 1) once the
// company has used up its bucket.
func (s *Server) limit(c echo.Context, t domain.TenantID) error {
	ok, wait := s.limiter.take(t)
	if ok {
		return nil
	}
	secs := max(int(math.Ceil(wait.Seconds())), 1)
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return echo.NewHTTPError(http.StatusTooManyRequests,
		"too many requests for this company; retry after "+strconv.Itoa(secs)+" s")
}
