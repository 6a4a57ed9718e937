package scim

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkMatch_flood matches the costliest filter the limits allow (49 substring searches
// that fail and one presence test) against a user as Entra provisions one.
func BenchmarkMatch_flood(b *testing.B) {
	terms := make([]string, 0, 50)
	for i := range 49 {
		terms = append(terms, fmt.Sprintf(`emails.value co "no-such-mailbox-%02d@nowhere.example"`, i))
	}
	f, err := ParseFilter(strings.Join(append(terms, "userName pr"), " or "))
	if err != nil {
		b.Fatal(err)
	}
	var user map[string]any
	if err := json.Unmarshal([]byte(`{"externalId":"given0000001","userName":"Given1.Family0000001@Contoso.example","active":true,
		"displayName":"Given1 Family1","title":null,"emails":[{"primary":true,"type":"work","value":"given1.family0000001@contoso.example"}],
		"name":{"formatted":"G F","familyName":"F","givenName":"G"},"roles":[],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","employeeNumber":"100001"}}`), &user); err != nil {
		b.Fatal(err)
	}
	m := Matcher{UserName: strings.ToLower}
	b.Run("Match", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !m.Match(f, user) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("Compile", func(b *testing.B) {
		match := m.Compile(f)
		b.ReportAllocs()
		for b.Loop() {
			if !match(user) {
				b.Fatal("no match")
			}
		}
	})
}
