package domain

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestService_APIKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := &memLog{}
	created := Event{Tenant: "t1", Kind: KindTenant, AggregateID: "t1", Type: EventTenantCreated,
		Data: TenantCreated{Name: "Acme", SCIMTokenHash: HashToken("scim")}}
	if _, err := log.Append(ctx, Batch{Tenant: "t1", Writes: []Write{{Event: created, NoExpect: true}}}); err != nil {
		t.Fatal(err)
	}
	s := ssoService(log)

	for _, bad := range []struct {
		name   string
		scopes []string
	}{{"", []string{"sso:read"}}, {"ci", nil}, {"ci", []string{"sso:read", "sso:admin"}}, {strings.Repeat("n", MaxAPIKeyName+1), []string{"sso:read"}}} {
		if _, _, _, err := s.CreateAPIKey(ctx, "t1", bad.name, bad.scopes); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateAPIKey(%q, %v) err = %v, want ErrInvalid", bad.name, bad.scopes, err)
		}
	}
	if _, _, _, err := s.CreateAPIKey(ctx, "t2", "ci", []string{"sso:read"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tenant: err = %v", err)
	}

	tn, k, secret, err := s.CreateAPIKey(ctx, "t1", " backend ", []string{"sso:write", "sso:read", "sso:read"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, APIKeyPrefix) || k.Hash != HashToken(secret) || k.Name != "backend" {
		t.Errorf("key %+v, secret %q", k, secret)
	}
	if !slices.Equal(k.Scopes, []Scope{ScopeSSORead, ScopeSSOWrite}) || !k.Allows(ScopeSSOWrite) || k.Allows(ScopeUsersWrite) {
		t.Errorf("scopes = %v", k.Scopes)
	}
	if got, ok := tn.APIKeyByHash(HashToken(secret)); !ok || got.ID != k.ID {
		t.Errorf("APIKeyByHash = %+v %v", got, ok)
	}
	last := log.events[len(log.events)-1]
	raw, err := EncodeData(last.Data)
	if err != nil || strings.Contains(string(raw), secret) {
		t.Errorf("payload %s holds the secret (err %v)", raw, err)
	}

	tn, err = s.RevokeAPIKey(ctx, "t1", k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tn.APIKeyByHash(HashToken(secret)); ok || len(tn.APIKeys) != 0 {
		t.Errorf("revoked key still held: %+v", tn.APIKeys)
	}
	if _, err := s.RevokeAPIKey(ctx, "t1", k.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revoke: err = %v, want ErrNotFound", err)
	}

	// The fold of the decoded log agrees with the command's answer.
	var folded Tenant
	for _, e := range log.events {
		raw, err := EncodeData(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.Data, err = DecodeData(e.Type, SchemaOf(e.Type), raw); err != nil {
			t.Fatal(err)
		}
		folded.Apply(e)
	}
	if len(folded.APIKeys) != 0 || folded.Version != tn.Version {
		t.Errorf("folded = %+v, want no keys at version %d", folded, tn.Version)
	}
}
