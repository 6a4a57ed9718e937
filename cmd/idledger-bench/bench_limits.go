package main

// Section 1 of the bench: this machine's limits, measured in the same run with the same
// payloads and concurrency as the product figures (docs/event-model.md §3.2 method). A separate
// embedded nats-server (same options as eventstore's: SyncAlways, in-process, file storage)
// and separate bbolt files (same options as projections') in the bench's data dir; nothing of
// idledger's code runs here.

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"
	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/cmd/internal/cli"
	"github.com/idledger/idledger/eventstore"
)

// Keys of the limit rows, which the product rows name as their matching limit.
const (
	limDiskFsync       = "limits.disk_fsync"
	limFsyncC1         = "limits.js_fsync_c1"
	limFsyncC32        = "limits.js_fsync_c32"
	limBatch2          = "limits.js_batch2_c32"
	limBatch100        = "limits.js_batch100_c1"
	limConsume         = "limits.js_ordered_read"
	limDirectGet       = "limits.js_direct_get"
	limBoltWrite       = "limits.bolt_write_random"
	limBoltWriteSeq    = "limits.bolt_write_ordered"
	limBoltWriteNoSync = "limits.bolt_write_nosync"
	limBoltGet         = "limits.bolt_get"
	limitStream        = "BENCH_LIMITS"
	limitSubjectRoot   = "bench"
)

// benchPayload is the mix of messages the limits publish: a sample of the messages the
// product wrote in this run (bodies and Idl-* headers as stored), so the limits move the same
// bytes per event.
type benchPayload struct {
	Source      string  `json:"source"`
	Messages    int     `json:"sampled_messages"`
	MeanData    float64 `json:"mean_body_bytes"`
	MeanHeaders float64 `json:"mean_header_bytes"`
	msgs        []benchMsg
}

type benchMsg struct {
	hdr  nats.Header
	data []byte
}

func (p benchPayload) String() string {
	return fmt.Sprintf("%s: %d messages, mean body %.0f B + headers %.0f B", p.Source, p.Messages, p.MeanData, p.MeanHeaders)
}

// benchSamplePayload reads n messages spread over the product's log. Headers that a publisher sets
// per message (Nats-Msg-Id, expectations) are left out; the limits set their own.
func benchSamplePayload(ctx context.Context, store *eventstore.Store, n int) (benchPayload, error) {
	nc, err := nats.Connect("", nats.InProcessServer(store))
	if err != nil {
		return benchPayload{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return benchPayload{}, err
	}
	st, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		return benchPayload{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return benchPayload{}, err
	}
	last := info.State.LastSeq
	if last == 0 {
		return benchPayload{}, errors.New("the log is empty")
	}
	p := benchPayload{Source: fmt.Sprintf("sampled from this run's log (%d messages)", last)}
	var dataBytes, hdrBytes int
	for k := range min(uint64(n), last) {
		seq := 1 + k*last/min(uint64(n), last)
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			return benchPayload{}, fmt.Errorf("sample seq %d: %w", seq, err)
		}
		h := nats.Header{}
		for name, vs := range m.Header {
			if !strings.HasPrefix(name, "Idl-") { // Nats-* headers are set per publish (id, batch, expectations)
				continue
			}
			h[name] = vs
			for _, v := range vs {
				hdrBytes += len(name) + len(v) + 4
			}
		}
		hdrBytes += len(jetstream.MsgIDHeader) + 22 + 4 // the fresh Nats-Msg-Id every message gets
		dataBytes += len(m.Data)
		p.msgs = append(p.msgs, benchMsg{hdr: h, data: m.Data})
	}
	p.Messages = len(p.msgs)
	p.MeanData = float64(dataBytes) / float64(p.Messages)
	p.MeanHeaders = float64(hdrBytes) / float64(p.Messages)
	return p, nil
}

