package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/feed"
)

// The change feed (docs/events.md): the company's public events, read from the log itself, so
// a host application can replay its whole history from the first event, from any point.
//
//	GET /api/v1/events?after=<event id>&types=a,b&limit=100   a page, oldest first
//	GET /api/v1/events/stream                                  Server-Sent Events (events_stream.go)

// FeedLog is the event log as the change feed reads it; eventstore.Store implements it.
type FeedLog interface {
	// ReadCompany calls fn with the company's messages after a position, in order, until fn
	// returns false, max were passed (all if max <= 0) or its last one as of the call was
	// passed; it returns the position of the last one passed and whether the company had more
	// after it as of the call.
	ReadCompany(ctx context.Context, tenant domain.TenantID, after domain.Version, max int,
		fn func(domain.Event) bool) (last domain.Version, more bool, err error)
	// CompanyEvent returns the message at a position if it is the company's (ErrNotFound
	// otherwise).
	CompanyEvent(ctx context.Context, tenant domain.TenantID, seq domain.Version) (domain.Event, error)
	// The whole log in order, for the live stream's one shared subscription.
	domain.EventSource
}

// Limits of a page of the events API.
const (
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
	// maxFeedScan bounds the log messages one page reads: with a narrow types filter a page may
	// end early, with hasMore and a nextCursor past what it read.
	maxFeedScan = 20_000
)

// feedPage is one page of a company's feed.
type feedPage struct {
	items []hubItem // the items, their JSON as feed.Marshal wrote it
	// next is the position to continue after: the last item's, or the last message read
	// when no later item matched (0: nothing was read).
	next    domain.Version
	hasMore bool
}

// readFeed reads up to limit public events of the company after position after, of the given
// types (all if nil).
func readFeed(ctx context.Context, log FeedLog, tenant domain.TenantID, after domain.Version, types map[string]bool, limit int) (feedPage, error) {
	p := feedPage{next: after}
	var encErr error
	last, more, err := log.ReadCompany(ctx, tenant, after, maxFeedScan, func(e domain.Event) bool {
		item, ok := feed.Map(e)
		if !ok || (types != nil && !types[item.Type]) {
			return true
		}
		if len(p.items) == limit {
			p.hasMore = true
			return false
		}
		b, err := feed.Marshal(item)
		if err != nil {
			encErr = err
			return false
		}
		p.items = append(p.items, hubItem{seq: e.Version, tenant: e.Tenant, typ: item.Type, data: b})
		p.next = e.Version
		return true
	})
	if err != nil {
		return feedPage{}, err
	}
	if encErr != nil {
		return feedPage{}, encErr
	}
	if !p.hasMore {
		p.next = max(p.next, last)
		p.hasMore = more
	}
	return p, nil
}

// cursor returns the log position of a client's cursor (an event id); "" is the start. An id
// that is not one of the company's events is a client error.
func cursor(ctx context.Context, log FeedLog, tenant domain.TenantID, id string) (domain.Version, error) {
	if id == "" {
		return 0, nil
	}
	seq, err := feed.ParseID(id)
	if err != nil {
		return 0, domain.Errorf(domain.ErrInvalid, "cursor %q is not an event id", id)
	}
	if _, err := log.CompanyEvent(ctx, tenant, seq); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return 0, domain.Errorf(domain.ErrInvalid, "cursor %q is not an event of this company", id)
		}
		return 0, err
	}
	return seq, nil
}

// feedLog returns the change feed's log, or an error if the server has none.
func (s *Server) feedLog() (FeedLog, error) {
	if s.cfg.Feed == nil {
		return nil, domain.Errorf(domain.ErrNotFound, "the change feed is not enabled on this server")
	}
	return s.cfg.Feed, nil
}

// handleListEvents serves GET /api/v1/events: {"data":[…],"nextCursor","hasMore"}.
func (s *Server) handleListEvents(c echo.Context) error {
	log, err := s.feedLog()
	if err != nil {
		return err
	}
	ctx, tenant := c.Request().Context(), tenantOf(c)
	types, err := feed.ParseTypes(c.QueryParam("types"))
	if err != nil {
		return err
	}
	limit := defaultEventsLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEventsLimit {
			return domain.Errorf(domain.ErrInvalid, "limit must be an integer from 1 to %d", maxEventsLimit)
		}
		limit = n
	}
	after, err := cursor(ctx, log, tenant, c.QueryParam("after"))
	if err != nil {
		return err
	}
	p, err := readFeed(ctx, log, tenant, after, types, limit)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i, item := range p.items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(item.data)
	}
	b.WriteString(`],"nextCursor":`)
	if p.next == 0 {
		b.WriteString("null")
	} else {
		next, _ := json.Marshal(feed.ID(p.next))
		b.Write(next)
	}
	b.WriteString(`,"hasMore":` + strconv.FormatBool(p.hasMore) + "}")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b.Bytes())
}
