package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/feed"
	"github.com/idledger/idledger/httpapi"
)

// newFeedEnv starts a test server with the change feed on, its log wrapped by counting (so
// tests can see how often it is read); live streams end before the server closes.
func newFeedEnv(tb testing.TB, heartbeat time.Duration) (*testEnv, *countingFeed) {
	tb.Helper()
	var counter *countingFeed
	e := buildTestEnv(tb, envOptions{noSync: true, configure: func(_ testing.TB, _ context.Context, cfg *httpapi.Config, e *testEnv) {
		counter = &countingFeed{FeedLog: e.Store}
		cfg.Feed, cfg.FeedHeartbeat = counter, heartbeat
	}})
	tb.Cleanup(e.Server.CloseStreams)
	return e, counter
}

// countingFeed is the real log, counting the reads of a company's messages.
type countingFeed struct {
	httpapi.FeedLog
	reads atomic.Int64
}

func (c *countingFeed) ReadCompany(ctx context.Context, tenant domain.TenantID, after domain.Version, max int,
	fn func(domain.Event) bool) (domain.Version, bool, error) {
	c.reads.Add(1)
	return c.FeedLog.ReadCompany(ctx, tenant, after, max, fn)
}

// feedCycle runs a small Entra-shaped provisioning cycle through SCIM that produces every
// user and group event type, and returns the ids of the users it created.
func feedCycle(t *testing.T, e *testEnv, scimToken, prefix string) []string {
	t.Helper()
	c := newECClient(e, scimToken)
	must := func(m map[string]any, err error) map[string]any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	var users []string
	for i := range 3 {
		u := must(c.expect("POST", "/Users", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
			"userName": fmt.Sprintf("%s%d@example.com", prefix, i), "active": true, "displayName": fmt.Sprintf("User %d", i),
			"externalId": fmt.Sprintf("%s-ext-%d", prefix, i)}, 201))
		users = append(users, u["id"].(string))
	}
	must(c.expect("PATCH", "/Users/"+users[0], ecPatch(ecOp("Replace", "displayName", "Ada L.")), 200, 204))
	g := must(c.expect("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": prefix + " Finance", "members": []any{map[string]any{"value": users[0]}}}, 201))
	gid := g["id"].(string)
	must(c.expect("PATCH", "/Groups/"+gid, ecPatch(ecOp("Add", "members", []any{map[string]any{"value": users[1]}, map[string]any{"value": users[2]}})), 200, 204))
	must(c.expect("PATCH", "/Groups/"+gid, ecPatch(ecOp("Remove", fmt.Sprintf("members[value eq \"%s\"]", users[1]), nil)), 200, 204))
	must(c.expect("PATCH", "/Groups/"+gid, ecPatch(ecOp("Replace", "displayName", prefix+" Accounting")), 200, 204))
	must(c.expect("PATCH", "/Users/"+users[1], ecPatch(ecOp("Replace", "active", false)), 200, 204))
	must(c.expect("PATCH", "/Users/"+users[1], ecPatch(ecOp("Replace", "active", true)), 200, 204))
	must(c.expect("DELETE", "/Users/"+users[2], nil, 204))
	must(c.expect("DELETE", "/Groups/"+gid, nil, 204))
	return users
}

// eventsPage is one answer of GET /api/v1/events.
type eventsPage struct {
	Data       []json.RawMessage `json:"data"`
	NextCursor *string           `json:"nextCursor"`
	HasMore    bool              `json:"hasMore"`
}

func getEvents(t testing.TB, e *testEnv, key, query string) eventsPage {
	t.Helper()
	res := e.do(t, key, "GET", "/api/v1/events?"+query, "")
	if res.Status != http.StatusOK {
		t.Fatalf("GET /api/v1/events?%s: %d %s", query, res.Status, res.Body)
	}
	var p eventsPage
	if err := json.Unmarshal(res.Body, &p); err != nil {
		t.Fatalf("page %s: %v", res.Body, err)
	}
	return p
}

// allEvents pages through the feed with the given page size and returns the raw items.
func allEvents(t testing.TB, e *testEnv, key string, limit int, extra string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	after := ""
	for range 100_000 {
		q := fmt.Sprintf("limit=%d%s", limit, extra)
		if after != "" {
			q += "&after=" + after
		}
		p := getEvents(t, e, key, q)
		out = append(out, p.Data...)
		if len(p.Data) > limit {
			t.Fatalf("page of %d items with limit %d", len(p.Data), limit)
		}
		if !p.HasMore {
			return out
		}
		if p.NextCursor == nil {
			t.Fatal("hasMore without nextCursor")
		}
		after = *p.NextCursor
	}
	t.Fatal("the feed never ends")
	return nil
}

func itemOf(t testing.TB, raw json.RawMessage) feed.Event {
	t.Helper()
	var it feed.Event
	if err := json.Unmarshal(raw, &it); err != nil {
		t.Fatal(err)
	}
	return it
}

