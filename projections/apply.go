package projections

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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
	case domain.KindGroup:
		return applyGroup(tx, e)
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
	if strings.HasPrefix(e.Actor, domain.ActorSCIMPrefix) {
		if err := updateStats(tx, e, func(*domain.ProvisioningStats) {}); err != nil {
			return err
		}
	}
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
	if !u.Exists() && e.Type != domain.EventUserCreated && e.Type != domain.EventUserInvited {
		return nil // the user was deleted (or never created): nothing left to change
	}
	prev := u
	prev.Resource = u.Resource // Apply replaces the map, never mutates it
	before := userKeys(&u)
	u.Apply(e)
	if err := relogin(tx, e.Tenant, &prev, &u); err != nil {
		return err
	}
	if err := countUser(tx, e, &prev, &u); err != nil {
		return err
	}
	after := userKeys(&u)
	if u.Deleted {
		after = indexKeys{}
	}
	if err := reindex(tx, e.Tenant, e.AggregateID, before, after); err != nil {
		return err
	}
	if u.Deleted {
		if err := leaveAllGroups(tx, e.Tenant, e.AggregateID); err != nil {
			return err
		}
		return users.Delete(k)
	}
	return putJSON(users, k, u)
}

// indexKeys are the index entries of one resource.
type indexKeys struct {
	unique map[string]string   // bucket → value
	multi  map[string][]string // bucket → values
}

func userKeys(u *domain.User) indexKeys {
	ix := indexKeys{unique: map[string]string{}, multi: map[string][]string{}}
	if !u.Exists() {
		return ix
	}
	if n := u.UserName(); n != "" {
		ix.unique[string(bucketUserNames)] = domain.FoldUserName(n)
	}
	if x := u.ExternalID(); x != "" {
		ix.multi[string(bucketUserExtID)] = []string{x}
	}
	if emails, ok := u.Resource["emails"].([]any); ok {
		for _, el := range emails {
			if m, ok := el.(map[string]any); ok {
				if v, ok := m["value"].(string); ok && v != "" {
					ix.multi[string(bucketUserEmail)] = append(ix.multi[string(bucketUserEmail)], domain.FoldUserName(v))
				}
			}
		}
	}
	return ix
}

func groupKeys(g *domain.Group) indexKeys {
	ix := indexKeys{unique: map[string]string{}, multi: map[string][]string{}}
	if !g.Exists() {
		return ix
	}
	if n := g.DisplayName(); n != "" {
		ix.unique[string(bucketGroupName)] = domain.FoldUserName(n)
	}
	if x, _ := g.Resource["externalId"].(string); x != "" {
		ix.multi[string(bucketGroupExt)] = []string{x}
	}
	return ix
}

