package domain_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain"
)

// goldenDir holds payloads as they were written, one JSON Lines file per (type, schema
// version): <type>.v<schema>.jsonl with lines {"type","schema","data"}. Stored events are
// never rewritten, so every sample must keep decoding for as long as the code runs: a
// renamed field, a dropped type or a missing upcaster fails here instead of in a replay.
const goldenDir = "../testdata/events"

// goldenRequired lists the (type, schema) pairs that have been written to logs and must keep
// a sample file.
var goldenRequired = []struct {
	typ    string
	schema int
}{
	{domain.EventTenantCreated, 1},
	{domain.EventUserCreated, 1},
}

var goldenName = regexp.MustCompile(`^([a-z_]+\.[a-z_]+)\.v([0-9]+)\.jsonl$`)

func TestGoldenEventsDecode(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[string]bool)
	for _, f := range files {
		have[filepath.Base(f)] = true
	}
	for _, r := range goldenRequired {
		if name := fmt.Sprintf("%s.v%d.jsonl", r.typ, r.schema); !have[name] {
			t.Errorf("no golden samples %s/%s", goldenDir, name)
		}
	}
	// Every type this code writes, at its current schema, has samples: a new type or version
	// cannot land without one (go test ./httpapi -run TestGoldenEventSamples -golden-events
	// harvests missing ones from a real run).
	for typ, schema := range domain.EventTypes() {
		if name := fmt.Sprintf("%s.v%d.jsonl", typ, schema); !have[name] {
			t.Errorf("no golden samples %s/%s for a type the code writes", goldenDir, name)
		}
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			m := goldenName.FindStringSubmatch(filepath.Base(f))
			if m == nil {
				t.Fatalf("file name is not <type>.v<schema>.jsonl")
			}
			typ := m[1]
			schema, _ := strconv.Atoi(m[2])
			lines := goldenLines(t, f)
			if len(lines) == 0 {
				t.Fatal("no samples")
			}
			for i, line := range lines {
				t.Run(fmt.Sprint("line", i+1), func(t *testing.T) {
					checkGolden(t, typ, schema, line)
				})
			}
		})
	}
}

func goldenLines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			lines = append(lines, bytes.Clone(sc.Bytes()))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func checkGolden(t *testing.T, typ string, schema int, line []byte) {
	var sample struct {
		Type   string          `json:"type"`
		Schema int             `json:"schema"`
		Data   json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sample); err != nil {
		t.Fatalf("sample is not {type, schema, data}: %v", err)
	}
	if sample.Type != typ || sample.Schema != schema {
		t.Fatalf("sample is %s v%d, but lives in the file of %s v%d", sample.Type, sample.Schema, typ, schema)
	}
	if len(sample.Data) == 0 || string(sample.Data) == "null" {
		t.Fatal("sample has no data")
	}
	got, err := domain.DecodeData(sample.Type, sample.Schema, sample.Data)
	if errors.Is(err, domain.ErrUnknownEvent) {
		t.Fatalf("type %s is no longer known: replay would silently skip these events", sample.Type)
	}
	if err != nil {
		t.Fatalf("DecodeData: %v", err)
	}
	switch d := got.(type) {
	case domain.TenantCreated:
		if d.Name == "" || len(d.SCIMTokenHash) != 64 {
			t.Errorf("decoded %+v: name or token hash lost", d)
		}
	case domain.UserCreated:
		if name, _ := d.Attributes["userName"].(string); strings.TrimSpace(name) == "" {
			t.Errorf("decoded %+v: userName lost", d)
		}
	}
	// A sample at the current schema version must survive decode and encode unchanged, so no
	// field of it is silently dropped or renamed. Older versions are upcast, so they differ.
	if sample.Schema != domain.SchemaOf(sample.Type) {
		return
	}
	again, err := domain.EncodeData(got)
	if err != nil {
		t.Fatal(err)
	}
	var want, have any
	if err := json.Unmarshal(sample.Data, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again, &have); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(have, want) {
		t.Errorf("decode then encode changed the payload:\n got %s\nwant %s", again, sample.Data)
	}
}