func TestEventsAPI(t *testing.T) {
	e, _ := newFeedEnv(t, 0)
	tenant, scimToken, key := e.tenantWithKey(t, "Acme")
	other, otherSCIM, otherKey := e.tenantWithKey(t, "Other")
	users := feedCycle(t, e, scimToken, "acme")
	feedCycle(t, e, otherSCIM, "other")

	all := allEvents(t, e, key, 100, "")
	var types []string
	prev := ""
	for _, raw := range all {
		it := itemOf(t, raw)
		if it.Tenant != tenant {
			t.Fatalf("item of company %s in %s's feed: %s", it.Tenant, tenant, raw)
		}
		if it.ID <= prev {
			t.Fatalf("items out of order: %s after %s", it.ID, prev)
		}
		prev = it.ID
		types = append(types, it.Type)
		for _, private := range []string{"scim:", "Hash", "hash", "operations", "claim"} {
			if strings.Contains(string(raw), private) {
				t.Errorf("item carries %q: %s", private, raw)
			}
		}
	}
	for _, want := range []string{feed.TypeUserCreated, feed.TypeUserUpdated, feed.TypeUserDeactivated, feed.TypeUserReactivated,
		feed.TypeUserDeleted, feed.TypeGroupCreated, feed.TypeGroupUpdated, feed.TypeGroupDeleted, feed.TypeGroupMembersAdded,
		feed.TypeGroupMembersRemoved, feed.TypeProvisioningManaged} {
		if !slices.Contains(types, want) {
			t.Errorf("no %s in the feed %v", want, types)
		}
	}
	if types[0] != feed.TypeProvisioningManaged && types[0] != feed.TypeUserCreated {
		t.Errorf("first event %s", types[0])
	}
	first := itemOf(t, all[slices.Index(types, feed.TypeUserCreated)])
	if first.Resource != (feed.Resource{Type: "user", ID: users[0]}) || first.Actor.Type != "scim" {
		t.Errorf("first user.created: %+v", first)
	}

	// Pages of 1 give the same items, byte for byte, as one page; a replay gives the same bytes.
	if small := allEvents(t, e, key, 1, ""); fmt.Sprint(small) != fmt.Sprint(all) {
		t.Errorf("paging by 1 differs:\n%s\n%s", small, all)
	}
	if again := allEvents(t, e, key, 100, ""); fmt.Sprint(again) != fmt.Sprint(all) {
		t.Error("reading the same history twice gave different bytes")
	}

	// after= resumes after exactly that event; types= filters.
	mid := itemOf(t, all[4]).ID
	rest := getEvents(t, e, key, "after="+mid)
	if fmt.Sprint(rest.Data) != fmt.Sprint(all[5:]) || rest.HasMore {
		t.Errorf("after %s: %d items (hasMore %v), want %d", mid, len(rest.Data), rest.HasMore, len(all[5:]))
	}
	deleted := getEvents(t, e, key, "types="+url.QueryEscape("user.deleted,group.deleted"))
	if len(deleted.Data) != 2 {
		t.Errorf("types filter: %s", deleted.Data)
	}
	for _, raw := range deleted.Data {
		if typ := itemOf(t, raw).Type; typ != "user.deleted" && typ != "group.deleted" {
			t.Errorf("types filter let %s through", typ)
		}
	}
	// The last page's cursor polls for later events.
	last := getEvents(t, e, key, "after="+itemOf(t, all[len(all)-1]).ID)
	if len(last.Data) != 0 || last.HasMore || last.NextCursor == nil {
		t.Fatalf("after the last event: %+v", last)
	}
	// The polling cursor (it may be a private message's position) is a valid after, and
	// brings what happened since.
	feedCycle(t, e, scimToken, "later")
	later := getEvents(t, e, key, "after="+*last.NextCursor)
	if len(later.Data) == 0 || itemOf(t, later.Data[0]).Type != feed.TypeUserCreated {
		t.Errorf("polling from nextCursor: %+v", later)
	}

	// Another company's event, a made-up one and garbage are 400; so are bad parameters.
	otherItem := itemOf(t, getEvents(t, e, otherKey, "limit=1").Data[0])
	if otherItem.Tenant != other {
		t.Fatalf("other company's feed starts with %+v", otherItem)
	}
	for _, q := range []string{"after=" + otherItem.ID, "after=" + feed.ID(1<<40), "after=42", "after=evt_zz",
		"limit=0", "limit=1001", "limit=x", "types=tenant.created"} {
		res := e.do(t, key, "GET", "/api/v1/events?"+q, "")
		if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), `"error"`) {
			t.Errorf("?%s: %d %s, want 400 with an error", q, res.Status, res.Body)
		}
	}
	// The scope is needed.
	weak := e.apiKey(t, tenant, domain.ScopeUsersRead)
	if res := e.do(t, weak, "GET", "/api/v1/events", ""); res.Status != http.StatusForbidden {
		t.Errorf("without events:read: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, weak, "GET", "/api/v1/events/stream", ""); res.Status != http.StatusForbidden {
		t.Errorf("stream without events:read: %d %s", res.Status, res.Body)
	}
}

