package domain_test

import (
	"context"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
)

var h0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

// captureLog is an EventLog that keeps the batches it is given.
type captureLog struct{ batches []domain.Batch }

func (l *captureLog) Append(_ context.Context, b domain.Batch) (domain.Version, error) {
	l.batches = append(l.batches, b)
	return domain.Version(len(l.batches)), nil
}

func (l *captureLog) Load(context.Context, domain.TenantID, domain.Kind, string) ([]domain.Event, domain.Version, error) {
	return nil, 0, nil
}

func (l *captureLog) Version(context.Context, domain.TenantID, domain.Kind, string) (domain.Version, error) {
	return 0, nil
}

func TestHistory_NewEventStampsClientOfTokenClientsOnly(t *testing.T) {
	t.Parallel()
	for actor, want := range map[string]bool{"scim:abc": true, "api:abc": true, "admin": true, "anonymous": false, "system": false} {
		t.Run(actor, func(t *testing.T) {
			log := &captureLog{}
			svc := &domain.Service{Log: log, Now: func() time.Time { return h0 }, NewID: func() string { return "t1" }}
			ctx := domain.WithRequest(context.Background(), domain.Request{Actor: actor, Correlation: "r1",
				UserAgent: "Microsoft.Identity.ProvisioningService/1.0", Source: "203.0.113.9"})
			if _, _, err := svc.CreateTenant(ctx, "Acme"); err != nil {
				t.Fatal(err)
			}
			e := log.batches[0].Writes[0].Event
			if got := e.UserAgent != "" && e.Source == "203.0.113.9"; got != want {
				t.Errorf("event user agent %q source %q; stamped = %v, want %v", e.UserAgent, e.Source, got, want)
			}
		})
	}
}

func TestHistory_NewSyncCycleStarted(t *testing.T) {
	t.Parallel()
	for actor, want := range map[string]bool{"scim:abc": true, "anonymous": false} {
		t.Run(actor, func(t *testing.T) {
			ctx := domain.WithRequest(context.Background(), domain.Request{Actor: actor, Correlation: "r1",
				UserAgent: "Microsoft.Identity.ProvisioningService/1.0", Source: "203.0.113.9"})
			e := domain.NewSyncCycleStarted(ctx, "e1", "t1", h0, 3)
			if e.ID != "e1" || e.Tenant != "t1" || e.Kind != domain.KindCycle || e.AggregateID != domain.CycleClient ||
				e.Type != domain.EventSyncCycleStarted || e.Schema != domain.SchemaOf(domain.EventSyncCycleStarted) ||
				!e.At.Equal(h0) || e.Actor != actor || e.Correlation != "r1" {
				t.Errorf("marker = %+v", e)
			}
			if d, ok := e.Data.(domain.SyncCycleStarted); !ok || d != (domain.SyncCycleStarted{Number: 3, Request: "r1"}) {
				t.Errorf("data = %#v, want cycle 3 opened by r1", e.Data)
			}
			if got := e.UserAgent != "" && e.Source == "203.0.113.9"; got != want {
				t.Errorf("user agent %q source %q; stamped = %v, want %v", e.UserAgent, e.Source, got, want)
			}
		})
	}
}
