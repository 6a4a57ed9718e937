package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// UserNames is the one rule by which userNames are accepted and compared. Uniqueness, the
// login index, SCIM filters and sign-ins all compare userNames through its Fold, so a name
// that one of them finds is the name the others find: a userName is one identity.
//
// SCIM userName is caseExact=false (RFC 7643 §4.1.1); idledger's rule is RFC 8265 PRECIS
// UsernameCaseMapped (width mapping, case mapping, NFC), which needs Unicode tables beyond the
// standard library: the adapter (projections/usernames) implements it and cmd wires it.
type UserNames interface {
	// Prepare returns the userName to store for the one a client sent: surrounding white space
	// trimmed, otherwise as sent (the stored value keeps its case and form). A name that is
	// empty, or holds an invisible, control or bidirectional-control character, is refused
	// with an error wrapping ErrInvalid.
	Prepare(name string) (string, error)
	// Fold returns the comparison key of a userName: two names are the same identity exactly
	// when their keys are equal. It accepts any string, also one Prepare refuses (names
	// stored by older versions).
	Fold(name string) string
}

// CaseFold is the [UserNames] of a [Service] that was given none: it folds with [FoldCase]
// and refuses control and format characters. It has no Unicode normalisation: production
// wires the PRECIS rule instead.
type CaseFold struct{}

// Prepare implements UserNames.
func (CaseFold) Prepare(name string) (string, error) { return PrepareUserName(name) }

// Fold implements UserNames.
func (CaseFold) Fold(name string) string { return FoldCase(name) }

// PrepareUserName trims a userName and refuses one that is empty or holds an invisible
// character: a control or format character (zero-width spaces and joiners, bidirectional
// controls such as U+202E, the byte order mark), a default-ignorable code point (Hangul
// fillers), a variation selector, or U+FFFD (a character lost in decoding). Those make two
// names look alike that are different identities, or reorder what an administrator reads. It
// returns an error wrapping ErrInvalid.
func PrepareUserName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", Errorf(ErrInvalid, "userName is required and must not be blank")
	}
	for _, r := range name {
		if invisible(r) {
			return "", Errorf(ErrInvalid, "userName contains the invisible or control character %s", codePoint(r))
		}
	}
	return name, nil
}

// invisible reports whether r shows nothing or changes how its neighbours show.
func invisible(r rune) bool {
	return r == unicode.ReplacementChar ||
		unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Co, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
		unicode.Is(unicode.Variation_Selector, r) ||
		(unicode.IsSpace(r) && r != ' ' && r != '\u00a0' && !unicode.Is(unicode.Zs, r))
}

// codePoint names r as U+XXXX, never echoing the character itself.
func codePoint(r rune) string { return fmt.Sprintf("U+%04X", r) }

// names returns the service's userName rule.
func (s *Service) names() UserNames {
	if s.Names == nil {
		return CaseFold{}
	}
	return s.Names
}

// prepareUserName applies the service's rule to a client's userName.
func (s *Service) prepareUserName(name string) (string, error) { return s.names().Prepare(name) }

// nameClaims returns the uniqueness operations that claim (or release) name for holder. A
// claim is keyed by the rule's Fold. Releases also free the key older versions claimed
// ([FoldCase] of the name) when it differs, so that a user created before the rule changed
// leaves nothing held behind when renamed or deleted.
func (s *Service) nameClaims(name, holder string, release bool) []UniqueOp {
	key := s.names().Fold(name)
	ops := []UniqueOp{{Field: "userName", Value: key, Holder: holder, Release: release}}
	if old := FoldCase(name); release && old != key {
		ops = append(ops, UniqueOp{Field: "userName", Value: old, Holder: holder, Release: true})
	}
	return ops
}

// heldUnderOldFold refuses name with ErrUniqueness when the read model knows another live user
// with the same key whose claim an older version may have keyed by [FoldCase]: where the two
// folds differ (NFC against NFD, full-width letters, the Kelvin sign), the log's claim under the
// rule's Fold would not see that holder. The read model indexes every userName by the current
// rule (it is rebuilt when the rule changes), so it finds them, with one point read.
func (s *Service) heldUnderOldFold(ctx context.Context, tenant TenantID, name, holder string) error {
	if s.Read == nil {
		return nil
	}
	u, err := s.Read.FindUserByUserName(ctx, tenant, name)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	case string(u.ID) != holder && !u.Deleted && FoldCase(u.UserName()) != s.names().Fold(u.UserName()):
		// The holder's claim may be keyed by the former fold; otherwise the log's claim decides.
		return fmt.Errorf("userName held under the former fold: %w", ErrUniqueness)
	}
	return nil
}
