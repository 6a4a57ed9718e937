package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
)

// memberKey is the key of one membership: tenant "/" group "/" user (or user "/" group in
// user_groups).
func memberKey(tenant domain.TenantID, a, b string) []byte {
	k := make([]byte, 0, len(tenant)+len(a)+len(b)+2)
	return append(append(append(append(append(k, tenant...), '/'), a...), '/'), b...)
}

// FindGroup implements domain.GroupReader.
func (db *DB) FindGroup(_ context.Context, tenant domain.TenantID, id domain.GroupID) (domain.Group, error) {
	var g domain.Group
	err := db.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketGroups), key(tenant, string(id)), &g)
	})
	if errors.Is(err, domain.ErrNotFound) {
		return g, domain.Errorf(domain.ErrNotFound, "Group %s not found", id)
	}
	return g, err
}

// FindGroupByDisplayName implements domain.GroupReader.
func (db *DB) FindGroupByDisplayName(_ context.Context, tenant domain.TenantID, name string) (domain.Group, error) {
	var g domain.Group
	err := db.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketGroupName).Get(key(tenant, domain.FoldCase(name)))
		if id == nil {
			return domain.ErrNotFound
		}
		return getJSON(tx.Bucket(bucketGroups), key(tenant, string(id)), &g)
	})
	if errors.Is(err, domain.ErrNotFound) {
		return g, domain.Errorf(domain.ErrNotFound, "no group with displayName %q", name)
	}
	return g, err
}

// MemberSet implements domain.GroupReader with one point read per user.
func (db *DB) MemberSet(_ context.Context, tenant domain.TenantID, id domain.GroupID, users []domain.UserID) (map[domain.UserID]bool, error) {
	out := make(map[domain.UserID]bool, len(users))
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMembers)
		for _, u := range users {
			if b.Get(memberKey(tenant, string(id), string(u))) != nil {
				out[u] = true
			}
		}
		return nil
	})
	return out, err
}

// Members implements domain.GroupReader.
func (db *DB) Members(_ context.Context, tenant domain.TenantID, id domain.GroupID, fn func(domain.Member) bool) error {
	return db.view(func(tx *bolt.Tx) error {
		prefix := memberKey(tenant, string(id), "")
		c := tx.Bucket(bucketMembers).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m domain.Member
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("projections: member %s: %w", k, err)
			}
			if !fn(m) {
				return nil
			}
		}
		return nil
	})
}

// IsMember reports whether user is a member of group.
func (db *DB) IsMember(_ context.Context, tenant domain.TenantID, group domain.GroupID, user domain.UserID) (bool, error) {
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketMembers).Get(memberKey(tenant, string(group), string(user))) != nil
		return nil
	})
	return ok, err
}

// GroupsOf implements domain.GroupReader.
func (db *DB) GroupsOf(_ context.Context, tenant domain.TenantID, user domain.UserID) ([]domain.GroupID, error) {
	var out []domain.GroupID
	err := db.view(func(tx *bolt.Tx) error {
		prefix := memberKey(tenant, string(user), "")
		c := tx.Bucket(bucketUserGrps).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, domain.GroupID(k[len(prefix):]))
		}
		return nil
	})
	return out, err
}
