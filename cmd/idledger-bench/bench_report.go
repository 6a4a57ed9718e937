package main

// The bench's measurements and how they are reported: latency samples and their percentiles,
// one result row per figure, the table (stdout and docs/benchmarks.md), the JSON file, the
// machine description and the resident-set sampler.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// benchSamples collects latencies by operation name. One worker owns one benchSamples (no
// locking); merge combines them after the workers finished.
type benchSamples map[string][]time.Duration

func (s benchSamples) add(op string, d time.Duration) { s[op] = append(s[op], d) }

func (s benchSamples) merge(o benchSamples) {
	for op, ds := range o {
		s[op] = append(s[op], ds...)
	}
}

// all returns every sample of every operation.
func (s benchSamples) all() []time.Duration {
	var out []time.Duration
	for _, ds := range s {
		out = append(out, ds...)
	}
	return out
}

// benchLatency is p50/p95/p99 (and the max) of a set of samples.
type benchLatency struct {
	P50, P95, P99, Max time.Duration
	N                  int
}

func benchLatencyOf(ds []time.Duration) benchLatency {
	if len(ds) == 0 {
		return benchLatency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return benchLatency{P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: s[len(s)-1], N: len(s)}
}

// benchResult is one row of the table and of the JSON file.
type benchResult struct {
	Key     string  `json:"key"`     // stable id, e.g. "limits.js_fsync_c32"
	Section string  `json:"section"` // limits, initial, baseline, incremental, replay, saml, fairness, privacy, process
	Name    string  `json:"name"`
	Ops     int     `json:"ops,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	Rate    float64 `json:"rate,omitempty"` // Ops per second
	Unit    string  `json:"unit,omitempty"` // of Rate, e.g. "req/s"
	// Latency percentiles in milliseconds (absent when the figure has no per-operation latency).
	P50ms  *float64 `json:"p50_ms,omitempty"`
	P95ms  *float64 `json:"p95_ms,omitempty"`
	P99ms  *float64 `json:"p99_ms,omitempty"`
	MaxMs  *float64 `json:"max_ms,omitempty"`
	RSSMiB float64  `json:"peak_rss_mib,omitempty"` // peak resident set of the whole process during the figure
	// The matching limit (a key of another row) and Rate divided by its rate.
	Limit     string  `json:"limit,omitempty"`
	LimitUsed string  `json:"limit_used,omitempty"` // the row Limit resolved to
	LimitName string  `json:"limit_name,omitempty"`
	LimitRate float64 `json:"limit_rate,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"`
	Target    string  `json:"target,omitempty"`
	Met       string  `json:"met,omitempty"` // yes, no, or a qualified answer
	Note      string  `json:"note,omitempty"`
	// NotMeasured says why a figure has no value (a part it needs is missing, or an error).
	NotMeasured string `json:"not_measured,omitempty"`
	// check decides Met once ratios are known; nil leaves Met as set.
	check func(r *benchResult) string
}

func benchMs(d time.Duration) *float64 {
	v := float64(d) / float64(time.Millisecond)
	return &v
}

// withLatency sets the percentiles from samples.
func (r *benchResult) withLatency(ds []time.Duration) *benchResult {
	if len(ds) == 0 {
		return r
	}
	l := benchLatencyOf(ds)
	r.P50ms, r.P95ms, r.P99ms, r.MaxMs = benchMs(l.P50), benchMs(l.P95), benchMs(l.P99), benchMs(l.Max)
	return r
}

// benchReport is everything one run measured; it is what the JSON file holds.
type benchReport struct {
	Command        string       `json:"command"`
	Durable        bool         `json:"durable"` // fsync before every acknowledgement (false with --no-fsync)
	Profile        benchProfile `json:"profile"`
	Machine        benchMachine `json:"machine"`
	Started        time.Time    `json:"started"`
	Seconds        float64      `json:"seconds"`
	DataDir        string       `json:"data_dir"`
	CPUProfile     string       `json:"cpu_profile,omitempty"`
	HeapProfile    string       `json:"heap_profile,omitempty"`
	RebuildProfile string       `json:"rebuild_cpu_profile,omitempty"`
	ConsoleProfile string       `json:"console_cpu_profile,omitempty"`
	// AfterServerMiB is the resident set once the server has shut down (what the limits
	// start from).
	AfterServerMiB float64        `json:"rss_after_server_mib,omitempty"`
	Payload        benchPayload   `json:"payload"`
	Server         map[string]any `json:"server_metrics,omitempty"` // from /metrics after the initial cycle
	Results        []*benchResult `json:"results"`
	Errors         []string       `json:"errors,omitempty"`
	mu             sync.Mutex     // guards Results, Errors
	byKey          map[string]*benchResult
}

func (rep *benchReport) add(r *benchResult) *benchResult {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.byKey == nil {
		rep.byKey = map[string]*benchResult{}
	}
	rep.Results = append(rep.Results, r)
	rep.byKey[r.Key] = r
	return r
}

func (rep *benchReport) fail(phase string, err error) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	rep.Errors = append(rep.Errors, phase+": "+err.Error())
}

// resolve fills in ratios to the matching limits and the target verdicts.
func (rep *benchReport) resolve() {
	for _, r := range rep.Results {
		if r.Limit != "" && r.NotMeasured == "" && r.Rate > 0 {
			if l := rep.limit(r.Limit); l != nil {
				r.LimitUsed, r.LimitName, r.LimitRate, r.Ratio = l.Key, l.Name, l.Rate, r.Rate/l.Rate
			}
		}
		if r.check != nil && r.NotMeasured == "" {
			r.Met = r.check(r)
		}
	}
}

// limit returns the row named by key, or for "min:k1,k2" the slower of those rows; nil if
// none was measured.
func (rep *benchReport) limit(key string) *benchResult {
	var best *benchResult
	for _, k := range strings.Split(strings.TrimPrefix(key, "min:"), ",") {
		l := rep.byKey[k]
		if l == nil || l.Rate <= 0 || l.NotMeasured != "" {
			continue
		}
		if best == nil || l.Rate < best.Rate {
			best = l
		}
	}
	return best
}

// benchSectionOrder is the order of the table, whatever order the phases ran in.
var benchSectionOrder = []string{"limits", "initial", "baseline", "incremental", "replay", "saml", "fairness", "privacy", "feed", "console", "process"}

// benchLimitOrder orders the limit rows (measured in two phases) from the disk up.
var benchLimitOrder = []string{limDiskFsync, limFsyncC1, limFsyncC32, limBatch2, limBatch100, limDirectGet, limConsume,
	limBoltWrite, limBoltWriteSeq, limBoltWriteNoSync, limBoltGet}

var benchSectionTitle = map[string]string{
	"limits":      "1 limits",
	"initial":     "2 initial cycle",
	"baseline":    "2 baseline",
	"incremental": "3 incremental",
	"replay":      "4 replay",
	"saml":        "5 SAML",
	"fairness":    "6 fairness",
	"privacy":     "7 personal data",
	"feed":        "8 change feed",
	"console":     "9 console",
	"process":     "process",
}

func (rep *benchReport) sorted() []*benchResult {
	out := slices.Clone(rep.Results)
	slices.SortStableFunc(out, func(a, b *benchResult) int {
		if d := slices.Index(benchSectionOrder, a.Section) - slices.Index(benchSectionOrder, b.Section); d != 0 {
			return d
		}
		return slices.Index(benchLimitOrder, a.Key) - slices.Index(benchLimitOrder, b.Key) // -1 - -1 = 0 elsewhere
	})
	return out
}

// table renders the results as a Markdown table, aligned so it also reads well in a terminal.
func (rep *benchReport) table() string {
	head := []string{"", "measure", "ops", "throughput", "p50", "p95", "p99", "peak RSS", "vs limit (1)", "target", "met"}
	rows := [][]string{head}
	for _, r := range rep.sorted() {
		row := []string{benchSectionTitle[r.Section], r.Name, "", "", "", "", "", "", "", r.Target, r.Met}
		if r.NotMeasured != "" {
			row[3] = "not measured: " + r.NotMeasured
			if len([]rune(row[3])) > 48 {
				row[3] = string([]rune(row[3])[:47]) + "…"
			}
			rows = append(rows, row)
			continue
		}
		if r.Ops > 0 {
			row[2] = benchGroupDigits(int64(r.Ops))
		}
		if r.Rate > 0 {
			row[3] = benchFmtCount(r.Rate) + " " + r.Unit
		}
		for i, p := range []*float64{r.P50ms, r.P95ms, r.P99ms} {
			if p != nil {
				row[4+i] = benchFmtMs(*p)
			}
		}
		if r.RSSMiB > 0 {
			row[7] = fmt.Sprintf("%.0f MiB", r.RSSMiB)
		}
		if r.Ratio > 0 {
			row[8] = fmt.Sprintf("%.2f× %s", r.Ratio, benchShortLimit(r.LimitUsed))
		}
		rows = append(rows, row)
	}
	width := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(row []string) {
		b.WriteString("|")
		for i, c := range row {
			pad := width[i] - len([]rune(c))
			if i >= 2 && i <= 7 { // numbers right-aligned
				b.WriteString(" " + strings.Repeat(" ", pad) + c + " |")
			} else {
				b.WriteString(" " + c + strings.Repeat(" ", pad) + " |")
			}
		}
		b.WriteString("\n")
	}
	line(rows[0])
	b.WriteString("|")
	for i, w := range width {
		if i >= 2 && i <= 7 {
			b.WriteString(" " + strings.Repeat("-", max(w-1, 2)) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", max(w, 3)) + " |")
		}
	}
	b.WriteString("\n")
	for _, row := range rows[1:] {
		line(row)
	}
	return b.String()
}

// benchShortLimit names a limit compactly in the table ("limits.js_fsync_c32" → "js_fsync_c32").
func benchShortLimit(key string) string {
	if after, ok := strings.CutPrefix(key, "limits."); ok {
		return after
	}
	if key == "baseline.all" {
		return "in-memory SCIM"
	}
	return key
}

func benchFmtCount(v float64) string {
	switch {
	case v >= 10_000:
		return benchGroupDigits(int64(math.Round(v)))
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func benchGroupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func benchFmtMs(v float64) string {
	switch {
	case v < 0.1:
		return fmt.Sprintf("%.0f µs", v*1000)
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 1000:
		return fmt.Sprintf("%.0f ms", v)
	default:
		return fmt.Sprintf("%.1f s", v/1000)
	}
}

// writeJSON writes the report to path (creating its directory).
func (rep *benchReport) writeJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	rep.mu.Lock()
	b, err := json.MarshalIndent(rep, "", "  ")
	rep.mu.Unlock()
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Markers around each profile's section of docs/benchmarks.md; the rest of the file (the notes
// on bottlenecks and targets) is written by people and kept as it is.
func benchDocMarkers(profile string) (string, string) {
	return "<!-- bench:" + profile + ":begin -->", "<!-- bench:" + profile + ":end -->"
}

const benchDocSkeleton = `# idledger benchmarks

Written by ` + "`idledger-bench`" + ` (` + "`make bench`" + `, ` + "`make bench-short`" + `): each run replaces its profile's section
below with the latest table, machine and command; everything outside the markers is kept.
Method and the meaning of each row: ` + "`cmd/idledger-bench/main.go`" + `; limits as in docs/event-model.md §3.2.

## Short profile

<!-- bench:short:begin -->
<!-- bench:short:end -->

## Default profile

<!-- bench:default:begin -->
<!-- bench:default:end -->
`

// markdownSection is what one run writes between its markers.
func (rep *benchReport) markdownSection() string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "Run %s, %s total.\n\n", rep.Started.UTC().Format("2006-01-02 15:04 MST"), time.Duration(rep.Seconds*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(&b, "- **Command**: `%s`\n", rep.Command)
	durable := "durable (fsync before every acknowledgement, as `idledger serve`)"
	if !rep.Durable {
		durable = "NOT durable (--no-fsync)"
	}
	fmt.Fprintf(&b, "- **Profile**: %s — %d users, %d groups, %d members per group on average, concurrency %d; %s; no rate limit\n",
		rep.Profile.Name, rep.Profile.Users, rep.Profile.Groups, rep.Profile.MembersAvg, rep.Profile.Concurrency, durable)
	fmt.Fprintf(&b, "- **Machine**: %s; %d cores (GOMAXPROCS %d); %s RAM; disk %s; %s; %s; Linux %s; load average (1 min) %s\n",
		m.CPU, m.Cores, m.GOMAXPROCS, m.Memory, m.Disk, m.FS, m.Go, m.Kernel, m.Load)
	fmt.Fprintf(&b, "- **Payload**: %s\n", rep.Payload)
	if rep.CPUProfile != "" {
		fmt.Fprintf(&b, "- **CPU profile** of the initial cycle: `%s` (`go tool pprof -top bin/idledger %s`)\n", rep.CPUProfile, rep.CPUProfile)
	}
	if rep.RebuildProfile != "" {
		fmt.Fprintf(&b, "- **CPU profile** of the rebuild: `%s`\n", rep.RebuildProfile)
	}
	if rep.ConsoleProfile != "" {
		fmt.Fprintf(&b, "- **CPU profile** of the console pages: `%s`\n", rep.ConsoleProfile)
	}
	if rep.HeapProfile != "" {
		fmt.Fprintf(&b, "- **Heap profile** after the initial cycle: `%s`\n", rep.HeapProfile)
	}
	b.WriteString("\n")
	b.WriteString(rep.table())
	if len(rep.Errors) > 0 {
		b.WriteString("\nErrors:\n")
		for _, e := range rep.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}

// updateDoc replaces this profile's section of the document at path (created if missing).
func (rep *benchReport) updateDoc(path string) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw, err = []byte(benchDocSkeleton), nil
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	begin, end := benchDocMarkers(rep.Profile.Name)
	doc := string(raw)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		doc = strings.TrimRight(doc, "\n") + "\n\n## " + rep.Profile.Name + " profile\n\n" + begin + "\n" + end + "\n"
		i, j = strings.Index(doc, begin), strings.Index(doc, end)
	}
	doc = doc[:i+len(begin)] + "\n" + rep.markdownSection() + doc[j:]
	return os.WriteFile(path, []byte(doc), 0o644)
}

// benchMachine describes where the bench ran.
type benchMachine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Memory     string `json:"memory"`
	Disk       string `json:"disk"`
	FS         string `json:"filesystem"`
	Go         string `json:"go"`
	Kernel     string `json:"kernel"`
	Date       string `json:"date"`
	// Load is the 1-minute load average at the start and at the end of the run: other work
	// on the machine (a high value) makes every figure, limits included, noisier.
	Load string `json:"load"`
}

// benchLoadAvg returns the 1-minute load average ("" where unknown).
func benchLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func benchDescribeMachine(dataDir string) benchMachine {
	m := benchMachine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
		Date: time.Now().UTC().Format("2006-01-02"), CPU: "unknown", Memory: "unknown", Disk: "unknown", FS: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	// The mount holding the data dir: the longest mount point that prefixes it.
	if b, err := os.ReadFile("/proc/mounts"); err == nil {
		abs, _ := filepath.Abs(dataDir)
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			abs = r
		}
		best := -1
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			mp := f[1]
			if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
				best = len(mp)
				m.FS = f[2] + " on " + f[0]
				m.Disk = benchDiskOf(f[0])
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &st); err == nil {
		m.Disk += fmt.Sprintf(", %.0f GiB", float64(st.Blocks)*float64(st.Bsize)/(1<<30))
	}
	return m
}

// benchDiskOf describes a block device from sysfs: rotational or not, and its model if known.
func benchDiskOf(dev string) string {
	name := filepath.Base(dev)
	kind := "unknown"
	if b, err := os.ReadFile("/sys/block/" + name + "/queue/rotational"); err == nil {
		kind = "sysfs rotational=" + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/sys/block/" + name + "/device/model"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		kind += " " + strings.TrimSpace(string(b))
	}
	if strings.HasPrefix(name, "vd") {
		kind = "virtio, " + kind
	}
	return name + " (" + kind + ")"
}

// benchRSS tracks the peak resident set of this process. Peaks are per figure: reset
// starts a new one. Go keeps freed memory for a while, so reset first returns it to the OS.
type benchRSS struct {
	peak atomic.Int64 // bytes
	// anon and file are the anonymous and file-backed parts of the resident set when it
	// peaked (bytes).
	anon, file atomic.Int64
	stop       chan struct{}
	done       chan struct{}
}

func startBenchRSS() *benchRSS {
	s := &benchRSS{stop: make(chan struct{}), done: make(chan struct{})}
	s.observe()
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.observe()
			}
		}
	}()
	return s
}

func (s *benchRSS) observe() {
	v, shared := benchCurrentRSS()
	for {
		p := s.peak.Load()
		if v <= p {
			return
		}
		if s.peak.CompareAndSwap(p, v) {
			s.anon.Store(v - shared)
			s.file.Store(shared)
			return
		}
	}
}

// peakParts returns the anonymous and file-backed parts of the peak since the last reset.
func (s *benchRSS) peakParts() (anonMiB, fileMiB float64) {
	return float64(s.anon.Load()) / (1 << 20), float64(s.file.Load()) / (1 << 20)
}

// reset returns freed memory to the OS and starts a new peak from the current resident set.
func (s *benchRSS) reset() {
	debug.FreeOSMemory()
	s.peak.Store(0)
	s.observe()
}

// peakMiB returns the peak since the last reset.
func (s *benchRSS) peakMiB() float64 {
	s.observe()
	return float64(s.peak.Load()) / (1 << 20)
}

func (s *benchRSS) close() {
	close(s.stop)
	<-s.done
}

// benchCurrentRSS reads the resident set size and its file-backed (and shared) part from
// /proc/self/statm (0 where there is none).
func benchCurrentRSS() (rss, shared int64) {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var size int64
	if _, err := fmt.Fscan(bufio.NewReader(f), &size, &rss, &shared); err != nil {
		return 0, 0
	}
	page := int64(os.Getpagesize())
	return rss * page, shared * page
}

// benchHWMMiB returns the process's lifetime peak resident set (VmHWM).
func benchHWMMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
