package httpapi

import (
	"math"
	"strings"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
)

// rank makes q of a sorted list read hold only the matches up to the end of the page, in
// sort order (scim.Ranking, as q.Hold), instead of returning every match for page to render
// and sort: a sorted scan of a large company then holds and renders one page, not the
// company, and decodes whole only the users it holds (with q.Reads, the sort attribute). It
// returns nil, leaving q as it is, when p does not sort or the Ranking cannot rank its
// attribute; the matches the Ranking keeps are read back with ranked.
//
// view and stored are as for query; the Ranking reads stored when its attribute is a stored
// one, as the filter does.
func (p listParams) rank(q *domain.ListQuery, view, stored func(domain.Resource) map[string]any) (*scim.Ranking, error) {
	if p.sortBy == "" {
		return nil, nil
	}
	n := math.MaxInt
	if p.start-1 <= math.MaxInt-p.count {
		n = p.start - 1 + p.count
	}
	r, err := scim.NewRanking(p.sortBy, p.sortOrder, n)
	if r == nil || err != nil {
		return nil, err
	}
	if stored != nil && r.ReadsStored() {
		view = stored
	}
	q.Hold = func(res domain.Resource) bool { return r.Add(view(res), res) }
	if q.Reads != nil {
		q.Reads = append(q.Reads, r.Attribute())
	}
	q.Offset, q.Limit = 0, 0 // every match counts in the total; the Ranking keeps the page
	return r, nil
}

// rankGroups is rank for a group list. A sort by members (which the read model does not
// store with the group) is left to page, which sorts the groups rendered with their members.
func (p listParams) rankGroups(q *domain.ListQuery, view func(domain.Resource) map[string]any) (*scim.Ranking, error) {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p.sortBy)), "members") {
		return nil, nil
	}
	return p.rank(q, view, groupStored)
}

// groupSortView is what a sort sees of a group other than its members: its representation
// with id and meta (groupJSON without members, which needs no read).
func (s *Server) groupSortView(r domain.Resource) map[string]any {
	g := r.(*domain.Group)
	return resourceJSON(g.Resource, g.Schemas, scim.SchemaGroup, string(g.ID), "Group",
		g.Created, g.Modified, s.groupLocation(g.ID), g.Version)
}

// groupStored returns a group's stored attributes, what groupView holds besides schemas, id
// and meta.
func groupStored(r domain.Resource) map[string]any {
	return r.(*domain.Group).Resource
}

// rankedPage returns the page of the matches r kept (from startIndex on), and p without its
// sort, for page to render them as they are.
func rankedPage[T any](p listParams, r *scim.Ranking) ([]T, listParams) {
	items := r.Items()
	items = items[min(p.start-1, len(items)):]
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = *it.(*T)
	}
	p.sortBy, p.sortOrder = "", ""
	return out, p
}
