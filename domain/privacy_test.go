package domain

import (
	"reflect"
	"testing"
)

// TestMapPersonal: every personal value is passed with its person's id and replaced; ids,
// attribute names, paths, methods and counts stay; the original payload is not modified.
func TestMapPersonal(t *testing.T) {
	mark := func(user UserID, v any) (any, error) { return "sealed:" + string(user), nil }
	cases := []struct {
		name string
		e    Event
		want any
	}{
		{"user.created", Event{Kind: KindUser, AggregateID: "u1", Data: UserCreated{Schemas: []string{"s"},
			Attributes: map[string]any{"userName": "ada", "emails": []any{map[string]any{"value": "a@x"}}}}},
			UserCreated{Schemas: []string{"s"}, Attributes: map[string]any{"userName": "sealed:u1", "emails": "sealed:u1"}}},
		{"user.attributes_changed", Event{Kind: KindUser, AggregateID: "u1", Data: UserChanged{Method: "PATCH",
			Changes: []Change{{Path: "title", Old: "a", New: "b"}, {Path: "nickName", New: "n"}}, Operations: []any{"op"}}},
			UserChanged{Method: "PATCH", Changes: []Change{{Path: "title", Old: "sealed:u1", New: "sealed:u1"}, {Path: "nickName", New: "sealed:u1"}},
				Operations: "sealed:u1"}},
		{"signin", Event{Kind: KindSignIn, AggregateID: "u1", Data: SignInRecorded{User: "u1", Reason: "ok", Source: "198.51.100.4"}},
			SignInRecorded{User: "u1", Reason: "ok", Source: "sealed:u1"}},
		{"signin of nobody", Event{Kind: KindSignIn, AggregateID: SignInNoUser, Data: SignInRecorded{Reason: SignInUnknownUser, Source: "198.51.100.4"}},
			SignInRecorded{Reason: SignInUnknownUser, Source: "198.51.100.4"}},
		{"group.members_added", Event{Kind: KindGroup, AggregateID: "g1", Data: GroupMembersAdded{Members: []Member{{Value: "u1", Display: "Ada"}, {Value: "u2"}}}},
			GroupMembersAdded{Members: []Member{{Value: "u1", Display: "sealed:u1"}, {Value: "u2"}}}},
		{"group.created", Event{Kind: KindGroup, AggregateID: "g1", Data: GroupCreated{Attributes: map[string]any{"displayName": "Staff"},
			Members: []Member{{Value: "u2", Display: "Bob"}}}},
			GroupCreated{Attributes: map[string]any{"displayName": "Staff"}, Members: []Member{{Value: "u2", Display: "sealed:u2"}}}},
		{"group.renamed", Event{Kind: KindGroup, AggregateID: "g1", Data: GroupChanged{Changes: []Change{{Path: "displayName", Old: "A", New: "B"}}}},
			GroupChanged{Changes: []Change{{Path: "displayName", Old: "A", New: "B"}}}},
	}
	for _, c := range cases {
		before := cloneForTest(c.e.Data)
		got, err := MapPersonal(c.e, mark)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", c.name, got, c.want)
		}
		if !reflect.DeepEqual(c.e.Data, before) {
			t.Errorf("%s: the original payload was modified: %#v", c.name, c.e.Data)
		}
		if HasPersonal(c.e) != !reflect.DeepEqual(got, before) {
			t.Errorf("%s: HasPersonal = %v, but MapPersonal changed %v", c.name, HasPersonal(c.e), !reflect.DeepEqual(got, before))
		}
	}
}

// cloneForTest deep-copies a payload through its wire form.
func cloneForTest(v any) any {
	b, err := EncodeData(v)
	if err != nil {
		panic(err)
	}
	switch v.(type) {
	case UserCreated:
		out, _ := decodeJSON[UserCreated](b)
		return out
	case UserChanged:
		out, _ := decodeJSON[UserChanged](b)
		return out
	case SignInRecorded:
		out, _ := decodeJSON[SignInRecorded](b)
		return out
	case GroupMembersAdded:
		out, _ := decodeJSON[GroupMembersAdded](b)
		return out
	case GroupCreated:
		out, _ := decodeJSON[GroupCreated](b)
		return out
	case GroupChanged:
		out, _ := decodeJSON[GroupChanged](b)
		return out
	}
	panic("type")
}
