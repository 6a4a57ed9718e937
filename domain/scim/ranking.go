package scim

import (
	"container/heap"
	"strings"
)

// A Ranking keeps the first n resources of a stream in the order [SortResources] would give
// the whole stream, holding at most n of them: a sorted list read keeps its page (and what
// precedes it) instead of every match. Resources are added in the stream's order, which
// breaks ties as SortResources's stable sort does. A Ranking is not safe for concurrent use.
type Ranking struct {
	segs []string
	def  Attribute
	n    int
	seq  int
	top  rankHeap
}

// NewRanking returns a Ranking of the first n resources by sortBy in sortOrder, or nil when
// sortBy names an extension attribute (whose path SortResources reads with the URNs of the
// whole list) or is empty or unreadable (SortResources leaves such a list as it is). An
// invalid sortOrder is the error of SortResources.
func NewRanking(sortBy, sortOrder string, n int) (*Ranking, error) {
	desc, err := descending(sortOrder)
	if err != nil {
		return nil, err
	}
	if hasURNPrefix(strings.TrimSpace(sortBy)) {
		return nil, nil
	}
	segs, ok := projectionPath(sortBy, nil)
	if strings.TrimSpace(sortBy) == "" || !ok {
		return nil, nil
	}
	return &Ranking{segs: segs, def: sortAttribute(segs), n: max(n, 0), top: rankHeap{desc: desc}}, nil
}

// ReadsStored reports whether the Ranking's attribute is a stored one, not schemas, id or meta
// (which a representation adds): then a resource's stored attributes rank it as its
// representation does.
func (r *Ranking) ReadsStored() bool {
	switch r.segs[0] {
	case "schemas", "id", "meta":
		return false
	}
	return true
}

// Add ranks res (a representation, or its stored attributes when ReadsStored) and keeps item
// with it if it is among the first n so far, reporting whether it does.
func (r *Ranking) Add(res map[string]any, item any) bool {
	e := ranked{key: newSortKey(sortValue(res, r.segs), r.def), seq: r.seq, item: item}
	r.seq++
	if r.n == 0 {
		return false
	}
	if len(r.top.items) < r.n {
		heap.Push(&r.top, e)
		return true
	}
	if r.top.after(e, r.top.items[0]) {
		return false // the last one kept comes first: e is not among the first n
	}
	r.top.items[0] = e
	heap.Fix(&r.top, 0)
	return true
}

// Items returns the items kept, in order.
func (r *Ranking) Items() []any {
	out := make([]any, len(r.top.items))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(&r.top).(ranked).item
	}
	return out
}

// ranked is one resource of a Ranking: its key, its place in the stream and the caller's item.
type ranked struct {
	key  sortKey
	seq  int
	item any
}

// rankHeap is a heap whose root is the resource that comes last.
type rankHeap struct {
	desc  bool
	items []ranked
}

// after reports whether a comes after b in the sorted stream.
func (h *rankHeap) after(a, b ranked) bool {
	c := a.key.compare(b.key)
	if h.desc {
		c = -c
	}
	if c != 0 {
		return c > 0
	}
	return a.seq > b.seq
}

func (h *rankHeap) Len() int           { return len(h.items) }
func (h *rankHeap) Less(i, j int) bool { return h.after(h.items[i], h.items[j]) }
func (h *rankHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *rankHeap) Push(x any)         { h.items = append(h.items, x.(ranked)) }
func (h *rankHeap) Pop() any {
	last := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return last
}
