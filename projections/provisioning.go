package projections

import (
	"context"
	"errors"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
)

// loginKeys returns the login-index keys of a user: its folded userName and emails.
func loginKeys(tenant domain.TenantID, u *domain.User) [][]byte {
	if !u.Exists() {
		return nil
	}
	var keys [][]byte
	if n := u.UserName(); n != "" {
		keys = append(keys, []byte(string(tenant)+"/u/"+domain.FoldUserName(n)))
	}
	if emails, ok := u.Resource["emails"].([]any); ok {
		for _, el := range emails {
			if m, ok := el.(map[string]any); ok {
				if v, ok := m["value"].(string); ok && v != "" {
					keys = append(keys, []byte(string(tenant)+"/e/"+domain.FoldUserName(v)))
				}
			}
		}
	}
	return keys
}

// relogin replaces a user's login-index entries.
func relogin(tx *bolt.Tx, tenant domain.TenantID, before, after *domain.User) error {
	b := tx.Bucket(bucketLogin)
	for _, k := range loginKeys(tenant, before) {
		var e domain.LoginEntry
		if getJSON(b, k, &e) == nil && e.User == before.ID {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	for _, k := range loginKeys(tenant, after) {
		if strings.Contains(string(k), "/e/") {
			// An email shared by two users must not sign either in by email: the userName wins.
			var e domain.LoginEntry
			if getJSON(b, k, &e) == nil && e.User != after.ID {
				continue
			}
		}
		if err := putJSON(b, k, domain.LoginEntry{User: after.ID, Active: after.Active()}); err != nil {
			return err
		}
	}
	return nil
}

// countUser moves a tenant's provisioning figures from a user's state before an event to
// after it.
func countUser(tx *bolt.Tx, e domain.Event, before, after *domain.User) error {
	return updateStats(tx, e, func(s *domain.ProvisioningStats) {
		for sign, u := range map[int]*domain.User{-1: before, 1: after} {
			if !u.Exists() {
				continue
			}
			s.Users += sign
			if u.Active() {
				s.ActiveUsers += sign
				if u.IsAdmin() {
					s.Admins += sign
				}
			} else {
				s.InactiveUsers += sign
			}
			if u.Local {
				s.LocalUsers += sign
			}
		}
	})
}

// countGroup adjusts the group count.
func countGroup(tx *bolt.Tx, e domain.Event, existed, exists bool) error {
	return updateStats(tx, e, func(s *domain.ProvisioningStats) {
		switch {
		case existed && !exists:
			s.Groups--
		case !existed && exists:
			s.Groups++
		}
	})
}

// updateStats applies fn to the tenant's figures and records the last SCIM write.
func updateStats(tx *bolt.Tx, e domain.Event, fn func(*domain.ProvisioningStats)) error {
	b := tx.Bucket(bucketProv)
	var s domain.ProvisioningStats
	if err := getJSON(b, []byte(e.Tenant), &s); err != nil && !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	fn(&s)
	if strings.HasPrefix(e.Actor, domain.ActorSCIMPrefix) && e.At.After(s.LastSCIMWrite) {
		s.LastSCIMWrite = e.At
	}
	s.Version = e.Version
	return putJSON(b, []byte(e.Tenant), s)
}

// ProvisioningStats returns a company's provisioning figures (zero figures for a company
// without users or groups).
func (db *DB) ProvisioningStats(_ context.Context, tenant domain.TenantID) (domain.ProvisioningStats, error) {
	var s domain.ProvisioningStats
	err := db.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketProv), []byte(tenant), &s)
	})
	if errors.Is(err, domain.ErrNotFound) {
		err = nil
	}
	return s, err
}

// LookupLogin resolves a SAML NameID (a userName, or else an email) to a user and whether it
// may sign in, with one point read per key. It returns ErrNotFound for an unknown name.
func (db *DB) LookupLogin(_ context.Context, tenant domain.TenantID, name string) (domain.LoginEntry, error) {
	var e domain.LoginEntry
	folded := domain.FoldUserName(name)
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogin)
		if err := getJSON(b, []byte(string(tenant)+"/u/"+folded), &e); !errors.Is(err, domain.ErrNotFound) {
			return err
		}
		return getJSON(b, []byte(string(tenant)+"/e/"+folded), &e)
	})
	if errors.Is(err, domain.ErrNotFound) {
		return e, domain.Errorf(domain.ErrNotFound, "no user signs in as %q", name)
	}
	return e, err
}
