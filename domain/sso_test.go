package domain

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var ssoTime = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

func ssoService(log *memLog) *Service {
	n := 0
	return &Service{Log: log, Now: func() time.Time { return ssoTime }, NewID: func() string { n++; return fmt.Sprintf("e%d", n) }}
}

var testMetadata = IDPMetadataSet{
	Metadata: `<EntityDescriptor entityID="https://sts.windows.net/t/"/>`, EntityID: "https://sts.windows.net/t/",
	SSOURL:       "https://login.microsoftonline.com/t/saml2",
	Certificates: []IDPCertificate{{SHA256: "AA:BB", NotAfter: ssoTime.AddDate(1, 0, 0)}},
}

func TestService_SSOCommands(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	other := testMetadata
	other.Metadata += " "
	created := Event{Tenant: "t1", Kind: KindTenant, AggregateID: "t1", Type: EventTenantCreated, Data: TenantCreated{Name: "Acme"}}
	set := Event{Tenant: "t1", Kind: KindTenant, AggregateID: "t1", Type: EventTenantIDPMetadataSet, Data: testMetadata}
	allow := Event{Tenant: "t1", Kind: KindTenant, AggregateID: "t1", Type: EventTenantSSOSettingsChanged, Data: SSOSettingsChanged{AllowIDPInitiated: &yes}}
	tests := []struct {
		name     string
		given    []Event
		when     func(s *Service) (Tenant, error)
		want     []string // types appended
		wantErr  error
		wantSSO  SSOConfig
		checkSSO bool
	}{
		{name: "set metadata", given: []Event{created},
			when: func(s *Service) (Tenant, error) { return s.SetIDPMetadata(context.Background(), "t1", testMetadata) },
			want: []string{EventTenantIDPMetadataSet}, checkSSO: true,
			wantSSO: SSOConfig{IDPMetadataSHA256: MetadataSHA256(testMetadata.Metadata), IDPEntityID: testMetadata.EntityID, IDPSSOURL: testMetadata.SSOURL,
				Certificates: testMetadata.Certificates, MetadataSet: ssoTime}},
		{name: "same metadata again is no change", given: []Event{created, set},
			when: func(s *Service) (Tenant, error) { return s.SetIDPMetadata(context.Background(), "t1", testMetadata) }},
		{name: "new metadata replaces the trust set", given: []Event{created, set},
			when: func(s *Service) (Tenant, error) { return s.SetIDPMetadata(context.Background(), "t1", other) },
			want: []string{EventTenantIDPMetadataSet}},
		{name: "metadata for an unknown tenant", given: nil,
			when:    func(s *Service) (Tenant, error) { return s.SetIDPMetadata(context.Background(), "t1", testMetadata) },
			wantErr: ErrNotFound},
		{name: "metadata without certificates", given: []Event{created},
			when: func(s *Service) (Tenant, error) {
				md := testMetadata
				md.Certificates = nil
				return s.SetIDPMetadata(context.Background(), "t1", md)
			}, wantErr: ErrInvalid},
		{name: "metadata too large", given: []Event{created},
			when: func(s *Service) (Tenant, error) {
				md := testMetadata
				md.Metadata = strings.Repeat("<", MaxIDPMetadataSize)
				return s.SetIDPMetadata(context.Background(), "t1", md)
			}, wantErr: ErrInvalid},
		{name: "disable keeps the settings", given: []Event{created, set, allow},
			when: func(s *Service) (Tenant, error) { return s.DisableSSO(context.Background(), "t1") },
			want: []string{EventTenantSSODisabled}, checkSSO: true, wantSSO: SSOConfig{AllowIDPInitiated: true}},
		{name: "disable when off is no change", given: []Event{created},
			when: func(s *Service) (Tenant, error) { return s.DisableSSO(context.Background(), "t1") }},
		{name: "allow IdP-initiated", given: []Event{created},
			when: func(s *Service) (Tenant, error) { return s.SetSSOSettings(context.Background(), "t1", &yes) },
			want: []string{EventTenantSSOSettingsChanged}, checkSSO: true, wantSSO: SSOConfig{AllowIDPInitiated: true}},
		{name: "same setting is no change", given: []Event{created},
			when: func(s *Service) (Tenant, error) { return s.SetSSOSettings(context.Background(), "t1", &no) }},
		{name: "no setting is no change", given: []Event{created},
			when: func(s *Service) (Tenant, error) { return s.SetSSOSettings(context.Background(), "t1", nil) }},
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
			got, err := tt.when(ssoService(log))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var types []string
			for _, e := range log.events[n:] {
				types = append(types, e.Type)
				if e.Schema != 1 || e.At != ssoTime {
					t.Errorf("event %s: schema %d at %s", e.Type, e.Schema, e.At)
				}
			}
			if !reflect.DeepEqual(types, tt.want) {
				t.Errorf("appended %v, want %v", types, tt.want)
			}
			if tt.checkSSO && !reflect.DeepEqual(got.SSO, tt.wantSSO) {
				t.Errorf("SSO = %+v, want %+v", got.SSO, tt.wantSSO)
			}
			// The returned state is the fold of the log.
			if err == nil {
				var folded Tenant
				events, _, _ := log.Load(context.Background(), "t1", KindTenant, "t1")
				for _, e := range events {
					folded.Apply(e)
				}
				if !reflect.DeepEqual(folded, got) {
					t.Errorf("returned %+v, the log folds to %+v", got, folded)
				}
			}
		})
	}
}