// benchSyntheticPayload is used only when the log could not be sampled: the docs/event-model.md §3.2
// shape (~1 KiB body, ~250 B of Idl-* headers).
func benchSyntheticPayload() benchPayload {
	h := nats.Header{}
	for _, k := range []string{"Idl-Type", "Idl-Schema", "Idl-Tenant", "Idl-Aggregate", "Idl-At", "Idl-Actor", "Idl-Hash", "Idl-Prev"} {
		h.Set(k, strings.Repeat("x", 24))
	}
	data := []byte(`{"attributes":{` + strings.Repeat(`"k":"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv",`, 9) + `"end":1}}`)
	return benchPayload{Source: "synthetic (the log could not be sampled)", Messages: 1, MeanData: float64(len(data)), MeanHeaders: 250,
		msgs: []benchMsg{{hdr: h, data: data}}}
}

// msg builds the i-th payload message for subject, with a fresh Nats-Msg-Id.
func (p benchPayload) msg(i int, subject string) *nats.Msg {
	src := p.msgs[i%len(p.msgs)]
	m := nats.NewMsg(subject)
	m.Header = maps.Clone(src.hdr)
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	m.Header.Set(jetstream.MsgIDHeader, nuid.Next())
	m.Data = src.data
	return m
}

// benchLimits measures section 1 into rep.
type benchLimits struct {
	dir     string
	prof    benchProfile
	payload benchPayload
	rss     *benchRSS
	rep     *benchReport
	bar     func(label string, total int) *cli.Progress
	noSync  bool // the JetStream limits without fsync (matching a --no-fsync server)
}

func (l *benchLimits) run(ctx context.Context) error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return err
	}
	l.diskFsync()
	srv, nc, err := startBenchLimitServer(filepath.Join(l.dir, "nats"), !l.noSync)
	if err != nil {
		return err
	}
	defer func() {
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	// A generous timeout: a publish waits for its fsync, which a busy disk can stretch.
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Minute))
	if err != nil {
		return err
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: limitStream, Subjects: []string{limitSubjectRoot + ".>"}, Storage: jetstream.FileStorage,
		Replicas: 1, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
		MaxMsgs: -1, MaxBytes: -1, MaxMsgsPerSubject: -1, Duplicates: 2 * time.Minute,
		DenyDelete: true, DenyPurge: true, AllowDirect: true, AllowAtomicPublish: true,
	})
	if err != nil {
		return fmt.Errorf("limits stream: %w", err)
	}
	n := l.prof.LimitOps
	subjects := l.syncPublish(ctx, js, "fsync_c1", limFsyncC1, 1, n)
	l.syncPublish(ctx, js, "fsync_c32", limFsyncC32, l.prof.Concurrency, n)
	l.batchPublish(ctx, js, limBatch2, 2, l.prof.Concurrency, n)
	l.batchPublish(ctx, js, limBatch100, 100, 1, 4*n)
	l.directGet(ctx, st, subjects, 4*n)
	path := filepath.Join(l.dir, "bolt-random.db")
	if err := l.boltWrite(path, limBoltWrite, false, 4*n); err != nil {
		return err
	}
	if err := l.boltWrite(filepath.Join(l.dir, "bolt-ordered.db"), limBoltWriteSeq, true, 4*n); err != nil {
		return err
	}
	if err := l.boltWrite(filepath.Join(l.dir, "bolt-nosync.db"), limBoltWriteNoSync, false, 4*n); err != nil {
		return err
	}
	return l.boltGet(path, 10*n)
}

