package domain

import (
	"context"
	"errors"
	"testing"
)

func TestService_Webhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := &memLog{}
	created := Event{Tenant: "t1", Kind: KindTenant, AggregateID: "t1", Type: EventTenantCreated,
		Data: TenantCreated{Name: "Acme", SCIMTokenHash: HashToken("scim")}}
	if _, err := log.Append(ctx, Batch{Tenant: "t1", Writes: []Write{{Event: created, NoExpect: true}}}); err != nil {
		t.Fatal(err)
	}
	s := ssoService(log)

	tn, w, err := s.CreateWebhook(ctx, "t1", WebhookCreated{URL: "https://h.example/x", Types: []string{"user.created"}, Description: " hr "})
	if err != nil {
		t.Fatal(err)
	}
	if w.ID == "" || w.Description != "hr" || w.Disabled || w.From != tn.Version || w.Epoch != tn.Version {
		t.Fatalf("created %+v (tenant at %d)", w, tn.Version)
	}
	if !w.Wants("user.created") || w.Wants("user.deleted") {
		t.Error("Wants ignores the types")
	}
	if _, _, err := s.CreateWebhook(ctx, "t2", WebhookCreated{URL: "https://h.example"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}

	v := tn.Version
	off := false
	tn, w, err = s.ChangeWebhook(ctx, "t1", WebhookChanged{ID: w.ID, Enabled: &off})
	if err != nil || !w.Disabled || tn.Version == v {
		t.Fatalf("pause: %+v, %v", w, err)
	}
	v = tn.Version
	if tn, _, err = s.ChangeWebhook(ctx, "t1", WebhookChanged{ID: w.ID, Enabled: &off}); err != nil || tn.Version != v {
		t.Errorf("a change that changes nothing appended (version %d → %d, %v)", v, tn.Version, err)
	}
	on := true
	if _, w, err = s.ChangeWebhook(ctx, "t1", WebhookChanged{ID: w.ID, Enabled: &on}); err != nil || w.Disabled {
		t.Fatalf("resume: %+v, %v", w, err)
	}
	if tn, err = s.DisableWebhook(ctx, "t1", w.ID, "failing"); err != nil {
		t.Fatal(err)
	}
	if got, _ := tn.Webhook(w.ID); !got.Disabled || got.DisabledReason != "failing" {
		t.Errorf("disabled: %+v", got)
	}
	if tn, err = s.ReplayWebhook(ctx, "t1", w.ID, 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := tn.Webhook(w.ID); got.From != 1 || got.Epoch != tn.Version {
		t.Errorf("replayed: %+v (tenant at %d)", got, tn.Version)
	}
	if tn, err = s.DeleteWebhook(ctx, "t1", w.ID); err != nil || len(tn.Webhooks) != 0 {
		t.Fatalf("delete: %+v, %v", tn.Webhooks, err)
	}
	if _, err := s.DeleteWebhook(ctx, "t1", w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}

	for _, bad := range []string{"http://h.example", "ftp://h.example", "/relative", "https://user:pw@h.example", "https://", "https://h.example/#f"} {
		if _, err := CheckWebhookURL(bad, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckWebhookURL(%q) = %v", bad, err)
		}
	}
	if _, err := CheckWebhookURL("http://127.0.0.1:8080/x", true); err != nil {
		t.Errorf("http with allowHTTP: %v", err)
	}
}