func TestService_RecordSignIn(t *testing.T) {
	t.Parallel()
	log := &memLog{}
	s := ssoService(log)
	ctx := context.Background()
	if _, err := s.RecordSignIn(ctx, "t1", SignInRecorded{Reason: SignInUnknownUser}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown tenant: err = %v", err)
	}
	if _, err := log.Append(ctx, Batch{Tenant: "t1", Writes: []Write{{Event: Event{Tenant: "t1", Kind: KindTenant, Type: EventTenantCreated, Data: TenantCreated{}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordSignIn(ctx, "t1", SignInRecorded{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no reason: err = %v", err)
	}
	for _, r := range []SignInRecorded{
		{User: "u1", Reason: SignInOK, Source: "192.0.2.1", Flow: FlowSPInitiated},
		{User: "u1", Reason: SignInInactiveUser, Source: "192.0.2.1", Detail: strings.Repeat("é", 400)},
		{Reason: SignInUnknownUser, Source: "192.0.2.2"},
	} {
		if _, err := s.RecordSignIn(ctx, "t1", r); err != nil {
			t.Fatal(err)
		}
	}
	u1, _, _ := log.Load(ctx, "t1", KindSignIn, "u1")
	unknown, _, _ := log.Load(ctx, "t1", KindSignIn, SignInNoUser)
	if len(u1) != 2 || u1[0].Type != EventSignInSucceeded || u1[1].Type != EventSignInFailed || len(unknown) != 1 {
		t.Fatalf("u1 = %+v, unknown = %+v", u1, unknown)
	}
	if d := u1[1].Data.(SignInRecorded).Detail; len(d) > maxSignInDetail+len("…") || !strings.HasSuffix(d, "…") {
		t.Errorf("detail not bounded: %d bytes", len(d))
	}
	// Sign-ins never touch the user's or the tenant's versions.
	if v, _ := log.Version(ctx, "t1", KindUser, "u1"); v != 0 {
		t.Errorf("user version = %d", v)
	}
	// Payloads decode back to SignInRecorded.
	for _, typ := range []string{EventSignInSucceeded, EventSignInFailed} {
		b, _ := EncodeData(SignInRecorded{User: "u1", Reason: SignInOK})
		if d, err := DecodeData(typ, 1, b); err != nil || d.(SignInRecorded).User != "u1" {
			t.Errorf("%s: %v %+v", typ, err, d)
		}
	}
}

func TestSignInError(t *testing.T) {
	t.Parallel()
	cause := errors.New("signature element not present")
	err := error(&SignInError{Reason: SignInInvalidResponse, Err: cause})
	if !errors.Is(err, ErrForbidden) || !errors.Is(err, cause) {
		t.Errorf("%v does not match ErrForbidden and its cause", err)
	}
	if !strings.Contains(err.Error(), SignInInvalidResponse) || !strings.Contains(err.Error(), cause.Error()) {
		t.Errorf("Error() = %q", err.Error())
	}
}
