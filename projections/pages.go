package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/projections/usernames"
)

// Keyset pages for the company console: each reads only the rows of its page (seeking to the
// key after the last one shown), never the whole company, so a page of a company of 100k
// users costs what a page of ten does.

// UsersPage returns up to limit users of the tenant in id order, starting after the id after
// ("" for the first page).
func (db *DB) UsersPage(_ context.Context, tenant domain.TenantID, after domain.UserID, limit int) ([]domain.User, error) {
	var out []domain.User
	err := db.view(func(tx *bolt.Tx) error {
		prefix := key(tenant, "")
		c := tx.Bucket(bucketUsers).Cursor()
		k, v := seekAfter(c, prefix, key(tenant, string(after)), after != "")
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			var u domain.User
			if err := unmarshalUser(v, &u); err != nil {
				return fmt.Errorf("projections: user %s: %w", k, err)
			}
			out = append(out, u)
		}
		return nil
	})
	return out, err
}

// UsersByNamePrefix returns up to limit users whose folded userName starts with the folded
// prefix, in folded userName order, starting after the folded name after ("" for the first).
func (db *DB) UsersByNamePrefix(_ context.Context, tenant domain.TenantID, prefix, after string, limit int) ([]domain.User, error) {
	var out []domain.User
	err := db.view(func(tx *bolt.Tx) error {
		start := key(tenant, usernames.Fold(prefix))
		c := tx.Bucket(bucketUserNames).Cursor()
		k, id := seekAfter(c, start, key(tenant, usernames.Fold(after)), after != "")
		for ; k != nil && bytes.HasPrefix(k, start) && len(out) < limit; k, id = c.Next() {
			var u domain.User
			if err := getUser(tx, key(tenant, string(id)), &u); err != nil {
				return err
			}
			out = append(out, u)
		}
		return nil
	})
	return out, err
}

// GroupsPage is UsersPage for groups.
func (db *DB) GroupsPage(_ context.Context, tenant domain.TenantID, after domain.GroupID, limit int) ([]domain.Group, error) {
	var out []domain.Group
	err := db.view(func(tx *bolt.Tx) error {
		prefix := key(tenant, "")
		c := tx.Bucket(bucketGroups).Cursor()
		k, v := seekAfter(c, prefix, key(tenant, string(after)), after != "")
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			var g domain.Group
			if err := unmarshalGroup(v, &g); err != nil {
				return fmt.Errorf("projections: group %s: %w", k, err)
			}
			out = append(out, g)
		}
		return nil
	})
	return out, err
}

// MembersPage returns up to limit members of the group in id order, starting after the user
// id after ("" for the first page).
func (db *DB) MembersPage(_ context.Context, tenant domain.TenantID, group domain.GroupID, after domain.UserID, limit int) ([]domain.Member, error) {
	var out []domain.Member
	err := db.view(func(tx *bolt.Tx) error {
		prefix := memberKey(tenant, string(group), "")
		c := tx.Bucket(bucketMembers).Cursor()
		k, v := seekAfter(c, prefix, memberKey(tenant, string(group), string(after)), after != "")
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			var m domain.Member
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("projections: member %s: %w", k, err)
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// seekAfter positions c on the first key of prefix, or with skip on the first key after from.
func seekAfter(c *bolt.Cursor, prefix, from []byte, skip bool) ([]byte, []byte) {
	if !skip {
		return c.Seek(prefix)
	}
	k, v := c.Seek(from)
	if k != nil && bytes.Equal(k, from) {
		k, v = c.Next()
	}
	return k, v
}
