package projections

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/idledger/idledger/domain"
)

// apply folds one event into the read models through w, with the domain's own Apply.
func (w *writer) apply(e *domain.Event) error {
	w.ev = e
	switch e.Kind {
	case domain.KindTenant:
		return w.applyTenant(e)
	case domain.KindUser:
		return w.applyUser(e)
	case domain.KindGroup:
		return w.applyGroup(e)
	}
	return nil // index records and aggregates this projection does not keep
}

// getJSON decodes the row k of bucket id into v; it returns domain.ErrNotFound if there is none.
func (w *writer) getJSON(id rawID, k []byte, v any) error {
	raw := w.get(id, k)
	if raw == nil {
		return domain.ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("projections: decode %s: %w", k, err)
	}
	return nil
}

// putJSON encodes v as the row k of bucket id.
func (w *writer) putJSON(id rawID, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("projections: encode %s: %w", k, err)
	}
	return w.put(id, k, raw)
}

func (w *writer) applyTenant(e *domain.Event) error {
	var t domain.Tenant
	if err := w.getJSON(rawTenants, []byte(e.Tenant), &t); err != nil && !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	if e.Version <= t.Version {
		return nil
	}
	oldHash, oldKeys, oldLinks := t.SCIMTokenHash, t.APIKeys, t.SetupLinks
	t.Apply(*e)
	if strings.HasPrefix(e.Actor, domain.ActorSCIMPrefix) {
		if err := w.updateStats(e, func(*domain.ProvisioningStats) {}); err != nil {
			return err
		}
	}
	if oldHash != t.SCIMTokenHash {
		if oldHash != "" {
			if err := w.del(rawTokens, []byte(oldHash)); err != nil {
				return err
			}
		}
		if err := w.put(rawTokens, []byte(t.SCIMTokenHash), []byte(t.ID)); err != nil {
			return err
		}
	}
	if err := w.reindexAPIKeys(t.ID, oldKeys, t.APIKeys); err != nil {
		return err
	}
	if err := w.reindexSetupLinks(t.ID, oldLinks, t.SetupLinks); err != nil {
		return err
	}
	return w.putJSON(rawTenants, []byte(e.Tenant), t)
}

