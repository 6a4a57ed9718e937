package domain

import (
	"testing"
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
