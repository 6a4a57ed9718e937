package projections

import (
	"slices"

	"github.com/idledger/idledger/domain"
)

// reindexSetupLinks keeps the token index in step with a company's setup links
// (domain/setuplinks.go): a link's secret hash leads to its company for as long as the company
// remembers the link, used or expired ones included (so that a second use is told "already
// used" rather than "unknown"); a revoked or forgotten link's hash leads nowhere. The tenant
// row tells which credential, if any, a hash is: a setup link's never opens an API.
func (w *writer) reindexSetupLinks(id domain.TenantID, before, after []domain.SetupLink) error {
	for _, l := range before {
		if !slices.ContainsFunc(after, func(a domain.SetupLink) bool { return a.Hash == l.Hash }) {
			if err := w.del(rawTokens, []byte(l.Hash)); err != nil {
				return err
			}
		}
	}
	for _, l := range after {
		if !slices.ContainsFunc(before, func(b domain.SetupLink) bool { return b.Hash == l.Hash }) {
			if err := w.put(rawTokens, []byte(l.Hash), []byte(id)); err != nil {
				return err
			}
		}
	}
	return nil
}
