package domain

import (
	"testing"
	"time"
)

func TestUser_IsAdmin(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		roles any
		want  bool
	}{
		{"no roles", nil, false},
		{"admin in any case", []any{map[string]any{"value": " Admin "}}, true},
		{"another role", []any{map[string]any{"value": "reader"}}, false},
		{"Entra's JSON-string value", []any{map[string]any{"value": `{"value":"ADMIN","displayName":"Admin"}`}}, true},
		{"Entra's JSON-string value of another role", []any{map[string]any{"value": `{"value":"reader"}`}}, false},
		{"broken JSON", []any{map[string]any{"value": `{"value":`}}, false},
		{"not an object", []any{"admin"}, false},
	} {
		u := User{Resource: map[string]any{"roles": tt.roles}}
		if got := u.IsAdmin(); got != tt.want {
			t.Errorf("%s: IsAdmin = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestProvisioning_Mode(t *testing.T) {
	t.Parallel()
	if m := (Provisioning{}).Mode(); m != ModeManual {
		t.Errorf("zero mode = %s", m)
	}
	if m := (Provisioning{Managed: true}).Mode(); m != ModeManaged {
		t.Errorf("managed mode = %s", m)
	}
	names := map[string]bool{}
	for _, o := range []Origin{OriginSystem, OriginSCIM, OriginCompanyAPI, OriginOperator, OriginSSO} {
		names[o.String()] = true
	}
	if len(names) != 5 {
		t.Errorf("origins share names: %v", names)
	}
}

func TestProjectionLag(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		lag    ProjectionLag
		events uint64
		age    time.Duration
	}{
		{ProjectionLag{Head: 10, Checkpoint: 4, Since: now.Add(-3 * time.Second)}, 6, 3 * time.Second},
		{ProjectionLag{Head: 4, Checkpoint: 4}, 0, 0},
		{ProjectionLag{Head: 3, Checkpoint: 4, Since: now.Add(time.Second)}, 0, 0},
	} {
		if got := tt.lag.Events(); got != tt.events {
			t.Errorf("%+v: Events = %d, want %d", tt.lag, got, tt.events)
		}
		if got := tt.lag.Age(now); got != tt.age {
			t.Errorf("%+v: Age = %s, want %s", tt.lag, got, tt.age)
		}
	}
}
