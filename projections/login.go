package projections

import (
	"context"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/projections/usernames"
)

// LoginByUserName resolves a SAML NameID to the user whose userName it is (ignoring case) and
// whether that user may sign in, with one point read of the login index. Unlike LookupLogin it
// never falls back to an email address: the NameID is matched against userName only
// (docs/saml-sso.md §1.5). It returns an error wrapping domain.ErrNotFound for an unknown name.
func (db *DB) LoginByUserName(_ context.Context, tenant domain.TenantID, name string) (domain.LoginEntry, error) {
	var e domain.LoginEntry
	err := db.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketLogin), []byte(string(tenant)+"/u/"+usernames.Fold(name)), &e)
	})
	if errors.Is(err, domain.ErrNotFound) {
		return e, domain.Errorf(domain.ErrNotFound, "no user has the userName %q", name)
	}
	return e, err
}