// TestEventsAPIPages100k pages through 100k events of one company (among another's) with
// stable cursors: every event once, in order, and the same bytes on a second pass.
func TestEventsAPIPages100k(t *testing.T) {
	const n = 100_000
	e, _ := newFeedEnv(t, 0)
	tenant, _, key := e.tenantWithKey(t, "Big")
	other, _, _ := e.tenantWithKey(t, "Noise")
	ctx := t.Context()
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for b := 0; b < n; b += 1000 {
		for _, tn := range []string{tenant, other} {
			var writes []domain.Write
			count := 1000
			if tn == other {
				count = 50
			}
			for i := range count {
				writes = append(writes, domain.Write{NoExpect: true, Event: domain.Event{
					ID: fmt.Sprintf("%s-%07d", tn, b+i), Tenant: domain.TenantID(tn), Kind: domain.KindSignIn, AggregateID: domain.SignInNoUser,
					Type: domain.EventSignInFailed, Schema: 1, At: at.Add(time.Duration(b+i) * time.Millisecond), Actor: "anonymous",
					Data: domain.SignInRecorded{Reason: domain.SignInUnknownUser, Flow: domain.FlowSPInitiated}}})
			}
			if _, err := e.Store.Append(ctx, domain.Batch{Tenant: domain.TenantID(tn), Writes: writes}); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	first := allEvents(t, e, key, 1000, "")
	t.Logf("paged through %d events in %s", len(first), time.Since(start))
	if len(first) != n {
		t.Fatalf("%d events, want %d", len(first), n)
	}
	prev := ""
	for _, raw := range first {
		it := itemOf(t, raw)
		if it.ID <= prev || it.Tenant != tenant {
			t.Fatalf("item %s after %s (company %s)", it.ID, prev, it.Tenant)
		}
		prev = it.ID
	}
	second := allEvents(t, e, key, 1000, "")
	for i := range first {
		if string(first[i]) != string(second[i]) {
			t.Fatalf("item %d differs on the second pass:\n%s\n%s", i, first[i], second[i])
		}
	}
}

// sseEvent is one event read from a stream.
type sseEvent struct{ id, typ, data string }

// openStream opens GET /api/v1/events/stream and returns its events and comments, line by
// line, on channels that close when the stream ends.
func openStream(t *testing.T, ctx context.Context, e *testEnv, key, query string, header map[string]string) (<-chan sseEvent, <-chan string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", e.URL+"/api/v1/events/stream?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	events, comments := make(chan sseEvent, 1000), make(chan string, 1000)
	go func() {
		defer res.Body.Close()
		defer close(events)
		defer close(comments)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.id != "" {
					events <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, ":"):
				select {
				case comments <- line:
				default:
				}
			case strings.HasPrefix(line, "id: "):
				cur.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				cur.typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				cur.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return events, comments
}

func nextSSE(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return sseEvent{}
}

func TestEventStream(t *testing.T) {
	e, counter := newFeedEnv(t, 50*time.Millisecond)
	_, scimToken, key := e.tenantWithKey(t, "Acme")
	_, otherSCIM, _ := e.tenantWithKey(t, "Other")
	feedCycle(t, e, scimToken, "acme")
	all := allEvents(t, e, key, 1000, "")

	// Resuming from Last-Event-ID sends exactly the events after it, as the events API's items.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	resume, comments := openStream(t, ctx, e, key, "", map[string]string{"Last-Event-ID": itemOf(t, all[2]).ID})
	for _, raw := range all[3:] {
		ev := nextSSE(t, resume)
		it := itemOf(t, raw)
		if ev.id != it.ID || ev.typ != it.Type || ev.data != string(raw) {
			t.Fatalf("stream sent %+v, want %s", ev, raw)
		}
	}
	// Idle, it sends heartbeats.
	for beats := 0; beats < 2; {
		select {
		case c := <-comments:
			if c == ": heartbeat" {
				beats++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat")
		}
	}

	// Many live streams share one log subscription: a new write reaches all of them without
	// a read of the log per stream.
	const streams = 20
	var live []<-chan sseEvent
	for range streams {
		ch, _ := openStream(t, ctx, e, key, "", nil)
		live = append(live, ch)
	}
	before := counter.reads.Load()
	feedCycle(t, e, scimToken, "more")
	feedCycle(t, e, otherSCIM, "noise")
	after := allEvents(t, e, key, 1000, "&after="+itemOf(t, all[len(all)-1]).ID)
	reads := counter.reads.Load() - before - int64(len(after)/1000+1) // allEvents' own reads
	for i, ch := range append(live, resume) {
		for _, raw := range after {
			if ev := nextSSE(t, ch); ev.data != string(raw) {
				t.Fatalf("stream %d sent %s, want %s", i, ev.data, raw)
			}
		}
	}
	if reads > 0 {
		t.Errorf("%d reads of the log for %d live streams; want none beyond the shared subscription", reads, streams+1)
	}

	// A cursor of another company is refused before the stream starts.
	res := e.doWith(t, key, "GET", "/api/v1/events/stream", "", map[string]string{"Last-Event-ID": "evt_zzz"})
	if res.Status != http.StatusBadRequest {
		t.Errorf("bad Last-Event-ID: %d %s", res.Status, res.Body)
	}
}