// reindex replaces a resource's index entries before → after.
func reindex(tx *bolt.Tx, tenant domain.TenantID, id string, before, after indexKeys) error {
	for b, v := range before.unique {
		if after.unique[b] != v {
			bk := tx.Bucket([]byte(b))
			// Only remove the entry if it still points at this resource.
			if string(bk.Get(key(tenant, v))) == id {
				if err := bk.Delete(key(tenant, v)); err != nil {
					return err
				}
			}
		}
	}
	for b, v := range after.unique {
		if err := tx.Bucket([]byte(b)).Put(key(tenant, v), []byte(id)); err != nil {
			return err
		}
	}
	for b, vals := range before.multi {
		for _, v := range vals {
			if err := tx.Bucket([]byte(b)).Delete(multiKey(tenant, v, id)); err != nil {
				return err
			}
		}
	}
	for b, vals := range after.multi {
		for _, v := range vals {
			if err := tx.Bucket([]byte(b)).Put(multiKey(tenant, v, id), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func multiKey(tenant domain.TenantID, value, id string) []byte {
	return append(append(key(tenant, value), 0), id...)
}

// leaveAllGroups removes a deleted user from every group it belonged to.
func leaveAllGroups(tx *bolt.Tx, tenant domain.TenantID, user string) error {
	ug := tx.Bucket(bucketUserGrps)
	prefix := memberKey(tenant, user, "")
	var groups []string
	c := ug.Cursor()
	for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
		groups = append(groups, string(k[len(prefix):]))
	}
	for _, g := range groups {
		removed, err := removeMember(tx, tenant, g, user)
		if err != nil {
			return err
		}
		if removed {
			if err := adjustCount(tx, tenant, g, -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// addMember records a membership and counts it on the group row; it reports whether the
// membership is new. Members naming no existing user are not recorded.
func addMember(tx *bolt.Tx, tenant domain.TenantID, group string, m domain.Member) (bool, error) {
	if tx.Bucket(bucketUsers).Get(key(tenant, m.Value)) == nil {
		return false, nil
	}
	mk := memberKey(tenant, group, m.Value)
	members := tx.Bucket(bucketMembers)
	isNew := members.Get(mk) == nil
	raw, err := json.Marshal(m)
	if err != nil {
		return false, err
	}
	if err := members.Put(mk, raw); err != nil {
		return false, err
	}
	if err := tx.Bucket(bucketUserGrps).Put(memberKey(tenant, m.Value, group), nil); err != nil {
		return false, err
	}
	return isNew, nil
}

// removeMember deletes a membership and reports whether there was one; the caller adjusts
// the group's member count (once per event, not once per member).
func removeMember(tx *bolt.Tx, tenant domain.TenantID, group, user string) (bool, error) {
	mk := memberKey(tenant, group, user)
	members := tx.Bucket(bucketMembers)
	if members.Get(mk) == nil {
		return false, nil
	}
	if err := members.Delete(mk); err != nil {
		return false, err
	}
	if err := tx.Bucket(bucketUserGrps).Delete(memberKey(tenant, user, group)); err != nil {
		return false, err
	}
	return true, nil
}

func adjustCount(tx *bolt.Tx, tenant domain.TenantID, group string, delta int) error {
	groups := tx.Bucket(bucketGroups)
	var g domain.Group
	if err := getJSON(groups, key(tenant, group), &g); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		return err
	}
	g.Members += delta
	return putJSON(groups, key(tenant, group), g)
}

func applyGroup(tx *bolt.Tx, e domain.Event) error {
	groups := tx.Bucket(bucketGroups)
	k := key(e.Tenant, e.AggregateID)
	var g domain.Group
	if err := getJSON(groups, k, &g); err != nil && !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	if e.Version <= g.Version {
		return nil
	}
	if !g.Exists() && e.Type != domain.EventGroupCreated {
		return nil
	}
	count := g.Members
	existed := g.Exists()
	before := groupKeys(&g)
	g.Apply(e)
	if err := countGroup(tx, e, existed, g.Exists()); err != nil {
		return err
	}
	g.Members = count
	after := groupKeys(&g)
	if g.Deleted {
		after = indexKeys{}
	}
	if err := reindex(tx, e.Tenant, e.AggregateID, before, after); err != nil {
		return err
	}
	if g.Deleted {
		var users []string
		prefix := memberKey(e.Tenant, e.AggregateID, "")
		c := tx.Bucket(bucketMembers).Cursor()
		for mk, _ := c.Seek(prefix); mk != nil && strings.HasPrefix(string(mk), string(prefix)); mk, _ = c.Next() {
			users = append(users, string(mk[len(prefix):]))
		}
		for _, u := range users {
			if _, err := removeMember(tx, e.Tenant, e.AggregateID, u); err != nil {
				return err
			}
		}
		return groups.Delete(k)
	}
	// Store the row first: member changes below adjust its count.
	if err := putJSON(groups, k, g); err != nil {
		return err
	}
	var add []domain.Member
	var remove []domain.UserID
	switch d := e.Data.(type) {
	case domain.GroupCreated:
		add = d.Members
	case domain.GroupMembersAdded:
		add = d.Members
	case domain.GroupMembersRemoved:
		remove = d.Members
	}
	delta := 0
	for _, m := range add {
		isNew, err := addMember(tx, e.Tenant, e.AggregateID, m)
		if err != nil {
			return fmt.Errorf("add member: %w", err)
		}
		if isNew {
			delta++
		}
	}
	for _, u := range remove {
		removed, err := removeMember(tx, e.Tenant, e.AggregateID, string(u))
		if err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
		if removed {
			delta--
		}
	}
	if delta != 0 {
		return adjustCount(tx, e.Tenant, e.AggregateID, delta)
	}
	return nil
}
