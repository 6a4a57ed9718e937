package domain

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestService_RotateSCIMToken(t *testing.T) {
	t.Parallel()
	created := Event{Tenant: "t1", Kind: KindTenant, AggregateID: "t1", Type: EventTenantCreated,
		Data: TenantCreated{Name: "Acme", SCIMTokenHash: HashToken("old")}}
	tests := []struct {
		name    string
		given   []Event
		tenant  TenantID
		wantErr error
	}{
		{name: "rotate", given: []Event{created}, tenant: "t1"},
		{name: "rotate again", given: []Event{created, {Tenant: "t1", Kind: KindTenant, AggregateID: "t1",
			Type: EventTenantSCIMTokenRotated, Data: SCIMTokenRotated{SCIMTokenHash: HashToken("second")}}}, tenant: "t1"},
		{name: "unknown tenant", given: []Event{created}, tenant: "t2", wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log := &memLog{}
			for _, e := range tt.given {
				if _, err := log.Append(context.Background(), Batch{Tenant: e.Tenant, Writes: []Write{{Event: e, NoExpect: true}}}); err != nil {
					t.Fatal(err)
				}
			}
			n := len(log.events)
			tenant, token, err := ssoService(log).RotateSCIMToken(context.Background(), tt.tenant)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			appended := log.events[n:]
			if tt.wantErr != nil {
				if len(appended) != 0 || token != "" {
					t.Errorf("appended %v and returned token %q on error", appended, token)
				}
				return
			}
			if len(appended) != 1 || appended[0].Type != EventTenantSCIMTokenRotated {
				t.Fatalf("appended %+v, want one %s", appended, EventTenantSCIMTokenRotated)
			}
			d, _ := appended[0].Data.(SCIMTokenRotated)
			if !strings.HasPrefix(token, "idl_") || d.SCIMTokenHash != HashToken(token) {
				t.Errorf("token %q, event hash %q: the event must carry the new token's hash", token, d.SCIMTokenHash)
			}
			if tenant.SCIMTokenHash != HashToken(token) || tenant.Name != "Acme" || tenant.Version != appended[0].Version {
				t.Errorf("tenant = %+v", tenant)
			}
			raw, err := EncodeData(appended[0].Data)
			if err != nil || strings.Contains(string(raw), token) {
				t.Errorf("payload %s holds the token (err %v)", raw, err)
			}
			// The fold from the log agrees, and a decoded payload folds the same way.
			decoded, err := DecodeData(appended[0].Type, SchemaOf(appended[0].Type), raw)
			if err != nil {
				t.Fatal(err)
			}
			var folded Tenant
			for _, e := range log.events {
				if e.Type == EventTenantSCIMTokenRotated && e.ID == appended[0].ID {
					e.Data = decoded
				}
				folded.Apply(e)
			}
			if folded.SCIMTokenHash != HashToken(token) {
				t.Errorf("folded hash = %q, want the new token's", folded.SCIMTokenHash)
			}
		})
	}
}
