package eventstore_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/idledger/idledger/domain"
)

func TestReadCompany(t *testing.T) {
	s := MustOpenStore(t)
	ctx := t.Context()
	ids := idSeq()
	var mine []domain.Version
	for i := range 40 {
		tenant := domain.TenantID("acme")
		if i%3 == 1 {
			tenant = "other"
		}
		v, err := s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{
			{Event: userCreated(tenant, fmt.Sprintf("u%d", i), ids(), fmt.Sprintf("user%d", i))}}})
		if err != nil {
			t.Fatal(err)
		}
		if tenant == "acme" {
			mine = append(mine, v)
		}
	}
	var got []domain.Version
	last, more, err := s.ReadCompany(ctx, "acme", 0, 0, func(e domain.Event) bool {
		if e.Tenant != "acme" {
			t.Errorf("read another company's event %+v", e)
		}
		got = append(got, e.Version)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(mine) || last != mine[len(mine)-1] || more {
		t.Fatalf("read %v (last %d, more %v), want %v", got, last, more, mine)
	}
	// Nothing after the company's last message: the read ends at once (it does not wait for
	// the next message of the log, which may be another company's).
	if _, err := s.Append(ctx, domain.Batch{Tenant: "other", Writes: []domain.Write{
		{Event: userCreated("other", "u-last", ids(), "last")}}}); err != nil {
		t.Fatal(err)
	}
	got = nil
	last, more, err = s.ReadCompany(ctx, "acme", mine[len(mine)-1], 0, func(e domain.Event) bool {
		got = append(got, e.Version)
		return true
	})
	if err != nil || len(got) != 0 || last != mine[len(mine)-1] || more {
		t.Fatalf("read past the end: %v, last %d, more %v, %v", got, last, more, err)
	}
	// From a position on, with a bound.
	got = nil
	last, more, err = s.ReadCompany(ctx, "acme", mine[4], 3, func(e domain.Event) bool {
		got = append(got, e.Version)
		return true
	})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(mine[5:8]) || last != mine[7] || !more {
		t.Fatalf("read %v, last %d, more %v, %v; want %v and more", got, last, more, err, mine[5:8])
	}
	// fn stops the read.
	got = nil
	last, _, _ = s.ReadCompany(ctx, "acme", 0, 0, func(e domain.Event) bool {
		got = append(got, e.Version)
		return len(got) < 2
	})
	if len(got) != 2 || last != mine[1] {
		t.Fatalf("stopped read passed %v, last %d", got, last)
	}

	e, err := s.CompanyEvent(ctx, "acme", mine[3])
	if err != nil || e.Version != mine[3] || e.Tenant != "acme" {
		t.Fatalf("CompanyEvent = %+v, %v", e, err)
	}
	for _, seq := range []domain.Version{2, 10_000} { // seq 2 is the other company's
		if _, err := s.CompanyEvent(ctx, "acme", seq); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("CompanyEvent(%d) = %v, want ErrNotFound", seq, err)
		}
	}
}
