package projections

import (
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
)

// apply folds one event into the read models inside tx, with the domain's own Apply.
func apply(tx *bolt.Tx, e domain.Event) error {
	switch e.Kind {
	case domain.KindTenant:
		return applyTenant(tx, e)
	case domain.KindUser:
		return applyUser(tx, e)
	}
	return nil // index records and aggregates this projection does not keep
}

func applyTenant(tx *bolt.Tx, e domain.Event) error {
	tenants := tx.Bucket(bucketTenants)
	var t domain.Tenant
	if err := getJSON(tenants, []byte(e.Tenant), &t); err != nil && !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	if e.Version <= t.Version {
		return nil
	}
	oldHash := t.SCIMTokenHash
	t.Apply(e)
	if oldHash != t.SCIMTokenHash {
		tokens := tx.Bucket(bucketTokens)
		if oldHash != "" {
			if err := tokens.Delete([]byte(oldHash)); err != nil {
				return err
			}
		}
		if err := tokens.Put([]byte(t.SCIMTokenHash), []byte(t.ID)); err != nil {
			return err
		}
	}
	return putJSON(tenants, []byte(e.Tenant), t)
}

func applyUser(tx *bolt.Tx, e domain.Event) error {
	users := tx.Bucket(bucketUsers)
	k := key(e.Tenant, e.AggregateID)
	var u domain.User
	if err := getJSON(users, k, &u); err != nil && !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	if e.Version <= u.Version {
		return nil
	}
	oldName := u.UserName()
	u.Apply(e)
	if newName := u.UserName(); domain.FoldUserName(oldName) != domain.FoldUserName(newName) {
		names := tx.Bucket(bucketUserNames)
		if oldName != "" {
			if err := names.Delete(key(e.Tenant, domain.FoldUserName(oldName))); err != nil {
				return err
			}
		}
		if newName != "" {
			if err := names.Put(key(e.Tenant, domain.FoldUserName(newName)), []byte(e.AggregateID)); err != nil {
				return err
			}
		}
	}
	return putJSON(users, k, u)
}
