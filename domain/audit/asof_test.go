package audit_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

var h0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

// userEvents is a user created at h0, renamed at h0+1m, deactivated at h0+2m, deleted at h0+3m.
func userEvents() []domain.Event {
	ev := func(seq int, min int, typ string, data any) domain.Event {
		return domain.Event{Tenant: "t1", Kind: domain.KindUser, AggregateID: "u1", Type: typ, Schema: 1,
			Version: domain.Version(seq), At: h0.Add(time.Duration(min) * time.Minute), Actor: "scim:abc", Data: data}
	}
	return []domain.Event{
		ev(3, 0, domain.EventUserCreated, domain.UserCreated{Attributes: map[string]any{"userName": "ada", "active": true}}),
		ev(7, 1, domain.EventUserAttributesChanged, domain.UserChanged{Changes: []domain.Change{{Path: "userName", Old: "ada", New: "ada.lovelace"}}}),
		ev(9, 2, domain.EventUserDeactivated, domain.UserChanged{Changes: []domain.Change{{Path: "active", Old: true, New: false}}}),
		ev(12, 3, domain.EventUserDeleted, domain.UserDeleted{}),
	}
}

func TestHistory_StateAt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		at         time.Time
		wantName   string
		wantActive bool
		wantVer    domain.Version
		wantGone   bool
	}{
		{"BeforeCreation", h0.Add(-time.Second), "", false, 0, false},
		{"AtCreation", h0, "ada", true, 3, false},
		{"BetweenChanges", h0.Add(90 * time.Second), "ada.lovelace", true, 7, false},
		{"Deactivated", h0.Add(2 * time.Minute), "ada.lovelace", false, 9, false},
		{"Deleted", h0.Add(time.Hour), "ada.lovelace", false, 12, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := audit.StateAt[domain.User](userEvents(), tt.at)
			if u.Version != tt.wantVer || u.UserName() != tt.wantName || u.Deleted != tt.wantGone {
				t.Errorf("StateAt = version %d userName %q deleted %v, want %d %q %v", u.Version, u.UserName(), u.Deleted, tt.wantVer, tt.wantName, tt.wantGone)
			}
			if u.Version != 0 && u.Active() != tt.wantActive {
				t.Errorf("active = %v, want %v", u.Active(), tt.wantActive)
			}
		})
	}
	t.Run("StopsAtFirstLaterEvent", func(t *testing.T) {
		// A clock that went backwards must not fold a later event into an earlier state.
		evs := userEvents()
		evs[2].At = h0.Add(30 * time.Second)
		u := audit.StateAt[domain.User](evs, h0.Add(45*time.Second))
		if u.Version != 3 {
			t.Errorf("version = %d, want 3", u.Version)
		}
	})
}

func TestHistory_MembersAt(t *testing.T) {
	t.Parallel()
	ev := func(seq, min int, typ string, data any) domain.Event {
		return domain.Event{Tenant: "t1", Kind: domain.KindGroup, AggregateID: "g1", Type: typ, Schema: 1,
			Version: domain.Version(seq), At: h0.Add(time.Duration(min) * time.Minute), Data: data}
	}
	events := []domain.Event{
		ev(1, 0, domain.EventGroupCreated, domain.GroupCreated{Attributes: map[string]any{"displayName": "Finance"},
			Members: []domain.Member{{Value: "u2"}}}),
		ev(4, 1, domain.EventGroupMembersAdded, domain.GroupMembersAdded{Members: []domain.Member{{Value: "u1", Display: "Ada"}, {Value: "u3"}}}),
		ev(5, 2, domain.EventGroupMembersRemoved, domain.GroupMembersRemoved{Members: []domain.UserID{"u2"}}),
		ev(8, 3, domain.EventGroupDeleted, domain.GroupDeleted{}),
	}
	tests := []struct {
		name    string
		at      time.Time
		want    []string
		deleted bool
	}{
		{"Created", h0, []string{"u2"}, false},
		{"Added", h0.Add(time.Minute), []string{"u1", "u2", "u3"}, false},
		{"Removed", h0.Add(2 * time.Minute), []string{"u1", "u3"}, false},
		{"Deleted", h0.Add(3 * time.Minute), []string{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, members := audit.MembersAt(events, tt.at)
			got := []string{}
			for _, m := range members {
				got = append(got, m.Value)
			}
			if !reflect.DeepEqual(got, tt.want) || g.Deleted != tt.deleted || g.Members != len(tt.want) {
				t.Errorf("MembersAt = %v deleted %v count %d, want %v %v", got, g.Deleted, g.Members, tt.want, tt.deleted)
			}
			if g.DisplayName() != "Finance" {
				t.Errorf("displayName = %q", g.DisplayName())
			}
		})
	}
}