// reindexAPIKeys keeps the token index in step with a company's API keys: a created key's hash
// leads to its company like the SCIM token's (the tenant row then tells which credential it is),
// a revoked key's hash leads nowhere.
func (w *writer) reindexAPIKeys(id domain.TenantID, before, after []domain.APIKey) error {
	for _, k := range before {
		if !slices.ContainsFunc(after, func(a domain.APIKey) bool { return a.Hash == k.Hash }) {
			if err := w.del(rawTokens, []byte(k.Hash)); err != nil {
				return err
			}
		}
	}
	for _, k := range after {
		if !slices.ContainsFunc(before, func(b domain.APIKey) bool { return b.Hash == k.Hash }) {
			if err := w.put(rawTokens, []byte(k.Hash), []byte(id)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *writer) applyUser(e *domain.Event) error {
	r, err := w.users.get(rowKey(e.Tenant, e.AggregateID))
	if err != nil {
		return err
	}
	u := r.val.User
	if e.Version <= u.Version {
		return nil
	}
	if !u.Exists() && e.Type != domain.EventUserCreated && e.Type != domain.EventUserInvited {
		return nil // the user was deleted (or never created): nothing left to change
	}
	prev := u // Apply replaces the Resource map, never mutates it
	before := r.val.userNames()
	u.Apply(*e)
	after := namesOf(&u) // none once deleted
	if err := w.relogin(e.Tenant, &prev, &u, before, after); err != nil {
		return err
	}
	if err := w.countUser(e, &prev, &u); err != nil {
		return err
	}
	if err := w.reindex(e.Tenant, e.AggregateID, before.indexKeys(), after.indexKeys()); err != nil {
		return err
	}
	if u.Deleted {
		// The memberships the user had end with the group.members_removed events that the
		// delete appended on each group (Service.DeleteUser decides that cascade, in one place);
		// they are applied like any other membership change.
		w.users.del(r, e)
		return nil
	}
	return w.users.set(r, userRow{User: u, names: &after}, e)
}

// A userRow is a row of the users bucket, with the user's names once they are computed.
type userRow struct {
	domain.User
	names *userNames // nil until computed
}

// userNames returns the names of the row's user, computing them once.
func (r *userRow) userNames() *userNames {
	if r.names == nil {
		n := namesOf(&r.User)
		r.names = &n
	}
	return r.names
}

func marshalUserRow(dst []byte, r userRow) ([]byte, error) { return marshalUser(dst, r.User) }

func unmarshalUserRow(data []byte, r *userRow) error { return unmarshalUser(data, &r.User) }

// userNames are what a user is found by, folded as the indexes and the login index keep them.
// A user that does not exist has none.
type userNames struct {
	userName    string   // folded; kept only when the userName is not empty
	hasUserName bool     // (its folded form may be)
	externalID  string   // as is; "" if none
	emails      []string // folded, of each email whose value is not empty, in order
}

func namesOf(u *domain.User) userNames {
	var n userNames
	if !u.Exists() {
		return n
	}
	if s := u.UserName(); s != "" {
		n.userName, n.hasUserName = fold(s), true
	}
	n.externalID = u.ExternalID()
	if emails, ok := u.Resource["emails"].([]any); ok {
		for _, el := range emails {
			if m, ok := el.(map[string]any); ok {
				if v, ok := m["value"].(string); ok && v != "" {
					n.emails = append(n.emails, fold(v))
				}
			}
		}
	}
	return n
}

// fold is domain.FoldUserName, without allocating for an ASCII name already folded.
func fold(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return domain.FoldUserName(s)
		}
	}
	// For ASCII, FoldUserName trims \t \n \v \f \r and spaces, turns the first five into spaces
	// and lower-cases A-Z.
	s = strings.TrimSpace(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; ('A' <= c && c <= 'Z') || (c != ' ' && c <= '\r' && c >= '\t') {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				switch c := b[j]; {
				case 'A' <= c && c <= 'Z':
					b[j] = c + 'a' - 'A'
				case '\t' <= c && c <= '\r':
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return s
}

// indexKeys are the index entries of one resource: at most one value per unique index (value
// → id) and any number per multi-valued one (value NUL id → "").
type indexKeys struct {
	unique []indexKey
	multi  []indexKey
}

// An indexKey is one value in one index bucket.
type indexKey struct {
	bucket rawID
	value  string
}

// has reports whether keys holds k.
func has(keys []indexKey, k indexKey) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// indexKeys returns the index entries of a user with these names.
func (n *userNames) indexKeys() indexKeys {
	var ix indexKeys
	if n.hasUserName {
		ix.unique = []indexKey{{rawUserNames, n.userName}}
	}
	if n.externalID != "" || len(n.emails) > 0 {
		ix.multi = make([]indexKey, 0, 1+len(n.emails))
	}
	if n.externalID != "" {
		ix.multi = append(ix.multi, indexKey{rawUserExtID, n.externalID})
	}
	for _, v := range n.emails {
		ix.multi = append(ix.multi, indexKey{rawUserEmail, v})
	}
	return ix
}

func groupKeys(g *domain.Group) indexKeys {
	var ix indexKeys
	if !g.Exists() {
		return ix
	}
	if n := g.DisplayName(); n != "" {
		ix.unique = append(ix.unique, indexKey{rawGroupName, fold(n)})
	}
	if x, _ := g.Resource["externalId"].(string); x != "" {
		ix.multi = append(ix.multi, indexKey{rawGroupExt, x})
	}
	return ix
}

// reindex replaces a resource's index entries before → after: it removes the unique entries
// whose value changed (if they still point at this resource) and the multi-valued ones of
// before, then puts every entry of after. An entry in both that the file already holds as it
// would be put is not written again (nor removed and put back).
func (w *writer) reindex(tenant domain.TenantID, id string, before, after indexKeys) error {
	for _, k := range before.unique {
		if has(after.unique, k) {
			continue
		}
		// Only remove the entry if it still points at this resource.
		if uk := w.scratchKey(tenant, k.value); string(w.get(k.bucket, uk)) == id {
			if err := w.del(k.bucket, uk); err != nil {
				return err
			}
		}
	}
	for _, k := range after.unique {
		uk := w.scratchKey(tenant, k.value)
		if has(before.unique, k) && string(w.get(k.bucket, uk)) == id {
			continue
		}
		if err := w.put(k.bucket, uk, []byte(id)); err != nil {
			return err
		}
	}
	for _, k := range before.multi {
		if !has(after.multi, k) {
			if err := w.del(k.bucket, w.scratchKey3(tenant, k.value, 0, id)); err != nil {
				return err
			}
		}
	}
	for _, k := range after.multi {
		mk := w.scratchKey3(tenant, k.value, 0, id)
		if has(before.multi, k) {
			if v, ok := w.stored(k.bucket, mk); ok && len(v) == 0 {
				continue
			}
		}
		if err := w.put(k.bucket, mk, nil); err != nil {
			return err
		}
	}
	return nil
}

// rowKey is key(tenant, id), built with one allocation.
func rowKey(tenant domain.TenantID, id string) []byte {
	b := make([]byte, 0, len(tenant)+1+len(id))
	return append(append(append(b, tenant...), '/'), id...)
}

// addMember records a membership and counts it on the group row; it reports whether the
// membership is new. Members naming no existing user are not recorded.
func (w *writer) addMember(tenant domain.TenantID, group string, m domain.Member) (bool, error) {
	if !w.users.exists(w.scratchKey(tenant, m.Value)) {
		return false, nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return false, err
	}
	mk := w.scratchKey3(tenant, group, '/', m.Value)
	isNew := w.get(rawMembers, mk) == nil
	if err := w.put(rawMembers, mk, raw); err != nil {
		return false, err
	}
	if err := w.put(rawUserGroups, w.scratchKey3(tenant, m.Value, '/', group), nil); err != nil {
		return false, err
	}
	return isNew, nil
}

// removeMember deletes a membership and reports whether there was one; the caller adjusts
// the group's member count (once per event, not once per member).
func (w *writer) removeMember(tenant domain.TenantID, group, user string) (bool, error) {
	mk := w.scratchKey3(tenant, group, '/', user)
	if w.get(rawMembers, mk) == nil {
		return false, nil
	}
	if err := w.del(rawMembers, mk); err != nil {
		return false, err
	}
	if err := w.del(rawUserGroups, w.scratchKey3(tenant, user, '/', group)); err != nil {
		return false, err
	}
	return true, nil
}

func (w *writer) adjustCount(tenant domain.TenantID, group string, delta int) error {
	r, err := w.groups.get(rowKey(tenant, group))
	if err != nil {
		return err
	}
	if !r.present {
		return nil
	}
	g := r.val
	g.Members += delta
	return w.groups.set(r, g, w.ev)
}

func (w *writer) applyGroup(e *domain.Event) error {
	r, err := w.groups.get(rowKey(e.Tenant, e.AggregateID))
	if err != nil {
		return err
	}
	g := r.val
	if e.Version <= g.Version {
		return nil
	}
	if !g.Exists() && e.Type != domain.EventGroupCreated {
		return nil
	}
	count := g.Members
	existed := g.Exists()
	before := groupKeys(&g)
	g.Apply(*e)
	if err := w.countGroup(e, existed, g.Exists()); err != nil {
		return err
	}
	g.Members = count
	after := groupKeys(&g)
	if g.Deleted {
		after = indexKeys{}
	}
	if err := w.reindex(e.Tenant, e.AggregateID, before, after); err != nil {
		return err
	}
	if g.Deleted {
		for _, u := range w.scan(rawMembers, w.scratchKey3(e.Tenant, e.AggregateID, '/', "")) {
			if _, err := w.removeMember(e.Tenant, e.AggregateID, u); err != nil {
				return err
			}
		}
		w.groups.del(r, e)
		return nil
	}
	// Store the row first: member changes below adjust its count.
	if err := w.groups.set(r, g, e); err != nil {
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
		isNew, err := w.addMember(e.Tenant, e.AggregateID, m)
		if err != nil {
			return fmt.Errorf("add member: %w", err)
		}
		if isNew {
			delta++
		}
	}
	for _, u := range remove {
		removed, err := w.removeMember(e.Tenant, e.AggregateID, string(u))
		if err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
		if removed {
			delta--
		}
	}
	if delta != 0 {
		return w.adjustCount(e.Tenant, e.AggregateID, delta)
	}
	return nil
}
