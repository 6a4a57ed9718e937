package feed_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/feed"
)

var update = flag.Bool("update", false, "rewrite testdata/feed from the current mapping")

// TestGoldenItems maps the first stored sample of every internal type (testdata/events) with a
// fixed envelope and compares the public item with testdata/feed/<internal type>.json, so a
// change of any public type's JSON shows in review.
func TestGoldenItems(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 30, 0, 123000000, time.UTC)
	covered := make(map[string]bool)
	for internal := range domain.EventTypes() {
		public, ok := feed.Public(internal)
		if !ok {
			continue
		}
		t.Run(internal, func(t *testing.T) {
			e := sample(t, internal)
			e.Version, e.At, e.Tenant, e.ID = 4242, at, "acme", "0193e5a0-0000-7000-8000-000000000001"
			e.Actor, e.Correlation, e.UserAgent, e.Source = "scim:1a2b3c4d", "req-1", "Azure AD", "192.0.2.1"
			kind, _, _ := strings.Cut(internal, ".")
			switch kind {
			case "user":
				e.Kind, e.AggregateID = domain.KindUser, "0193e5a0-0000-7000-8000-0000000000aa"
			case "group":
				e.Kind, e.AggregateID = domain.KindGroup, "0193e5a0-0000-7000-8000-0000000000bb"
			case "signin":
				e.Kind, e.AggregateID = domain.KindSignIn, domain.SignInNoUser
				if d := e.Data.(domain.SignInRecorded); d.User != "" {
					e.AggregateID = string(d.User)
				}
				e.Actor = "anonymous"
			default:
				e.Kind, e.AggregateID = domain.KindTenant, "acme"
			}
			item, ok := feed.Map(e)
			if !ok {
				t.Fatalf("%s has no public form", internal)
			}
			if item.Type != public {
				t.Fatalf("type %s, want %s", item.Type, public)
			}
			covered[public] = true
			got, err := feed.Marshal(item)
			if err != nil {
				t.Fatal(err)
			}
			for _, private := range []string{"1a2b3c4d", "192.0.2.1", "req-1", "Azure AD", "0193e5a0-0000-7000-8000-000000000001", "detail", "operations"} {
				if bytes.Contains(got, []byte(private)) {
					t.Errorf("item carries an internal value %q: %s", private, got)
				}
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("..", "..", "testdata", "feed", internal+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./domain/feed -update writes it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("item of %s changed:\n got %s\nwant %s", internal, pretty.Bytes(), want)
			}
			again, _ := feed.Marshal(mustMap(t, e))
			if !bytes.Equal(got, again) {
				t.Errorf("mapping twice gave different bytes:\n%s\n%s", got, again)
			}
		})
	}
	for _, typ := range feed.Types() {
		if !covered[typ] {
			t.Errorf("public type %s has no golden item", typ)
		}
	}
}

func mustMap(t *testing.T, e domain.Event) feed.Event {
	t.Helper()
	item, ok := feed.Map(e)
	if !ok {
		t.Fatal("no public form")
	}
	return item
}

// sample decodes the first stored sample of an internal type.
func sample(t *testing.T, typ string) domain.Event {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "events", typ+".v1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() {
		t.Fatalf("no sample of %s", typ)
	}
	var s struct {
		Type   string          `json:"type"`
		Schema int             `json:"schema"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	data, err := domain.DecodeData(s.Type, s.Schema, s.Data)
	if err != nil {
		t.Fatal(err)
	}
	return domain.Event{Type: s.Type, Schema: s.Schema, Data: data}
}

func TestPrivateEventsHaveNoPublicForm(t *testing.T) {
	for internal := range domain.EventTypes() {
		if _, ok := feed.Public(internal); ok {
			continue
		}
		e := sample(t, internal)
		e.Version, e.Tenant, e.Kind, e.AggregateID = 7, "acme", domain.KindTenant, "acme"
		if item, ok := feed.Map(e); ok {
			t.Errorf("%s is mapped to %s: company settings stay private", internal, item.Type)
		}
	}
	if _, ok := feed.Map(domain.Event{Type: "uname.claimed", Version: 3, Tenant: "acme", Kind: "uname", AggregateID: "k"}); ok {
		t.Error("an index record is mapped")
	}
}

func TestIDRoundTripAndOrder(t *testing.T) {
	prev := ""
	for _, seq := range []domain.Version{1, 2, 31, 32, 1000, 1 << 20, 1<<40 + 7, 1<<64 - 1} {
		id := feed.ID(seq)
		got, err := feed.ParseID(id)
		if err != nil || got != seq {
			t.Errorf("ParseID(ID(%d)) = %d, %v", seq, got, err)
		}
		if id <= prev {
			t.Errorf("id %s of %d does not sort after %s", id, seq, prev)
		}
		prev = id
	}
	for _, bad := range []string{"", "evt_", "evt_0000000000000", "evt_000000000001", "evt_00000000000001", "evt_000000000000w", "xyz_0000000000001", "evt_ZZZZZZZZZZZZZ", "evt_vvvvvvvvvvvvv"} {
		if _, err := feed.ParseID(bad); !errors.Is(err, feed.ErrBadID) {
			t.Errorf("ParseID(%q) = %v, want ErrBadID", bad, err)
		}
	}
}

func TestParseTypes(t *testing.T) {
	got, err := feed.ParseTypes("user.created, group.deleted")
	if err != nil || len(got) != 2 || !got["user.created"] || !got["group.deleted"] {
		t.Errorf("ParseTypes = %v, %v", got, err)
	}
	if got, err := feed.ParseTypes(""); got != nil || err != nil {
		t.Errorf("empty = %v, %v", got, err)
	}
	if _, err := feed.ParseTypes("user.created,tenant.created"); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("unknown type: %v", err)
	}
}

// TestDocumented checks that docs/events.md has a section, a schema and an example for every
// public type.
func TestDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range feed.Types() {
		_, section, ok := strings.Cut(string(doc), "### `"+typ+"`\n")
		if !ok {
			t.Errorf("docs/events.md has no section for %s", typ)
			continue
		}
		section, _, _ = strings.Cut(section, "\n### ")
		if !strings.Contains(section, "`data` schema:") || !strings.Contains(section, `"type": "`+typ+`"`) {
			t.Errorf("the section of %s lacks its schema or an example", typ)
		}
	}
}
