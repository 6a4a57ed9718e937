package projections

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim/scimtest"
)

// checkPartial checks that part decodes data as whole does, except that the resource holds
// only the keys of reads; or, where it falls back to whole (exact false), the whole resource.
// A row whole refuses is not checked: rows are written by marshalUser and marshalGroup, and
// a bad one is refused when it is decoded whole, on a page or held.
func checkPartial[T any](t *testing.T, data []byte, reads []string, exact bool,
	whole, part func([]byte, *T) error, resource func(*T) *map[string]any) {
	t.Helper()
	var want, got T
	if whole(data, &want) != nil {
		return
	}
	if err := part(data, &got); err != nil {
		t.Fatalf("partial decode of %q (reads %q): %v; whole decode succeeds", data, reads, err)
	}
	all := *resource(&want)
	*resource(&want) = scimtest.Restrict(all, reads)
	if reflect.DeepEqual(got, want) {
		return
	}
	if !exact {
		*resource(&want) = all
		if reflect.DeepEqual(got, want) {
			return
		}
	}
	t.Fatalf("partial decode of %q (reads %q) =\n%#v\nwant\n%#v", data, reads, got, want)
}

func userResource(u *domain.User) *map[string]any   { return &u.Resource }
func groupResource(g *domain.Group) *map[string]any { return &g.Resource }

// readsOf picks reads for a resource: some of its keys, in another case or as the prefix up
// to a ':', names it does not have, or none.
func (g rowGen) readsOf(res map[string]any) []string {
	reads := []string{}
	for k := range res {
		switch g.r.IntN(5) {
		case 0:
			reads = append(reads, k)
		case 1:
			reads = append(reads, strings.ToUpper(k))
		case 2:
			if i := strings.IndexByte(k, ':'); i >= 0 {
				reads = append(reads, k[:i+1])
			}
		}
	}
	for range g.r.IntN(3) {
		reads = append(reads, g.str())
	}
	return reads
}

// TestRowPartial_is_the_whole_row_restricted: a row decoded for the keys a filter reads is
// the row decoded whole with only those keys in its resource, for random rows (their keys with
// escapes, any case, prefixes) and for the rows the whole decoder leaves to encoding/json.
func TestRowPartial_is_the_whole_row_restricted(t *testing.T) {
	t.Parallel()
	g := rowGen{rand.New(rand.NewPCG(5, 6))}
	restricted := 0
	for range 5000 {
		u, gr := g.user(), g.group()
		if data, err := json.Marshal(u); err == nil {
			reads := g.readsOf(u.Resource)
			checkPartial(t, data, reads, true, unmarshalUser, userPartial(newAttrSet(reads)), userResource)
			if len(scimtest.Restrict(u.Resource, reads)) < len(u.Resource) {
				restricted++
			}
		}
		if data, err := json.Marshal(gr); err == nil {
			reads := g.readsOf(gr.Resource)
			checkPartial(t, data, reads, true, unmarshalGroup, groupPartial(newAttrSet(reads)), groupResource)
		}
	}
	if restricted < 1000 {
		t.Errorf("only %d of 5000 users were decoded with fewer keys", restricted)
	}
	for _, s := range rowJSONEdgeCases {
		for _, reads := range partialReads {
			checkPartial(t, []byte(s), reads, false, unmarshalUser, userPartial(newAttrSet(reads)), userResource)
			checkPartial(t, []byte(s), reads, false, unmarshalGroup, groupPartial(newAttrSet(reads)), groupResource)
		}
	}
}

var partialReads = [][]string{{}, {"a"}, {"S", "urn:"}, {"n", "m", "x", "t"}}

func FuzzRowPartial(f *testing.F) {
	for _, s := range rowJSONEdgeCases {
		f.Add([]byte(s), uint8(1))
	}
	f.Add([]byte(`{"resource":{"userName":"a","urn:x":{"b":[1,"\"]"]},"emails":[{"value":"}"}]}}`), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		reads := partialReads[int(which)%len(partialReads)]
		checkPartial(t, data, reads, false, unmarshalUser, userPartial(newAttrSet(reads)), userResource)
		checkPartial(t, data, reads, false, unmarshalGroup, groupPartial(newAttrSet(reads)), groupResource)
	})
}
