package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBench_Tiny runs the whole bench harness on the tiny profile (a few hundred users): every
// section must produce its rows, the JSON file must parse and the document must get the table.
func TestBench_Tiny(t *testing.T) {
	dir := t.TempDir()
	cfg := benchConfig{
		// Without fsync: the test checks the harness, not the disk (which other tests keep busy).
		Profile: benchProfiles["tiny"], DataDir: filepath.Join(dir, "data"), Baseline: true, NoSync: true,
		Out: filepath.Join(dir, "results.json"), Doc: filepath.Join(dir, "docs", "benchmarks.md"),
		Command: "idledger-bench --profile tiny",
	}
	start := time.Now()
	rep, err := runBench(t.Context(), cfg, io.Discard)
	if err != nil {
		if rep != nil {
			t.Logf("errors: %s", strings.Join(rep.Errors, "\n"))
		}
		t.Fatal(err)
	}
	t.Logf("tiny bench ran in %s", time.Since(start).Round(time.Millisecond))

	for _, key := range []string{
		limDiskFsync, limFsyncC1, limFsyncC32, limBatch2, limBatch100, limConsume, limDirectGet,
		limBoltWrite, limBoltWriteSeq, limBoltWriteNoSync, limBoltGet,
		"initial.all", "initial.get_filter", "initial.post_user", "initial.post_group", "initial.patch_members",
		"initial.patch_manager", "initial.durable_writes", "initial.projection_lag", "initial.get_filter_reads",
		"baseline.all", "incremental.all", "incremental.writes",
		"replay.asof_user", "replay.asof_members", "replay.export", "replay.rebuild",
		"saml.lookup", "saml.acs", "fairness.neighbour_alone", "fairness.neighbour_flooded", "process.rss",
		"privacy.initial_plain", "privacy.initial_sealed", "privacy.erase", "privacy.asof_user",
		"feed.api_read", "feed.webhook_delivery", "feed.webhook_lag", "console.pages",
	} {
		r := rep.byKey[key]
		switch {
		case r == nil:
			t.Errorf("no row %s", key)
		case r.NotMeasured != "":
			t.Errorf("row %s not measured: %s", key, r.NotMeasured)
		case key != "process.rss" && key != "initial.projection_lag" && r.Rate <= 0:
			t.Errorf("row %s has no throughput", key)
		case r.Limit != "" && r.Ratio <= 0:
			t.Errorf("row %s has no ratio to %s", key, r.Limit)
		}
	}
	if r := rep.byKey["initial.all"]; r != nil && r.Ops != rep.byKey["baseline.all"].Ops {
		t.Errorf("initial cycle sent %d requests, baseline %d: not the same mix", r.Ops, rep.byKey["baseline.all"].Ops)
	}

	raw, err := os.ReadFile(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Results []benchResult `json:"results"`
		Machine benchMachine  `json:"machine"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if len(got.Results) != len(rep.Results) || got.Machine.Go == "" {
		t.Errorf("results JSON has %d rows (want %d), machine %+v", len(got.Results), len(rep.Results), got.Machine)
	}
	if _, err := os.Stat(rep.CPUProfile); err != nil {
		t.Errorf("CPU profile: %v", err)
	}
	doc, err := os.ReadFile(cfg.Doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!-- bench:tiny:begin -->", "| measure", "durable writes: manager PATCH step", cfg.Command} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("document lacks %q", want)
		}
	}
}

// TestBenchReport_UpdateDoc: a run replaces only its profile's section and keeps the rest.
func TestBenchReport_UpdateDoc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	rep := &benchReport{Command: "idledger-bench -short", Profile: benchProfiles["short"], Started: time.Now()}
	rep.add(&benchResult{Key: "limits.x", Section: "limits", Name: "first run", Ops: 1, Rate: 1, Unit: "x/s"})
	if err := rep.updateDoc(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	notes := "\n## Notes\n\nWritten by a person.\n"
	if err := os.WriteFile(path, append(raw, notes...), 0o644); err != nil {
		t.Fatal(err)
	}
	rep.Results[0].Name = "second run"
	if err := rep.updateDoc(path); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(path)
	s := string(doc)
	if strings.Contains(s, "first run") || !strings.Contains(s, "second run") || !strings.Contains(s, "Written by a person.") {
		t.Errorf("document after two runs:\n%s", s)
	}
	if strings.Count(s, "<!-- bench:short:begin -->") != 1 || !strings.Contains(s, "<!-- bench:default:begin -->") {
		t.Errorf("markers wrong:\n%s", s)
	}
}

func TestRun_BenchHelp(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"--help"}, io.Discard, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "-short") {
		t.Errorf("--help: %s", out.String())
	}
}
