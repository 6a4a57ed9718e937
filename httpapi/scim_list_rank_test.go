package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestList_sortBy_pages: a sorted list answers the page of the whole sorted list (stable: equal
// values keep creation order), for users and groups, both orders, stored and common
// attributes, startIndex past the matches, and a filter; totalResults counts every match.
func TestList_sortBy_pages(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, token := e.tenant(t, "A")
	names := []string{"delta", "Alpha", "charlie", "alpha", "Bravo", "echo", "bravo", "delta", "Alpha", "foxtrot", "charlie", "golf"}
	ids := make([]string, len(names))
	for i, n := range names {
		res := e.do(t, token, "POST", "/scim/v2/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
			"userName":"u%02d@example.com","displayName":%q}`, i, n))
		if res.Status != http.StatusCreated {
			t.Fatalf("create user %d: %d %s", i, res.Status, res.Body)
		}
		ids[i] = res.JSON(t)["id"].(string)
	}
	for _, n := range []string{"Staff", "admins", "Sales", "Beta"} {
		if res := e.do(t, token, "POST", "/scim/v2/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":%q}`, n)); res.Status != http.StatusCreated {
			t.Fatalf("create group %s: %d %s", n, res.Status, res.Body)
		}
	}
	// The users in the order a stable sort by displayName gives, case-insensitively.
	byName := make([]int, len(names))
	for i := range byName {
		byName[i] = i
	}
	slices.SortStableFunc(byName, func(a, b int) int { return strings.Compare(strings.ToLower(names[a]), strings.ToLower(names[b])) })
	desc := slices.Clone(byName)
	slices.SortStableFunc(desc, func(a, b int) int { return strings.Compare(strings.ToLower(names[b]), strings.ToLower(names[a])) })
	byID := make([]int, len(names))
	for i := range byID {
		byID[i] = i
	}
	slices.SortFunc(byID, func(a, b int) int { return strings.Compare(ids[b], ids[a]) }) // descending
	users := func(idx []int) string {
		var out []string
		for _, i := range idx {
			out = append(out, fmt.Sprintf("u%02d@example.com", i))
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		query string
		total int
		want  string
	}{
		{"/scim/v2/Users?sortBy=displayName&startIndex=3&count=4", 12, users(byName[2:6])},
		{"/scim/v2/Users?sortBy=DisplayName&sortOrder=descending&startIndex=2&count=5", 12, users(desc[1:6])},
		{"/scim/v2/Users?sortBy=displayName&count=100", 12, users(byName)},
		{"/scim/v2/Users?sortBy=displayName&startIndex=12&count=5", 12, users(byName[11:])},
		{"/scim/v2/Users?sortBy=displayName&startIndex=13", 12, ""},
		{"/scim/v2/Users?sortBy=displayName&count=0", 12, ""},
		{"/scim/v2/Users?sortBy=id&sortOrder=descending&count=3", 12, users(byID[:3])},
		{"/scim/v2/Users?sortBy=userName&startIndex=4&count=2&filter=" + strings.ReplaceAll(`displayName sw "a" or displayName eq "golf"`, " ", "%20"), 4, users([]int{11})},
		{"/scim/v2/Groups?sortBy=displayName&count=3", 4, "admins Beta Sales"},
		{"/scim/v2/Groups?sortBy=displayName&sortOrder=descending&startIndex=2", 4, "Sales Beta admins"},
	} {
		res := e.do(t, token, "GET", c.query, "")
		if res.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", c.query, res.Status, res.Body)
		}
		body := res.JSON(t)
		var got []string
		for _, r := range body["Resources"].([]any) {
			m := r.(map[string]any)
			if u, ok := m["userName"]; ok {
				got = append(got, u.(string))
			} else {
				got = append(got, m["displayName"].(string))
			}
		}
		if strings.Join(got, " ") != c.want || body["totalResults"] != float64(c.total) {
			t.Errorf("%s: %v (total %v), want %s (total %d)", c.query, got, body["totalResults"], c.want, c.total)
		}
	}
}
