package httpapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
)

func TestRefusalBudget_Take(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	b := newRefusalBudget(3, 10*time.Second, func() time.Time { return now })
	for i := range 3 {
		if ok, sum := b.take("a"); !ok || sum.Dropped != 0 {
			t.Fatalf("refusal %d within the burst: ok=%v %+v", i+1, ok, sum)
		}
	}
	for i := range 4 {
		if ok, sum := b.take("a"); ok || sum.Dropped != 0 {
			t.Fatalf("refusal %d over the burst: ok=%v %+v, want held back without a summary yet", i+1, ok, sum)
		}
	}
	if ok, _ := b.take("b"); !ok {
		t.Error("another company shares the budget")
	}

	// While nothing can be recorded, a summary comes once a minute.
	start := now
	now = now.Add(5 * time.Second)
	if ok, sum := b.take("a"); ok || sum.Dropped != 0 {
		t.Fatalf("after 5 s: ok=%v %+v", ok, sum)
	}
	now = start.Add(time.Minute)
	ok, sum := b.take("a")
	if !ok || sum.Dropped != 5 || !sum.Since.Equal(start) {
		t.Fatalf("after a minute: ok=%v %+v, want recorded with a summary of 5 since %v", ok, sum, start)
	}
	if _, sum := b.take("a"); sum.Dropped != 0 {
		t.Errorf("the summary came twice: %+v", sum)
	}
}

func TestRefusalBudget_Bounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	b := newRefusalBudget(2, time.Second, func() time.Time { return now })
	for i := range maxRefusalCompanies {
		b.take(domain.TenantID(fmt.Sprint(i)))
	}
	// No bucket has filled up again: a new company is held back rather than let the table grow.
	if ok, _ := b.take("new"); ok || len(b.companies) != maxRefusalCompanies {
		t.Fatalf("new company while the table is full: ok=%v, %d entries", ok, len(b.companies))
	}
	// Refilled buckets are the same as fresh ones and make room.
	now = now.Add(2 * time.Second)
	if ok, _ := b.take("new"); !ok || len(b.companies) != 1 {
		t.Fatalf("new company once the others refilled: ok=%v, %d entries", ok, len(b.companies))
	}
}
