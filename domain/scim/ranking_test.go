package scim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRanking_agrees_with_SortResources: the first n a Ranking keeps are the first n of the
// stably sorted list, for every order, attribute kind and n, with many ties; Add reports
// held every one of them.
func TestRanking_agrees_with_SortResources(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"alice", "Bob", "bob", "carol", "", "Zed"}
	list := make([]map[string]any, 200)
	for i := range list {
		r := map[string]any{"seq": float64(i)}
		if v := names[rng.IntN(len(names))]; v != "" {
			r["displayName"] = v
		}
		if rng.IntN(3) > 0 {
			r["emails"] = []any{map[string]any{"value": names[rng.IntN(len(names))] + "@x", "primary": rng.IntN(2) == 0}}
		}
		r["active"] = rng.IntN(2) == 0
		r["name"] = map[string]any{"familyName": names[rng.IntN(len(names))]}
		r["userName"] = fmt.Sprintf("U%03d", rng.IntN(50))
		list[i] = r
	}
	for _, sortBy := range []string{"displayName", "DISPLAYNAME", "emails", "emails.value", "active", "name.familyName", "userName", "nosuch"} {
		for _, order := range []string{"", "ascending", "Descending"} {
			want := slices.Clone(list)
			if err := SortResources(want, sortBy, order); err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{0, 1, 7, 100, 200, 500} {
				r, err := NewRanking(sortBy, order, n)
				if err != nil || r == nil {
					t.Fatalf("NewRanking(%q, %q, %d) = %v, %v", sortBy, order, n, r, err)
				}
				held := map[any]bool{}
				for _, res := range list {
					held[res["seq"]] = r.Add(res, res["seq"])
				}
				got := r.Items()
				for _, item := range got {
					if !held[item] { // a read model completes only the resources Add reports held
						t.Errorf("sortBy %q %q n=%d: %v is kept, but Add reported it not held", sortBy, order, n, item)
					}
				}
				var wantSeq []any
				for _, res := range want[:min(n, len(want))] {
					wantSeq = append(wantSeq, res["seq"])
				}
				if fmt.Sprint(got) != fmt.Sprint(wantSeq) && !(len(got) == 0 && len(wantSeq) == 0) {
					t.Errorf("sortBy %q %q n=%d: got %v, want %v", sortBy, order, n, got, wantSeq)
				}
			}
		}
	}
}

// TestNewRanking_refuses: an invalid sortOrder is SortResources's error; paths a Ranking does
// not rank (extension URNs, empty or unreadable) give nil, for the caller to sort the list.
func TestNewRanking_refuses(t *testing.T) {
	if _, err := NewRanking("userName", "sideways", 10); !errors.Is(err, ErrInvalid) {
		t.Errorf("sortOrder sideways: %v, want ErrInvalid", err)
	}
	for _, sortBy := range []string{"", "  ", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "a.b.c", "na me"} {
		if r, err := NewRanking(sortBy, "", 10); r != nil || err != nil {
			t.Errorf("NewRanking(%q) = %v, %v; want nil, nil", sortBy, r, err)
		}
	}
	for sortBy, stored := range map[string]bool{"userName": true, "name.givenName": true, "id": false, "meta.created": false, "Meta.lastModified": false, "schemas": false} {
		if r, _ := NewRanking(sortBy, "", 1); r.ReadsStored() != stored {
			t.Errorf("%s: ReadsStored = %v, want %v", sortBy, !stored, stored)
		}
	}
}