// startBenchLimitServer starts a nats-server with eventstore's embedded options (fsync before every
// acknowledgement, no listener, in-process connection).
func startBenchLimitServer(dir string, syncAlways bool) (*server.Server, *nats.Conn, error) {
	srv, err := server.NewServer(&server.Options{ServerName: "bench-limits", JetStream: true, StoreDir: dir,
		DontListen: true, NoSigs: true, NoLog: true, SyncAlways: syncAlways})
	if err != nil {
		return nil, nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, nil, errors.New("limits: nats-server did not start")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	return srv, nc, nil
}

// timed runs work on conc goroutines, each doing its share of total operations, and returns
// the wall time and the merged samples. work returns how many operations it did.
func (l *benchLimits) timed(label string, conc, total int, work func(g, n int, s benchSamples, done *atomic.Int64) error) (time.Duration, benchSamples, error) {
	l.rss.reset()
	bar := l.bar(label, total)
	var done atomic.Int64
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				bar.Update(uint64(done.Load()), uint64(total))
			}
		}
	}()
	all := benchSamples{}
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	start := time.Now()
	for g := range conc {
		share := total / conc
		if g < total%conc {
			share++
		}
		wg.Go(func() {
			s := benchSamples{}
			err := work(g, share, s, &done)
			mu.Lock()
			all.merge(s)
			if err != nil && first == nil {
				first = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	bar.Update(uint64(total), uint64(total))
	bar.Done()
	return elapsed, all, first
}

func (l *benchLimits) result(key, name string, ops int, elapsed time.Duration, unit string, lat []time.Duration, note string) *benchResult {
	r := &benchResult{Key: key, Section: "limits", Name: name, Ops: ops, Seconds: elapsed.Seconds(),
		Rate: float64(ops) / elapsed.Seconds(), Unit: unit, RSSMiB: l.rss.peakMiB(), Note: note}
	r.withLatency(lat)
	return l.rep.add(r)
}

func (l *benchLimits) failed(key, name string, err error) {
	l.rep.add(&benchResult{Key: key, Section: "limits", Name: name, NotMeasured: err.Error()})
	l.rep.fail(name, err)
}

// diskFsync writes 4 KiB and fsyncs it, again and again: the disk's own bound.
func (l *benchLimits) diskFsync() {
	const name = "disk: 4 KiB write + fsync"
	f, err := os.Create(filepath.Join(l.dir, "fsync-probe"))
	if err != nil {
		l.failed(limDiskFsync, name, err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	n := max(l.prof.LimitOps/10, 100)
	var lat []time.Duration
	start := time.Now()
	for i := range n {
		t := time.Now()
		buf[0] = byte(i)
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			l.failed(limDiskFsync, name, err)
			return
		}
		if err := f.Sync(); err != nil {
			l.failed(limDiskFsync, name, err)
			return
		}
		lat = append(lat, time.Since(t))
	}
	l.result(limDiskFsync, name, n, time.Since(start), "syncs/s", lat, "")
}

// syncPublish publishes total messages with sync publishes from conc goroutines, each cycling
// over its own 256 subjects and asserting each subject's last sequence (what every idledger
// write does). It returns the subjects it wrote.
func (l *benchLimits) syncPublish(ctx context.Context, js jetstream.JetStream, tag, key string, conc, total int) []string {
	name := fmt.Sprintf("JS publish, expect seq, %s, c=%d", map[bool]string{false: "fsync each", true: "no fsync"}[l.noSync], conc)
	var mu sync.Mutex
	var subjects []string
	elapsed, s, err := l.timed("limits "+tag, conc, total, func(g, n int, s benchSamples, done *atomic.Int64) error {
		subj := make([]string, 256)
		last := make([]uint64, 256)
		for k := range subj {
			subj[k] = fmt.Sprintf("%s.%s.g%d.s%d", limitSubjectRoot, tag, g, k)
		}
		mu.Lock()
		subjects = append(subjects, subj[:min(n, len(subj))]...) // only those written
		mu.Unlock()
		for i := range n {
			k := i % 256
			m := l.payload.msg(g*n+i, subj[k])
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(last[k]))
			t := time.Now()
			ack, err := js.PublishMsg(ctx, m)
			if err != nil {
				return err
			}
			s.add("op", time.Since(t))
			last[k] = ack.Sequence
			done.Add(1)
		}
		return nil
	})
	if err != nil {
		l.failed(key, name, err)
		return subjects
	}
	l.result(key, name, total, elapsed, "events/s", s["op"], "")
	return subjects
}

// batchPublish publishes total messages in atomic batches of size from conc goroutines. Every
// message is on a new subject and asserts it is empty (expected seq 0), as a SCIM create's
// userName claim and user event do; size 2 is exactly that shape.
func (l *benchLimits) batchPublish(ctx context.Context, js jetstream.JetStream, key string, size, conc, total int) {
	name := fmt.Sprintf("JS atomic batch of %d, expect seq, c=%d", size, conc)
	tag := fmt.Sprintf("batch%d", size)
	elapsed, s, err := l.timed("limits "+tag, conc, total, func(g, n int, s benchSamples, done *atomic.Int64) error {
		for i := 0; i < n; i += size {
			msgs := make([]*nats.Msg, 0, size)
			for j := i; j < min(i+size, n); j++ {
				m := l.payload.msg(g*n+j, fmt.Sprintf("%s.%s.g%d.m%d", limitSubjectRoot, tag, g, j))
				m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
				msgs = append(msgs, m)
			}
			t := time.Now()
			var err error
			if len(msgs) == 1 {
				_, err = js.PublishMsg(ctx, msgs[0])
			} else {
				_, err = jetstreamext.PublishMsgBatch(ctx, js, msgs)
			}
			if err != nil {
				return err
			}
			s.add("op", time.Since(t))
			done.Add(int64(len(msgs)))
		}
		return nil
	})
	if err != nil {
		l.failed(key, name, err)
		return
	}
	l.result(key, name, total, elapsed, "events/s", s["op"], "latency per batch")
}

// orderedRead reads a whole stream through an ordered consumer, as the projector's
// subscription and the audit export do (1000 messages pulled ahead, metadata parsed, nothing
// decoded). It runs on this run's own log (benchServer.run calls it before the rebuild, with
// the server idle), so the read limit has the log's size and payloads. A log smaller than
// 200k messages is read up to three times and the fastest pass counts: a limit is the best
// the machine can do, and a short pass is mostly start-up.
func (l *benchLimits) orderedRead(ctx context.Context, js jetstream.JetStream, stream string) {
	const name = "JS ordered consumer read (this run's log)"
	st, err := js.Stream(ctx, stream)
	if err != nil {
		l.failed(limConsume, name, err)
		return
	}
	info, err := st.Info(ctx)
	if err != nil {
		l.failed(limConsume, name, err)
		return
	}
	total := int(info.State.Msgs)
	var best time.Duration
	for pass := 0; pass < 3 && (pass == 0 || total < 200_000); pass++ {
		elapsed, _, err := l.timed("limits ordered read", 1, total, func(_, n int, _ benchSamples, done *atomic.Int64) error {
			cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
			if err != nil {
				return err
			}
			it, err := cons.Messages(jetstream.PullMaxMessages(1000))
			if err != nil {
				return err
			}
			defer it.Stop()
			for range n {
				m, err := it.Next()
				if err != nil {
					return err
				}
				if _, err := m.Metadata(); err != nil {
					return err
				}
				done.Add(1)
			}
			return nil
		})
		if err != nil {
			l.failed(limConsume, name, err)
			return
		}
		if best == 0 || elapsed < best {
			best = elapsed
		}
	}
	l.result(limConsume, name, total, best, "events/s", nil, "fastest of up to 3 passes over the whole log; server idle")
}

// directGet reads the last message of random subjects, as every idledger write does for the
// aggregate it changes (load, claim holder, chain predecessor).
func (l *benchLimits) directGet(ctx context.Context, st jetstream.Stream, subjects []string, total int) {
	name := fmt.Sprintf("JS direct get (last of subject), c=%d", l.prof.Concurrency)
	if len(subjects) == 0 {
		l.failed(limDirectGet, name, errors.New("no subjects were written"))
		return
	}
	elapsed, s, err := l.timed("limits direct get", l.prof.Concurrency, total, func(g, n int, s benchSamples, done *atomic.Int64) error {
		r := rand.New(rand.NewPCG(uint64(g), 7))
		for range n {
			t := time.Now()
			if _, err := st.GetLastMsgForSubject(ctx, subjects[r.IntN(len(subjects))]); err != nil {
				return err
			}
			s.add("op", time.Since(t))
			done.Add(1)
		}
		return nil
	})
	if err != nil {
		l.failed(limDirectGet, name, err)
		return
	}
	l.result(limDirectGet, name, total, elapsed, "gets/s", s["op"], "")
}

// benchOpenBolt opens a bbolt file with the options projections uses.
func benchOpenBolt(path string) (*bolt.DB, error) {
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
}

// boltWrite writes total records of the payload's body sizes, 500 per transaction with a
// checkpoint key, fsync per commit (the projector's shape), with random 16-byte keys or
// time-ordered ones.
func (l *benchLimits) boltWrite(path, key string, ordered bool, total int) error {
	order := "random keys"
	if ordered {
		order = "ordered keys"
	}
	noSync := key == limBoltWriteNoSync
	name := "bbolt write 500/tx, fsync, " + order
	if noSync {
		name = "bbolt write 500/tx, no fsync, " + order
	}
	db, err := benchOpenBolt(path)
	if err != nil {
		return err
	}
	defer db.Close()
	db.NoSync = noSync
	elapsed, s, err := l.timed("limits bbolt write", 1, total, func(_, n int, s benchSamples, done *atomic.Int64) error {
		var seq uint64
		r := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < n; i += 500 {
			t := time.Now()
			err := db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("records"))
				if err != nil {
					return err
				}
				for j := i; j < min(i+500, n); j++ {
					k := make([]byte, 16)
					if ordered {
						seq++
						binary.BigEndian.PutUint64(k, seq)
						binary.BigEndian.PutUint64(k[8:], r.Uint64())
					} else if _, err := crand.Read(k); err != nil {
						return err
					}
					if err := b.Put(k, l.payload.msgs[j%len(l.payload.msgs)].data); err != nil {
						return err
					}
				}
				m, err := tx.CreateBucketIfNotExists([]byte("meta"))
				if err != nil {
					return err
				}
				var cp [8]byte
				binary.BigEndian.PutUint64(cp[:], uint64(i))
				return m.Put([]byte("checkpoint"), cp[:])
			})
			if err != nil {
				return err
			}
			s.add("op", time.Since(t))
			done.Store(int64(min(i+500, n)))
		}
		if noSync {
			return db.Sync()
		}
		return nil
	})
	if err != nil {
		l.failed(key, name, err)
		return nil
	}
	l.result(key, name, total, elapsed, "records/s", s["op"], "latency per transaction")
	return nil
}

