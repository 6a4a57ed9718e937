package httpapi

import (
	"fmt"
	"testing"
)

func TestChangeList(t *testing.T) {
	got := changeList(map[string]int{
		"group.members_added": 40, "user.created": 3, "tenant.provisioning_locked": 1, "x.unknown": 2, "user.deleted": 1,
	})
	want := "[{tenant.provisioning_locked provisioning taken over by Entra 1} {user.created users created 3} " +
		"{user.deleted users deleted 1} {group.members_added membership additions 40} {x.unknown x.unknown 2}]"
	if fmt.Sprint(got) != want {
		t.Errorf("changeList = %v\nwant %s", got, want)
	}
	if got := changeList(nil); len(got) != 0 {
		t.Errorf("changeList(nil) = %v", got)
	}
}

func TestStatusText(t *testing.T) {
	for in, want := range map[string]string{"409": "409 Conflict", "429": "429 Too Many Requests", "799": "799", "x": "x"} {
		if got := statusText(in); got != want {
			t.Errorf("statusText(%q) = %q, want %q", in, got, want)
		}
	}
}
