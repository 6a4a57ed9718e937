package projections

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/projections/usernames"
)

// loginKeys returns the login-index keys of a user with these names: its folded userName and
// emails.
func (n *userNames) loginKeys(tenant domain.TenantID) [][]byte {
	count, size := len(n.emails), len(n.emails)*(len(tenant)+3)
	if n.hasUserName {
		count, size = count+1, size+len(tenant)+3+len(n.userName)
	}
	if count == 0 {
		return nil
	}
	for _, v := range n.emails {
		size += len(v)
	}
	buf, keys := make([]byte, 0, size), make([][]byte, 0, count)
	add := func(kind, v string) {
		start := len(buf)
		buf = append(append(append(buf, tenant...), kind...), v...)
		keys = append(keys, buf[start:len(buf):len(buf)])
	}
	if n.hasUserName {
		add("/u/", n.userName)
	}
	for _, v := range n.emails {
		add("/e/", v)
	}
	return keys
}

// relogin replaces a user's login-index entries, before and after an event that changed the
// user from before to after (with these names): it removes the entries of before that name
// the user, then puts those of after, except an email entry naming another user. An entry the
// file already holds as it would be put is not written again (nor removed and put back).
func (w *writer) relogin(tenant domain.TenantID, before, after *domain.User, beforeNames *userNames, afterNames userNames) error {
	was, keys := beforeNames.loginKeys(tenant), afterNames.loginKeys(tenant)
	in := func(keys [][]byte, k []byte) bool {
		return slices.ContainsFunc(keys, func(x []byte) bool { return bytes.Equal(x, k) })
	}
	for _, k := range was {
		if in(keys, k) {
			continue // put below, or left to the user it names
		}
		if e, ok := decodeLogin(w.get(rawLogin, k)); ok && e.User == before.ID {
			if err := w.del(rawLogin, k); err != nil {
				return err
			}
		}
	}
	var entry []byte
	for _, k := range keys {
		email := strings.Contains(string(k), "/e/")
		var old []byte
		if email || in(was, k) {
			old = w.get(rawLogin, k)
		}
		if email {
			// An email shared by two users must not sign either in by email: the userName wins.
			if e, ok := decodeLogin(old); ok && e.User != after.ID {
				continue
			}
		}
		if entry == nil {
			var err error
			if entry, err = marshalLogin(nil, domain.LoginEntry{User: after.ID, Active: after.Active()}); err != nil {
				return err
			}
		}
		if old != nil && bytes.Equal(old, entry) {
			continue // unchanged
		}
		if err := w.put(rawLogin, k, entry); err != nil {
			return err
		}
	}
	return nil
}

// decodeLogin decodes a stored login entry; it reports false for none or one that does not
// decode (which names no one).
func decodeLogin(raw []byte) (domain.LoginEntry, bool) {
	var e domain.LoginEntry
	if raw == nil || unmarshalLogin(raw, &e) != nil {
		return domain.LoginEntry{}, false
	}
	return e, true
}

// countUser moves a tenant's provisioning figures from a user's state before an event to
// after it.
func (w *writer) countUser(e *domain.Event, before, after *domain.User) error {
	return w.updateStats(e, func(s *domain.ProvisioningStats) {
		count(s, before, -1)
		count(s, after, 1)
	})
}

// count adds sign times u to the figures.
func count(s *domain.ProvisioningStats, u *domain.User, sign int) {
	if !u.Exists() {
		return
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

// countGroup adjusts the group count.
func (w *writer) countGroup(e *domain.Event, existed, exists bool) error {
	return w.updateStats(e, func(s *domain.ProvisioningStats) {
		switch {
		case existed && !exists:
			s.Groups--
		case !existed && exists:
			s.Groups++
		}
	})
}

// updateStats applies fn to the tenant's figures and records the last SCIM write.
func (w *writer) updateStats(e *domain.Event, fn func(*domain.ProvisioningStats)) error {
	r, err := w.stats.get([]byte(e.Tenant))
	if err != nil {
		return err
	}
	s := &r.val // changed in place: the cache holds the row for the transaction
	fn(s)
	if strings.HasPrefix(e.Actor, domain.ActorSCIMPrefix) && e.At.After(s.LastSCIMWrite) {
		s.LastSCIMWrite = e.At
	}
	s.Version = e.Version
	return w.stats.set(r, *s, e)
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
	folded := usernames.Fold(name)
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
