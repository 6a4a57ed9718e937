package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// linkService returns a Service over log whose clock is *now (guarded by mu) and whose ids
// start with prefix.
func linkService(log *memLog, now *time.Time, mu *sync.Mutex, prefix string) *Service {
	n := 0
	return &Service{Log: log,
		Now:   func() time.Time { mu.Lock(); defer mu.Unlock(); return *now },
		NewID: func() string { mu.Lock(); defer mu.Unlock(); n++; return fmt.Sprintf("%s%d", prefix, n) }}
}

func TestService_SetupLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := &memLog{}
	created := Event{Tenant: "t1", Kind: KindTenant, AggregateID: "t1", Type: EventTenantCreated,
		Data: TenantCreated{Name: "Acme", SCIMTokenHash: HashToken("scim")}}
	if _, err := log.Append(ctx, Batch{Tenant: "t1", Writes: []Write{{Event: created, NoExpect: true}}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := ssoTime
	s := linkService(log, &now, &mu, "l")
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	for _, d := range []time.Duration{0, -time.Hour, MaxSetupLinkLifetime + time.Second} {
		if _, _, _, err := s.CreateSetupLink(ctx, "t1", d); !errors.Is(err, ErrInvalid) {
			t.Errorf("lifetime %s: err = %v, want ErrInvalid", d, err)
		}
	}
	if _, _, _, err := s.CreateSetupLink(ctx, "t2", time.Hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tenant: err = %v", err)
	}

	tn, l, secret, err := s.CreateSetupLink(ctx, "t1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, SetupLinkPrefix) || l.Hash != HashToken(secret) || !l.Expires.Equal(ssoTime.Add(time.Hour)) || !l.Used.IsZero() {
		t.Errorf("link %+v, secret %q", l, secret)
	}
	if got, ok := tn.SetupLinkByHash(HashToken(secret)); !ok || got.ID != l.ID {
		t.Errorf("SetupLinkByHash = %+v %v", got, ok)
	}
	for _, e := range log.events {
		raw, err := EncodeData(e.Data)
		if err != nil || strings.Contains(string(raw), secret) {
			t.Errorf("payload %s holds the secret (err %v)", raw, err)
		}
	}

	// First use wins, the second is refused and appends nothing.
	got, err := s.UseSetupLink(ctx, "t1", HashToken(secret), "sess")
	if err != nil || got.ID != l.ID {
		t.Fatalf("first use: %+v, %v", got, err)
	}
	n := len(log.events)
	if _, err := s.UseSetupLink(ctx, "t1", HashToken(secret), "sess2"); !errors.Is(err, ErrSetupLinkUsed) {
		t.Errorf("second use: err = %v, want ErrSetupLinkUsed", err)
	}
	if _, err := s.UseSetupLink(ctx, "t1", HashToken("idl_setup_other"), ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown link: err = %v, want ErrNotFound", err)
	}
	if len(log.events) != n {
		t.Errorf("refused uses appended %d events", len(log.events)-n)
	}

	// Expiry, by the injected clock.
	_, late, lateSecret, err := s.CreateSetupLink(ctx, "t1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	advance(time.Hour)
	if _, err := s.UseSetupLink(ctx, "t1", HashToken(lateSecret), ""); !errors.Is(err, ErrSetupLinkExpired) {
		t.Errorf("expired: err = %v, want ErrSetupLinkExpired", err)
	}

	// Revocation forgets the link.
	_, gone, goneSecret, err := s.CreateSetupLink(ctx, "t1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeSetupLink(ctx, "t1", gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeSetupLink(ctx, "t1", gone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revocation: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UseSetupLink(ctx, "t1", HashToken(goneSecret), ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked: err = %v, want ErrNotFound", err)
	}

	// Links expired longer than the memory ago leave the state at the next creation.
	advance(setupLinkMemory + time.Minute)
	tn, _, _, err = s.CreateSetupLink(ctx, "t1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tn.SetupLink(late.ID); ok || len(tn.SetupLinks) != 1 {
		t.Errorf("old links kept: %+v", tn.SetupLinks)
	}
	var fold Tenant
	for _, e := range log.events {
		fold.Apply(e)
	}
	if len(fold.SetupLinks) != 1 || fold.SetupLinks[0].ID != tn.SetupLinks[0].ID {
		t.Errorf("the fold of the log differs from the command's state: %+v", fold.SetupLinks)
	}
}

// TestService_SetupLinkBurnIsAtomic: two services over one log (two instances) use the same
// link at once, many times over: exactly one use wins each time.
func TestService_SetupLinkBurnIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := &memLog{}
	created := Event{Tenant: "t1", Kind: KindTenant, AggregateID: "t1", Type: EventTenantCreated,
		Data: TenantCreated{Name: "Acme", SCIMTokenHash: HashToken("scim")}}
	if _, err := log.Append(ctx, Batch{Tenant: "t1", Writes: []Write{{Event: created, NoExpect: true}}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := ssoTime
	a, b := linkService(log, &now, &mu, "a"), linkService(log, &now, &mu, "b")
	for range 20 {
		_, _, secret, err := a.CreateSetupLink(ctx, "t1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			svc := a
			if i%2 == 1 {
				svc = b
			}
			wg.Go(func() { _, errs[i] = svc.UseSetupLink(ctx, "t1", HashToken(secret), "") })
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, ErrSetupLinkUsed):
				t.Errorf("use: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d uses won, want 1", wins)
		}
	}
}
