// Package usernames is idledger's userName rule, RFC 8265 PRECIS UsernameCaseMapped, for
// [domain.UserNames]: the one fold through which uniqueness, the read models' userName and
// login indexes, SCIM filters and SAML sign-ins compare userNames.
//
// A userName is trimmed of surrounding white space and otherwise stored as the client sent it.
// Its comparison key is, for each space-separated part, the PRECIS UsernameCaseMapped
// enforcement: full-width and half-width forms mapped to their decompositions (ｊｏｓé is
// josé), Unicode lower case (the Kelvin sign K is k; İ is i̇, i with a combining dot above, as
// Unicode's default case mapping says, not the dotless Turkish locale), then NFC (a decomposed
// e + U+0301 is é). Parts that PRECIS's IdentifierClass refuses (symbols, names stored by older
// versions) are folded through the same three mappings without its refusals, so Fold accepts
// every string and gives the same key as PRECIS wherever PRECIS gives one.
//
// Prepare refuses names with invisible, control and bidirectional-control characters
// ([domain.PrepareUserName]).
package usernames

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"

	"github.com/idledger/idledger/domain"
)

// Rule is the PRECIS userName rule. Its zero value is ready to use and safe for concurrent use.
type Rule struct{}

var _ domain.UserNames = Rule{}

// Prepare implements domain.UserNames.
func (Rule) Prepare(name string) (string, error) { return domain.PrepareUserName(name) }

// Fold implements domain.UserNames; see the package comment.
func (Rule) Fold(name string) string { return Fold(name) }

// Fold returns the comparison key of a userName; see the package comment. For an ASCII name it
// equals [domain.FoldCase] (width mapping and NFC change no ASCII), which is how claims made by
// older versions of ASCII names are found under the same key.
func Fold(name string) string {
	if ascii(name) {
		return domain.FoldCase(name)
	}
	name = strings.TrimSpace(name)
	var b strings.Builder
	b.Grow(len(name))
	start := 0
	for i, r := range name {
		if unicode.IsSpace(r) {
			b.WriteString(foldPart(name[start:i]))
			b.WriteByte(' ')
			start = i + utf8.RuneLen(r)
		}
	}
	b.WriteString(foldPart(name[start:]))
	return b.String()
}

// foldPart folds one part of a name that holds no white space.
func foldPart(p string) string {
	if p == "" {
		return ""
	}
	if k, err := precis.UsernameCaseMapped.String(p); err == nil {
		return k
	}
	// The same mappings, in PRECIS's order (RFC 8264 §7), without the class's refusals.
	p = width.Fold.String(p)
	p = cases.Lower(language.Und, cases.HandleFinalSigma(false)).String(p)
	return norm.NFC.String(p)
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
