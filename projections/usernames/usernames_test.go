package usernames_test

import (
	"errors"
	"sync"
	"testing"

	"golang.org/x/text/secure/precis"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/projections/usernames"
)

// The cases of one identity: each pair is the same userName written two ways.
var sameName = []struct{ name, a, b string }{
	{"trim", " trim@u.com ", "trim@u.com"},
	{"trim tab and newline", "\ttrim@u.com\n", "trim@u.com"},
	{"NBSP around", "\u00a0trim@u.com\u00a0", "trim@u.com"},
	{"case", "Ada.Lovelace@Contoso.com", "ada.lovelace@contoso.com"},
	{"NFC and NFD", "jos\u00e9@u.com", "jose\u0301@u.com"},
	{"full-width", "\uff4a\uff4f\uff53\u00e9@u.com", "jos\u00e9@u.com"},
	{"full-width capitals", "\uff21\uff24\uff21@u.com", "ada@u.com"},
	{"Kelvin sign", "\u212aelvin@u.com", "kelvin@u.com"},
	{"Turkish dotted capital I", "\u0130stanbul@u.com", "i\u0307stanbul@u.com"},
	{"Greek final sigma kept apart from its capital", "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3@u.com", "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c3@u.com"},
}

// Different identities stay different.
var differentName = []struct{ name, a, b string }{
	{"dotless i", "\u0131stanbul@u.com", "istanbul@u.com"},
	{"dotted capital I is not plain i", "\u0130stanbul@u.com", "istanbul@u.com"},
	{"inner space", "ada lovelace", "adalovelace"},
	{"accent", "jose@u.com", "jos\u00e9@u.com"},
}

func TestFold_OneIdentity(t *testing.T) {
	for _, c := range sameName {
		if a, b := usernames.Fold(c.a), usernames.Fold(c.b); a != b {
			t.Errorf("%s: Fold(%+q) = %+q, Fold(%+q) = %+q; want equal", c.name, c.a, a, c.b, b)
		}
	}
	for _, c := range differentName {
		if a, b := usernames.Fold(c.a), usernames.Fold(c.b); a == b {
			t.Errorf("%s: Fold(%+q) = Fold(%+q) = %+q; want different", c.name, c.a, c.b, a)
		}
	}
}

// TestFold_IsPRECIS: where PRECIS UsernameCaseMapped accepts a name, Fold gives its answer; for
// ASCII names Fold is the former fold, so that old claims keep their keys.
func TestFold_IsPRECIS(t *testing.T) {
	for _, s := range []string{"ada@u.com", "Jos\u00e9", "jose\u0301", "\uff2a\uff2f", "\u212a", "\u0130x", "\u03a3\u03c3", "\u00c5ngstr\u00f6m"} {
		want, err := precis.UsernameCaseMapped.String(s)
		if err != nil {
			t.Fatalf("PRECIS refuses %+q: %v", s, err)
		}
		if got := usernames.Fold(s); got != want {
			t.Errorf("Fold(%+q) = %+q, PRECIS %+q", s, got, want)
		}
	}
	for _, s := range []string{" Ada Lovelace ", "A\tB", "x@Y.com", ""} {
		if got, want := usernames.Fold(s), domain.FoldCase(s); got != want {
			t.Errorf("Fold(%q) = %q, FoldCase %q", s, got, want)
		}
	}
	// Parts PRECIS refuses still fold (a name stored by an older version).
	if got := usernames.Fold("\u2603 Snow\uff2d\uff21\uff2e"); got != "\u2603 snowman" {
		t.Errorf("Fold(snowman) = %+q", got)
	}
}

func TestPrepare(t *testing.T) {
	var r usernames.Rule
	for in, want := range map[string]string{
		" trim@u.com ":            "trim@u.com",
		"\u00a0Ada@U.com\u00a0":   "Ada@U.com",
		"jose\u0301@u.com":        "jose\u0301@u.com", // stored as sent; compared through Fold
		"\uff4a\uff4f@u.com":      "\uff4a\uff4f@u.com",
		"ada lovelace":            "ada lovelace",
		"\u212aelvin":             "\u212aelvin",
		"\u0130stanbul@u.com":     "\u0130stanbul@u.com",
		"ada\u00a0lovelace@u.com": "ada\u00a0lovelace@u.com",
	} {
		got, err := r.Prepare(in)
		if err != nil || got != want {
			t.Errorf("Prepare(%+q) = %+q, %v; want %+q", in, got, err, want)
		}
	}
	for name, in := range map[string]string{
		"empty":                  "",
		"blank":                  " \u00a0\t",
		"only zero-width space":  "\u200b",
		"zero-width space":       "ada\u200b@u.com",
		"zero-width joiner":      "ad\u200da@u.com",
		"byte order mark":        "\ufeffada@u.com",
		"right-to-left override": "ada\u202e@u.com",
		"left-to-right mark":     "ada\u200e@u.com",
		"isolate":                "\u2066ada@u.com\u2069",
		"tab inside":             "ada\tlovelace",
		"Hangul filler":          "ada\u3164@u.com",
		"variation selector":     "ada\ufe0f@u.com",
		"line separator":         "ada\u2028x",
	} {
		if got, err := r.Prepare(in); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: Prepare(%+q) = %+q, %v; want ErrInvalid", name, in, got, err)
		}
	}
}

// TestFold_Concurrent: the rule is shared by every request; the race detector checks it.
func TestFold_Concurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				for _, c := range sameName {
					if usernames.Fold(c.a) != usernames.Fold(c.b) {
						t.Error("fold differs under concurrency")
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
