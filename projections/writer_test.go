package projections

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain"
)

func TestFold_is_FoldCase(t *testing.T) {
	t.Parallel()
	cases := []string{"", " ", "Ann@X.example", " BOB@x.example ", "\tTab\nName\v\f\r", "a/e/b", "Ünïcode@X.example",
		"ALLCAPS", "already.folded@x", "\u00a0nbsp\u00a0", "\u0085", "x\x00y", "ß", "İ", "K"}
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		var b strings.Builder
		for range r.IntN(8) {
			if r.IntN(4) == 0 {
				b.WriteRune(rune(r.IntN(0x3000)))
			} else {
				b.WriteByte(byte(r.IntN(128)))
			}
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		if got, want := fold(s), domain.FoldCase(s); got != want {
			t.Fatalf("fold(%q) = %q, FoldCase: %q", s, got, want)
		}
	}
}