// boltGet reads random keys of the random-key file, one View transaction per get, from conc
// goroutines: the shape of a read-model lookup.
func (l *benchLimits) boltGet(path string, total int) error {
	name := fmt.Sprintf("bbolt random get, View each, c=%d", l.prof.Concurrency)
	db, err := benchOpenBolt(path)
	if err != nil {
		return err
	}
	defer db.Close()
	var keys [][]byte
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		if b == nil {
			return errors.New("no records written")
		}
		return b.ForEach(func(k, _ []byte) error {
			keys = append(keys, append([]byte(nil), k...))
			return nil
		})
	})
	if err != nil {
		l.failed(limBoltGet, name, err)
		return nil
	}
	elapsed, s, err := l.timed("limits bbolt get", l.prof.Concurrency, total, func(g, n int, s benchSamples, done *atomic.Int64) error {
		r := rand.New(rand.NewPCG(uint64(g), 11))
		for range n {
			k := keys[r.IntN(len(keys))]
			t := time.Now()
			err := db.View(func(tx *bolt.Tx) error {
				if tx.Bucket([]byte("records")).Get(k) == nil {
					return errors.New("key not found")
				}
				return nil
			})
			if err != nil {
				return err
			}
			s.add("op", time.Since(t))
			done.Add(1)
		}
		return nil
	})
	if err != nil {
		l.failed(limBoltGet, name, err)
		return nil
	}
	l.result(limBoltGet, name, total, elapsed, "gets/s", s["op"], "")
	return nil
}
