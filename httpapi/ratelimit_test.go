package httpapi

import (
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
)

func TestRateLimit_Bucket(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	l := newRateLimiter(2, 4, func() time.Time { return now }) // 2/s, burst 4
	take := func(tenant domain.TenantID) (bool, time.Duration) { return l.take(tenant) }

	for i := range 4 {
		if ok, _ := take("a"); !ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	ok, wait := take("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over the burst: ok=%v wait=%v, want refused, 500ms", ok, wait)
	}
	if ok, _ := take("b"); !ok {
		t.Errorf("another company shares the bucket")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := take("a"); !ok {
		t.Errorf("refused after the promised wait")
	}
	if ok, _ := take("a"); ok {
		t.Errorf("a second token appeared from nowhere")
	}
	now = now.Add(time.Hour) // refills to the burst, not beyond
	for i := range 4 {
		if ok, _ := take("a"); !ok {
			t.Fatalf("request %d after an idle hour refused", i+1)
		}
	}
	if ok, _ := take("a"); ok {
		t.Errorf("the bucket grew beyond its burst")
	}
	now = now.Add(-time.Minute) // a clock step back neither refills nor panics
	if ok, _ := take("a"); ok {
		t.Errorf("a clock step back refilled the bucket")
	}
}

func TestRateLimit_Defaults(t *testing.T) {
	t.Parallel()
	if l := newRateLimiter(0, 10, nil); l != nil {
		t.Errorf("rate 0 = %+v, want no limiter", l)
	}
	var none *rateLimiter
	if ok, _ := none.take("a"); !ok {
		t.Errorf("a nil limiter refused")
	}
	if l := newRateLimiter(200, 0, nil); l.burst != 400 {
		t.Errorf("default burst = %v, want twice the rate", l.burst)
	}
	if l := newRateLimiter(0.1, 0, nil); l.burst != 1 {
		t.Errorf("burst of a slow rate = %v, want 1", l.burst)
	}
}
