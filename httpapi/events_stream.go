package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/feed"
)

// The live stream (GET /api/v1/events/stream) sends the company's public events as
// Server-Sent Events. All streams of a server share one subscription to the log, the hub: it
// follows the log from where it stood when the first stream opened and keeps the latest public
// events, encoded once, in a ring. A stream reads the log itself only to catch up from its own
// cursor to where the hub's ring begins; from then on it costs no log reads.

const (
	// defaultFeedHeartbeat is how often an idle stream sends a comment line, so that proxies
	// keep the connection open and the client notices a dead one.
	defaultFeedHeartbeat = 15 * time.Second
	// hubRing is how many recent public events the hub keeps for streams to read.
	hubRing = 10_000
	// hubRetry is how long the hub waits before following the log again after it failed.
	hubRetry = time.Second
	// streamCatchUp is how many events one catch-up read of a stream sends.
	streamCatchUp = 500
)

// hubItem is one public event as the hub keeps it.
type hubItem struct {
	seq    domain.Version
	tenant domain.TenantID
	typ    string
	data   []byte // feed.Marshal's JSON
}

// feedHub is the one log subscription shared by the live streams. It runs while at least one
// stream is open.
type feedHub struct {
	log    FeedLog
	logger *slog.Logger

	mu      sync.Mutex
	streams int                // open streams
	running bool               // the subscription is following the log
	failed  time.Time          // when it last ended on an error
	base    domain.Version     // the ring holds every public event after base through pos
	pos     domain.Version     // the last log position the hub has seen
	ring    []hubItem          // in log order
	changed chan struct{}      // closed (and replaced) when pos moves or the hub stops
	stop    context.CancelFunc // ends the subscription
	closed  chan struct{}      // closed by close: every stream ends
}

func newFeedHub(log FeedLog, logger *slog.Logger) *feedHub {
	return &feedHub{log: log, logger: logger, changed: make(chan struct{}), closed: make(chan struct{})}
}

// join registers a stream and starts the subscription if it is not running; leave undoes it.
func (h *feedHub) join() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streams++
	h.startLocked()
}

func (h *feedHub) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streams--
	if h.streams == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

// close ends every stream (on server shutdown, so that it need not wait for them).
func (h *feedHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closed:
	default:
		close(h.closed)
	}
}

