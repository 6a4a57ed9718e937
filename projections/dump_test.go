package projections_test

import (
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/projections"
)

// dump returns db's Dump.
func dump(tb testing.TB, db *projections.DB) string {
	tb.Helper()
	var b bytes.Buffer
	if err := db.Dump(&b); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

// replayed returns a fresh file holding the log replayed up to to.
func replayed(tb testing.TB, src domain.EventSource, to domain.Version) *projections.DB {
	tb.Helper()
	db := MustOpenDB(tb)
	if err := projections.Replay(tb.Context(), db, src, to, nil); err != nil {
		tb.Fatal(err)
	}
	if cp, _ := db.Checkpoint(); cp != to {
		tb.Fatalf("Replay(%d) reached %d", to, cp)
	}
	return db
}

func TestDB_Dump(t *testing.T) {
	t.Parallel()
	store := mustOpenStore(t)
	svc := newService(store)
	tenant, users := populate(t, svc, 3)
	if _, err := svc.CreateUser(t.Context(), domain.OriginSystem, tenant.ID, map[string]any{"userName": "ext", "externalId": "E<1>&"}); err != nil {
		t.Fatal(err)
	}
	h := head(t, store)
	path := filepath.Join(t.TempDir(), "projections.db")
	live := mustOpenDBAt(t, path)
	startProjector(t, live, store).waitFor(t, h)
	other := replayed(t, store, h)

	got := dump(t, live)
	t.Run("equal_read_models_dump_byte_for_byte_alike", func(t *testing.T) {
		if again := dump(t, other); again != got {
			t.Errorf("dumps of equal read models differ:\n%s\n---\n%s", got, again)
		}
		if diffs, n, err := projections.Diff(live, other, 0); err != nil || n != 0 || len(diffs) != 0 {
			t.Errorf("Diff = %v, %d, %v; want none", diffs, n, err)
		}
	})
	t.Run("readable_sorted_and_complete", func(t *testing.T) {
		for _, want := range []string{
			"{\n\"group_members\": {},\n",
			"\"meta\": {\n  \"schema\": \"" + strconv.Itoa(projections.SchemaVersion) + "\"\n}",
			`"` + string(tenant.ID) + `/E<1>&\u0000`, // NUL shown escaped, no HTML escaping
			`"userName":"user1"`,                     // values decoded: objects shown compact
		} {
			if !strings.Contains(got, want) {
				t.Errorf("dump lacks %q:\n%s", want, got)
			}
		}
		if strings.Contains(got, "checkpoint") {
			t.Errorf("dump shows the checkpoint:\n%s", got)
		}
		if !strings.HasSuffix(got, "}\n}\n") {
			t.Errorf("dump does not end its last bucket and object:\n%s", got)
		}
		if i, j := strings.Index(got, "\n\"tenants\": {"), strings.Index(got, "\n\"users\": {"); i < 0 || j < i {
			t.Errorf("buckets are not in name order (tenants at %d, users at %d)", i, j)
		}
	})
	t.Run("Diff_names_each_differing_row", func(t *testing.T) {
		mod := MustOpenDB(t)
		if err := projections.Replay(t.Context(), mod, store, h, nil); err != nil {
			t.Fatal(err)
		}
		modPath := mod.Path()
		closeDB(t, mod)
		u0 := string(tenant.ID) + "/" + string(users[0].ID)
		withBolt(t, modPath, func(tx *bolt.Tx) error {
			if err := tx.Bucket([]byte("users")).Delete([]byte(u0)); err != nil {
				return err
			}
			if err := tx.Bucket([]byte("users")).Put([]byte("zz/stray"), []byte(`{"id":"stray"}`)); err != nil {
				return err
			}
			return tx.Bucket([]byte("tenants")).Put([]byte(tenant.ID), []byte(`{"id":"changed"}`))
		})
		mod = mustOpenDBAt(t, modPath)
		diffs, n, err := projections.Diff(live, mod, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 || len(diffs) != 3 {
			t.Fatalf("Diff = %d differences %+v, want 3", n, diffs)
		}
		if d := diffs[0]; d.Bucket != "tenants" || !d.InA || !d.InB || d.B != `{"id":"changed"}` {
			t.Errorf("changed row: %+v", d)
		}
		if d := diffs[1]; d.Bucket != "users" || d.Key != `"`+u0+`"` || !d.InA || d.InB {
			t.Errorf("missing row: %+v", d)
		}
		if d := diffs[2]; d.Bucket != "users" || d.Key != `"zz/stray"` || d.InA || !d.InB {
			t.Errorf("extra row: %+v", d)
		}
		if first, n2, _ := projections.Diff(live, mod, 1); len(first) != 1 || n2 != 3 {
			t.Errorf("Diff(max 1) = %d shown of %d, want 1 of 3", len(first), n2)
		}
		if dump(t, mod) == got {
			t.Error("a changed file dumps like the original")
		}
	})
}