// startLocked starts following the log from its head, unless running or it failed a moment
// ago. h.mu is held.
func (h *feedHub) startLocked() {
	if h.running || h.streams == 0 || time.Since(h.failed) < hubRetry {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	head, err := h.log.Head(ctx)
	var sub domain.Subscription
	if err == nil {
		sub, err = h.log.Subscribe(ctx, head)
	}
	if err != nil {
		cancel()
		h.failed = time.Now()
		h.logger.Warn("live event stream: cannot follow the log; streams read it themselves", "err", err)
		return
	}
	h.running, h.stop = true, cancel
	h.base, h.pos, h.ring = head, head, nil
	go h.follow(ctx, sub)
}

// follow applies the log to the ring until ctx ends or the subscription fails.
func (h *feedHub) follow(ctx context.Context, sub domain.Subscription) {
	defer sub.Close()
	for {
		events, err := sub.Next(ctx, 512)
		if err != nil {
			h.mu.Lock()
			h.running = false
			if ctx.Err() == nil {
				h.failed = time.Now()
				h.logger.Warn("live event stream: the log subscription ended", "err", err)
			}
			h.wakeLocked()
			h.mu.Unlock()
			return
		}
		var items []hubItem
		for _, e := range events {
			item, ok := feed.Map(e)
			if !ok {
				continue
			}
			b, err := feed.Marshal(item)
			if err != nil {
				h.logger.Error("live event stream: cannot encode an event", "seq", e.Version, "err", err)
				continue
			}
			items = append(items, hubItem{seq: e.Version, tenant: e.Tenant, typ: item.Type, data: b})
		}
		h.mu.Lock()
		h.ring = append(h.ring, items...)
		if over := len(h.ring) - hubRing; over > 0 {
			h.base = h.ring[over-1].seq
			h.ring = append([]hubItem(nil), h.ring[over:]...)
		}
		h.pos = events[len(events)-1].Version
		h.wakeLocked()
		h.mu.Unlock()
	}
}

func (h *feedHub) wakeLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// since returns the company's events of the given types (all if nil) after pos that the ring
// holds, the position they bring the stream to, and a channel closed when there may be more.
// covered is false when the ring does not hold everything after pos (the hub is not running,
// or pos is older than the ring): the stream must read the log itself first.
func (h *feedHub) since(tenant domain.TenantID, types map[string]bool, pos domain.Version) (items []hubItem, to domain.Version, covered bool, wait <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.startLocked()
	if !h.running || pos < h.base {
		return nil, pos, false, h.changed
	}
	i := sort.Search(len(h.ring), func(i int) bool { return h.ring[i].seq > pos })
	for _, it := range h.ring[i:] {
		if it.tenant == tenant && (types == nil || types[it.typ]) {
			items = append(items, it)
		}
	}
	return items, max(pos, h.pos), true, h.changed
}

// now returns the position a stream without a cursor starts after: the hub's, or the log's
// head.
func (h *feedHub) now(ctx context.Context) (domain.Version, error) {
	h.mu.Lock()
	running, pos := h.running, h.pos
	h.mu.Unlock()
	if running {
		return pos, nil
	}
	return h.log.Head(ctx)
}

// handleEventStream serves GET /api/v1/events/stream: the company's events as Server-Sent
// Events (id: the event id, event: its type, data: the events API item), after Last-Event-ID
// (or ?after=), else from now; a comment line every FeedHeartbeat while idle.
func (s *Server) handleEventStream(c echo.Context) error {
	log, err := s.feedLog()
	if err != nil {
		return err
	}
	ctx, tenant := c.Request().Context(), tenantOf(c)
	types, err := feed.ParseTypes(c.QueryParam("types"))
	if err != nil {
		return err
	}
	from := c.Request().Header.Get("Last-Event-ID")
	if from == "" {
		from = c.QueryParam("after")
	}
	pos, err := cursor(ctx, log, tenant, from)
	if err != nil {
		return err
	}
	h := s.hub
	h.join()
	defer h.leave()
	if from == "" {
		if pos, err = h.now(ctx); err != nil {
			return err
		}
	}
	heartbeat := s.cfg.FeedHeartbeat
	if heartbeat <= 0 {
		heartbeat = defaultFeedHeartbeat
	}
	// The stream outlives the server's write timeout, which is meant for ordinary answers.
	if err := http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Time{}); err != nil {
		s.log.Warn("live event stream: the write timeout stays in force", "err", err)
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte(": idledger change feed\nretry: 5000\n\n")); err != nil {
		return nil
	}
	w.Flush()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	var buf bytes.Buffer
	var wait <-chan struct{}
	// idle waits for news (wait), writing a heartbeat each time the ticker fires first; false
	// once the stream is over (the client left, the server closes, or a write failed).
	idle := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-h.closed:
			return false
		case <-wait:
		case <-tick.C:
			if _, err := w.Write([]byte(": heartbeat\n\n")); err != nil {
				return false
			}
			w.Flush()
		}
		return true
	}
	for {
		var items []hubItem
		var to domain.Version
		var covered bool
		items, to, covered, wait = h.since(tenant, types, pos)
		if !covered {
			// Catch up from this stream's own cursor with reads of the log.
			p, err := readFeed(ctx, log, tenant, pos, types, streamCatchUp)
			if err != nil {
				s.log.Warn("live event stream: catch-up read failed", "tenant", tenant, "err", err)
				return nil // the client reconnects with Last-Event-ID
			}
			buf.Reset()
			for _, it := range p.items {
				writeSSE(&buf, it.seq, it.typ, it.data)
			}
			if buf.Len() > 0 {
				if _, err := w.Write(buf.Bytes()); err != nil {
					return nil
				}
				w.Flush()
			}
			if p.next > pos {
				pos = p.next
			}
			if p.hasMore {
				continue
			}
			if items, to, covered, wait = h.since(tenant, types, pos); !covered {
				// The hub is not following the log: poll it ourselves at the heartbeat.
				if !idle() {
					return nil
				}
				continue
			}
		}
		if len(items) > 0 {
			buf.Reset()
			for _, it := range items {
				writeSSE(&buf, it.seq, it.typ, it.data)
			}
			if _, err := w.Write(buf.Bytes()); err != nil {
				return nil
			}
			w.Flush()
			tick.Reset(heartbeat)
		}
		pos = to
		if !idle() {
			return nil
		}
	}
}

// writeSSE appends one event of the stream: its id, type and the item as data (one line: the
// JSON holds no raw newline).
func writeSSE(buf *bytes.Buffer, seq domain.Version, typ string, item []byte) {
	buf.WriteString("id: " + feed.ID(seq) + "\nevent: " + typ + "\ndata: ")
	buf.Write(item)
	buf.WriteString("\n\n")
}

// CloseStreams ends every open live stream, so that a graceful shutdown need not wait for
// them; the clients reconnect (to another instance) with Last-Event-ID.
func (s *Server) CloseStreams() {
	if s.hub != nil {
		s.hub.close()
	}
}
