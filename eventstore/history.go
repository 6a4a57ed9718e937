package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// History reads for audit (audit.History) and the export/import of a company's slice of the
// log. Everything reads the log itself, so deleted resources keep their history.

// Events returns up to limit (all if limit <= 0) events of one aggregate after position after,
// in order, with batched direct gets on its subject. It implements [audit.History].
func (s *Store) Events(ctx context.Context, tenant domain.TenantID, kind domain.Kind, id string, after domain.Version, limit int) ([]domain.Event, error) {
	if !validToken(string(tenant)) || (kind != domain.KindTenant && !validToken(id)) {
		return nil, nil
	}
	subj := subject(tenant, kind, id)
	last, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eventstore: history of %s: %w", subj, err)
	}
	var events []domain.Event
	err = s.subjectMsgs(ctx, subj, uint64(after)+1, last.Sequence, limit, func(m *jetstream.RawStreamMsg) error {
		e, err := s.decodeOpen(ctx, m.Subject, m.Header, m.Data, m.Sequence, m.Time)
		if err != nil {
			return err
		}
		events = append(events, e)
		return nil
	})
	return events, err
}

// subjectMsgs calls fn with up to limit (all if <= 0) messages of one literal subject with
// sequences from..through, in order. Batched direct gets end silently when their deadline
// passes (orbit's RequestMany), so a short read is an error, never a shorter history.
func (s *Store) subjectMsgs(ctx context.Context, subj string, from, through uint64, limit int, fn func(*jetstream.RawStreamMsg) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got := 0
	next := from
	for next <= through && (limit <= 0 || got < limit) {
		batch := loadBatch
		if limit > 0 && limit-got < batch {
			batch = limit - got
		}
		msgs, err := jetstreamext.GetBatch(ctx, s.js, StreamName, batch,
			jetstreamext.GetBatchSeq(next), jetstreamext.GetBatchSubject(subj))
		if err != nil {
			return fmt.Errorf("eventstore: read %s: %w", subj, err)
		}
		n := 0
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return fmt.Errorf("eventstore: read %s: %w", subj, err)
			}
			if m.Sequence > through || (limit > 0 && got >= limit) {
				return nil
			}
			if err := fn(m); err != nil {
				return err
			}
			next = m.Sequence + 1
			got++
			n++
		}
		if n == 0 {
			return fmt.Errorf("eventstore: read %s: incomplete read (through seq %d of %d): %w",
				subj, next-1, through, context.DeadlineExceeded)
		}
	}
	return nil
}

// tenantFilter is the subject filter of every message of a company.
func tenantFilter(tenant domain.TenantID) string { return "idl." + string(tenant) + ".>" }

// Scan calls fn with a company's messages (events and index records) after position after and
// up to through (0: the last one when Scan starts), in log order, until fn returns false. It
// reads with an ordered consumer filtered on the company's subjects, and asks for nothing
// else: the company's last position is not looked up (for a wildcard that costs a walk of
// every subject of the company, tens of milliseconds at 100k users), the consumer's pending
// count says where the read ends. It implements [audit.History].
func (s *Store) Scan(ctx context.Context, tenant domain.TenantID, after, through domain.Version, fn func(domain.Event) bool) error {
	return s.scan(ctx, tenant, after, through, true, fn)
}

// ScanSealed is Scan for a reader of no personal value (the audit's cycle figures count
// events): the personal values stay in their stored form, sealed (crypto.go), which spares
// opening each of them.
func (s *Store) ScanSealed(ctx context.Context, tenant domain.TenantID, after, through domain.Version, fn func(domain.Event) bool) error {
	return s.scan(ctx, tenant, after, through, false, fn)
}

func (s *Store) scan(ctx context.Context, tenant domain.TenantID, after, through domain.Version, open bool, fn func(domain.Event) bool) error {
	if !validToken(string(tenant)) {
		return nil
	}
	if through == 0 {
		through = math.MaxUint64
	}
	filter := tenantFilter(tenant)
	return s.each(ctx, StreamName, filter, uint64(after)+1, uint64(through), func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		var e domain.Event
		var err error
		if open {
			e, err = s.decodeOpen(ctx, m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream, md.Timestamp)
		} else {
			e, err = decode(m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream, md.Timestamp)
		}
		if err != nil {
			return false, err
		}
		return fn(e), nil
	})
}

// lastSeq returns the sequence of the last message of stream matching filter, which may hold
// wildcards (0 if none). It sends the direct-get request itself: nats.go puts the subject of
// a last-by-subject get into the request subject, where a wildcard is not allowed.
func (s *Store) lastSeq(ctx context.Context, stream, filter string) (uint64, error) {
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{filter})
	if err != nil {
		return 0, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	res, err := s.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, req)
	if err != nil {
		return 0, fmt.Errorf("eventstore: last message of %s: %w", filter, err)
	}
	if status := res.Header.Get("Status"); status != "" {
		if status == "404" {
			return 0, nil
		}
		return 0, fmt.Errorf("eventstore: last message of %s: status %s %s", filter, status, res.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(res.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("eventstore: last message of %s: bad sequence header: %w", filter, err)
	}
	return seq, nil
}

// each delivers the messages of stream matching filter with sequences from..through to fn, in
// order, through an ordered consumer, until fn returns false or an error. The read ends at
// through, or once the messages pending when it started are delivered, whichever comes first.
func (s *Store) each(ctx context.Context, stream, filter string, from, through uint64,
	fn func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error)) error {
	if from == 0 {
		from = 1
	}
	if through < from {
		return nil
	}
	cons, err := s.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return fmt.Errorf("eventstore: read %s: %w", filter, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2048))
	if err != nil {
		return fmt.Errorf("eventstore: read %s: %w", filter, err)
	}
	defer it.Stop()
	if !anyPending(cons) {
		return nil // nothing from `from` on when the read started: Next would wait for more
	}
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("eventstore: read %s: %w", filter, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("eventstore: read %s: %w", filter, err)
		}
		seq := md.Sequence.Stream
		if seq > through {
			return nil
		}
		ok, err := fn(m, md)
		if err != nil || !ok {
			return err
		}
		if seq >= through || md.NumPending == 0 {
			return nil
		}
	}
}

// awaitAcks waits for the acknowledgement of every publish in acks, in order, and returns the
// stream sequence of the last one acknowledged (0 if none was); op names the caller in errors.
func awaitAcks(ctx context.Context, op string, acks []jetstream.PubAckFuture) (uint64, error) {
	var last uint64
	for _, f := range acks {
		select {
		case ack := <-f.Ok():
			last = ack.Sequence
		case err := <-f.Err():
			return last, fmt.Errorf("eventstore: %s: publish %s: %w", op, f.Msg().Subject, err)
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
	return last, nil
}

// anyPending reports whether a consumer had messages to deliver when it was created (true if
// that is unknown, so the caller reads on).
func anyPending(c jetstream.Consumer) bool {
	info := c.CachedInfo()
	return info == nil || info.NumPending > 0
}

// Holders returns every holder of a unique value in the order they claimed it, read from the
// value's claim subject. The subject is named by a keyed hash of the value, computed here from
// the value asked for: nothing is scanned, and no name is ever in a subject. A company whose
// claim key is gone (IDL_KEYS deleted: crypto-shredded) has no holders, and an erased person
// holds no userName (erase.go): a name no longer leads to them. It implements [audit.History].
func (s *Store) Holders(ctx context.Context, tenant domain.TenantID, field, value string) ([]audit.Holding, error) {
	kind, ok := claimKinds[field]
	if !ok || !validToken(string(tenant)) {
		return nil, fmt.Errorf("eventstore: no claims of %q: %w", field, domain.ErrInvalid)
	}
	secret, err := s.existingSecret(ctx, tenant)
	if err != nil || secret == nil {
		return nil, err
	}
	subj := "idl." + string(tenant) + "." + kind + "." + claimKeyOf(secret, field, value)
	last, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eventstore: holders: %w", err)
	}
	var out []audit.Holding
	err = s.subjectMsgs(ctx, subj, 1, last.Sequence, 0, func(m *jetstream.RawStreamMsg) error {
		var p claimPayload
		if err := json.Unmarshal(m.Data, &p); err != nil {
			return fmt.Errorf("eventstore: claim at seq %d: %w", m.Sequence, err)
		}
		switch m.Header.Get(hdrType) {
		case typeClaimed:
			out = append(out, audit.Holding{ID: p.Holder, Claimed: domain.Version(m.Sequence)})
		case typeReleased:
			for i := len(out) - 1; i >= 0; i-- {
				if out[i].ID == p.Holder && out[i].Released == 0 {
					out[i].Released = domain.Version(m.Sequence)
					break
				}
			}
		}
		return nil
	})
	if err != nil || field != "userName" {
		return out, err
	}
	return s.withoutErased(ctx, tenant, out)
}

// claimKeyOf is claimKey's hash with a given secret: base32(HMAC-SHA256(secret, field ":"
// value))[:26], lower case. TestHistory_Holders keeps the two in step.
func claimKeyOf(secret []byte, field, value string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(field + ":" + value))
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(mac.Sum(nil))
	return strings.ToLower(enc[:26])
}

// existingSecret returns a company's claim key, or nil if it has none; unlike tenantSecret it
// never creates one.
func (s *Store) existingSecret(ctx context.Context, tenant domain.TenantID) ([]byte, error) {
	s.mu.Lock()
	k, ok := s.claimSecret[string(tenant)]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	entry, err := s.keys.Get(ctx, "claim."+string(tenant))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eventstore: tenant key: %w", err)
	}
	return entry.Value(), nil
}

// ---- export and import ----

// ExportFormat names the export's JSON Lines format in its first line.
const ExportFormat = "idledger-export/1"

// An export is JSON Lines: a header, one line per message of the company in log order, and an
// end line that says how many messages precede it (so a truncated file is recognised):
//
//	{"format":"idledger-export/1","tenant":"…","stream":"IDL_EVENTS","exportedAt":"…","claimKey":"…"}
//	{"seq":1,"subject":"idl.<t>.tenant","time":"…","headers":{"Idl-Type":"tenant.created",…},"data":{…}}
//	{"end":{"messages":1,"lastSeq":1}}
//
// Messages are exported as stored: every header (the hash chain's Idl-Prev and Idl-Hash
// included) and the payload as JSON (base64 in "dataBase64" if it is not JSON). "time" is when
// the log stored it. The header carries the company's claim key (IDL_KEYS), without which an
// import could not keep userNames unique nor look up deleted users by name: the file holds all
// the company's personal data anyway and must be protected like the log. For the same reason
// a message that names a person's data key (Idl-Key, keys.go) carries that key in its line's
// "dataKey", unwrapped; an erased person's key is gone, and so are their values.
type exportHeader struct {
	Format     string     `json:"format"`
	Tenant     string     `json:"tenant"`
	Stream     string     `json:"stream"`
	ExportedAt time.Time  `json:"exportedAt"`
	Since      *time.Time `json:"since,omitempty"`
	Until      *time.Time `json:"until,omitempty"`
	ClaimKey   []byte     `json:"claimKey,omitempty"`
}

type exportEnd struct {
	Messages uint64 `json:"messages"`
	LastSeq  uint64 `json:"lastSeq"`
}

// ExportOptions select what Export writes.
type ExportOptions struct {
	// Since and Until, when set, keep only messages whose event happened in [Since, Until]
	// (Idl-Occurred). Index records (claims, guards) have no time of their own and go with the
	// event that follows them in their batch.
	Since, Until time.Time
	// Progress, if set, is called now and then with the messages read and an estimate of the
	// total, and once at the end.
	Progress func(done, total uint64)
}

// ExportStats describe a finished export.
type ExportStats struct {
	// Read is the number of messages read, Messages the number written.
	Read, Messages uint64
	// Bytes is the size of the output.
	Bytes int64
	// LastSeq is the position of the last message written.
	LastSeq uint64
}

// Export writes a company's slice of the log (every message under idl.<tenant>.>, up to the
// last one when Export starts) to w as JSON Lines, streaming it with an ordered consumer.
func (s *Store) Export(ctx context.Context, tenant domain.TenantID, w io.Writer, opt ExportOptions) (ExportStats, error) {
	var st ExportStats
	if !validToken(string(tenant)) {
		return st, domain.Errorf(domain.ErrInvalid, "invalid tenant id %q", tenant)
	}
	bw := &countWriter{w: w}
	out := bufio.NewWriterSize(bw, 256<<10)
	key, err := s.existingSecret(ctx, tenant)
	if err != nil {
		return st, err
	}
	h := exportHeader{Format: ExportFormat, Tenant: string(tenant), Stream: StreamName,
		ExportedAt: time.Now().UTC(), ClaimKey: key}
	if !opt.Since.IsZero() {
		h.Since = &opt.Since
	}
	if !opt.Until.IsZero() {
		h.Until = &opt.Until
	}
	if err := writeJSONLine(out, h); err != nil {
		return st, err
	}
	filter := tenantFilter(tenant)
	last, err := s.lastSeq(ctx, StreamName, filter)
	if err != nil {
		return st, err
	}
	filtered := !opt.Since.IsZero() || !opt.Until.IsZero()
	var line []byte
	var held [][]byte // encoded index records waiting for the event after them
	var heldSeq []uint64
	emit := func(b []byte, seq uint64) error {
		st.Messages++
		st.LastSeq = seq
		_, err := out.Write(b)
		return err
	}
	lastProgress := time.Now()
	if last > 0 {
		err = s.each(ctx, StreamName, filter, 1, last, func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
			st.Read++
			seq := md.Sequence.Stream
			hdr := m.Headers()
			line = appendExportLine(line[:0], seq, m.Subject(), md.Timestamp, hdr, m.Data())
			if k, err := s.exportKey(ctx, hdr); err != nil {
				return false, err
			} else if k != nil {
				line = appendDataKey(line, k)
			}
			if !filtered {
				if err := emit(line, seq); err != nil {
					return false, err
				}
			} else if at, ok := occurred(hdr); !ok {
				held = append(held, bytes.Clone(line))
				heldSeq = append(heldSeq, seq)
			} else {
				if (opt.Since.IsZero() || !at.Before(opt.Since)) && (opt.Until.IsZero() || !at.After(opt.Until)) {
					for i, b := range held {
						if err := emit(b, heldSeq[i]); err != nil {
							return false, err
						}
					}
					if err := emit(line, seq); err != nil {
						return false, err
					}
				}
				held, heldSeq = held[:0], heldSeq[:0]
			}
			if opt.Progress != nil && st.Read%4096 == 0 && time.Since(lastProgress) > 100*time.Millisecond {
				lastProgress = time.Now()
				opt.Progress(st.Read, st.Read+md.NumPending)
			}
			return true, nil
		})
		if err != nil {
			return st, err
		}
	}
	if err := writeJSONLine(out, struct {
		End exportEnd `json:"end"`
	}{exportEnd{Messages: st.Messages, LastSeq: st.LastSeq}}); err != nil {
		return st, err
	}
	if err := out.Flush(); err != nil {
		return st, fmt.Errorf("eventstore: export: %w", err)
	}
	st.Bytes = bw.n
	if opt.Progress != nil {
		opt.Progress(st.Read, st.Read)
	}
	return st, nil
}

// occurred returns a message's Idl-Occurred time, if it has one.
func occurred(h nats.Header) (time.Time, bool) {
	v := h.Get(hdrOccurred)
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("eventstore: export: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("eventstore: export: %w", err)
	}
	return nil
}

// appendExportLine appends one message as a JSON line. It is written by hand: the export must
// keep up with the log's own read rate, and encoding/json's reflection would not.
func appendExportLine(b []byte, seq uint64, subj string, stored time.Time, h nats.Header, data []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, subj)
	b = append(b, `,"time":"`...)
	b = stored.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","headers":{`...)
	var keys [16]string
	names := keys[:0]
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if vs := h[k]; len(vs) == 1 {
			b = appendJSONString(b, vs[0])
		} else {
			b = append(b, '[')
			for j, v := range vs {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, v)
			}
			b = append(b, ']')
		}
	}
	b = append(b, '}')
	switch {
	case len(data) == 0:
	case json.Valid(data):
		b = append(b, `,"data":`...)
		if bytes.ContainsAny(data, "\r\n") {
			var buf bytes.Buffer
			_ = json.Compact(&buf, data) // valid, so it compacts
			b = append(b, buf.Bytes()...)
		} else {
			b = append(b, data...)
		}
	default:
		b = append(b, `,"dataBase64":"`...)
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, '"')
	}
	return append(b, '}', '\n')
}

// appendDataKey adds the "dataKey" field (keys.go) to a line made by appendExportLine.
func appendDataKey(line []byte, k *exportedKey) []byte {
	line = line[:len(line)-2] // "}\n"
	line = append(line, `,"dataKey":{"id":`...)
	line = appendJSONString(line, k.ID)
	line = append(line, `,"key":"`...)
	line = base64.StdEncoding.AppendEncode(line, k.Key)
	return append(line, '"', '}', '}', '\n')
}

// appendJSONString appends s as a JSON string: as is when it needs no escaping (the usual
// case), else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ImportOptions tune Import.
type ImportOptions struct {
	// Progress, if set, is called now and then with the messages published and the total.
	Progress func(done, total uint64)
}

// ImportStats describe a finished import.
type ImportStats struct {
	Tenant   domain.TenantID
	Messages uint64
	// LastSeq is the log position of the last imported message.
	LastSeq uint64
}

// importLine is any line of an export.
type importLine struct {
	Format     string                     `json:"format"`
	Tenant     string                     `json:"tenant"`
	Since      *time.Time                 `json:"since"`
	ClaimKey   []byte                     `json:"claimKey"`
	Seq        uint64                     `json:"seq"`
	Subject    string                     `json:"subject"`
	Headers    map[string]json.RawMessage `json:"headers"`
	Data       json.RawMessage            `json:"data"`
	DataBase64 []byte                     `json:"dataBase64"`
	End        *exportEnd                 `json:"end"`
	DataKey    *exportedKey               `json:"dataKey"`
}

// maxExportLine bounds one line of an export (a message is at most 1 MiB, base64 and headers
// included this stays below 2 MiB).
const maxExportLine = 4 << 20

// Import appends an export (see Export) to this log: the company's messages in their order,
// with their headers (hash chain included) and payloads, and its claim key. It reads r twice:
// first to check the whole file (format, one company, increasing positions, the end line and
// its count), so that a truncated or foreign file changes nothing, then to publish. The
// company must have no message in this log yet, and nothing else may write to it meanwhile.
// Positions are the log's own: they equal the export's when the log was empty and the export
// held its only company. An export made with a since bound lacks the company's beginning and
// is refused.
func (s *Store) Import(ctx context.Context, r io.ReadSeeker, opt ImportOptions) (ImportStats, error) {
	var st ImportStats
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("eventstore: import: %w", err)
	}
	head, total, err := checkExport(r)
	if err != nil {
		return st, err
	}
	st.Tenant = domain.TenantID(head.Tenant)
	if n, err := s.lastSeq(ctx, StreamName, tenantFilter(st.Tenant)); err != nil {
		return st, err
	} else if n != 0 {
		return st, domain.Errorf(domain.ErrUniqueness, "this log already holds messages of company %s (the last at seq %d): import only into a log without it", st.Tenant, n)
	}
	if len(head.ClaimKey) > 0 {
		if err := s.importKey(ctx, st.Tenant, head.ClaimKey); err != nil {
			return st, err
		}
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("eventstore: import: %w", err)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxExportLine)
	var acks []jetstream.PubAckFuture
	wait := func() error {
		seq, err := awaitAcks(ctx, "import", acks)
		st.LastSeq = max(st.LastSeq, seq)
		acks = acks[:0]
		return err
	}
	for sc.Scan() {
		var l importLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return st, fmt.Errorf("eventstore: import: %w", err)
		}
		if l.Subject == "" {
			continue // header or end line
		}
		if l.DataKey != nil {
			if err := s.importDataKey(ctx, l.DataKey); err != nil {
				return st, err
			}
		}
		m, err := l.msg()
		if err != nil {
			return st, err
		}
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return st, fmt.Errorf("eventstore: import: publish seq %d: %w", l.Seq, err)
		}
		acks = append(acks, f)
		st.Messages++
		if len(acks) == 1000 {
			if err := wait(); err != nil {
				return st, err
			}
			if opt.Progress != nil {
				opt.Progress(st.Messages, total)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("eventstore: import: %w", err)
	}
	if err := wait(); err != nil {
		return st, err
	}
	if opt.Progress != nil {
		opt.Progress(st.Messages, total)
	}
	return st, nil
}

// msg rebuilds the stored message. Nats- headers other than the message id are the server's
// own (expectations, batch markers) and are not sent again.
func (l *importLine) msg() (*nats.Msg, error) {
	m := nats.NewMsg(l.Subject)
	for k, raw := range l.Headers {
		if strings.HasPrefix(k, "Nats-") && k != hdrMsgID {
			continue
		}
		var one string
		if err := json.Unmarshal(raw, &one); err == nil {
			m.Header[k] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(raw, &many); err != nil {
			return nil, fmt.Errorf("eventstore: import: seq %d: header %s: %w", l.Seq, k, err)
		}
		m.Header[k] = many
	}
	switch {
	case len(l.Data) > 0:
		m.Data = l.Data
	case len(l.DataBase64) > 0:
		m.Data = l.DataBase64
	}
	return m, nil
}

// checkExport reads a whole export and returns its header and message count, or why it cannot
// be imported.
func checkExport(r io.Reader) (importLine, uint64, error) {
	var head importLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxExportLine)
	var n, lastSeq uint64
	var end *exportEnd
	line := 0
	for sc.Scan() {
		line++
		var l importLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return head, 0, domain.Errorf(domain.ErrInvalid, "export line %d: %v", line, err)
		}
		switch {
		case line == 1:
			if l.Format != ExportFormat || !validToken(l.Tenant) {
				return head, 0, domain.Errorf(domain.ErrInvalid, "not an idledger export (first line must name format %q and a tenant)", ExportFormat)
			}
			if l.Since != nil {
				return head, 0, domain.Errorf(domain.ErrInvalid, "the export was made with a since bound: it lacks the company's earlier history and cannot be imported")
			}
			head = l
		case end != nil:
			return head, 0, domain.Errorf(domain.ErrInvalid, "export line %d follows the end line", line)
		case l.End != nil:
			end = l.End
		default:
			if !strings.HasPrefix(l.Subject, "idl."+head.Tenant+".") {
				return head, 0, domain.Errorf(domain.ErrInvalid, "export line %d: subject %q is not of company %s", line, l.Subject, head.Tenant)
			}
			if l.Seq <= lastSeq {
				return head, 0, domain.Errorf(domain.ErrInvalid, "export line %d: seq %d does not follow %d", line, l.Seq, lastSeq)
			}
			if _, err := l.msg(); err != nil {
				return head, 0, err
			}
			lastSeq = l.Seq
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return head, 0, domain.Errorf(domain.ErrInvalid, "export line %d: %v", line+1, err)
	}
	if line == 0 {
		return head, 0, domain.Errorf(domain.ErrInvalid, "the export is empty")
	}
	if end == nil {
		return head, 0, domain.Errorf(domain.ErrInvalid, "the export is truncated: no end line after %d messages", n)
	}
	if end.Messages != n || end.LastSeq != lastSeq {
		return head, 0, domain.Errorf(domain.ErrInvalid, "the export's end line says %d messages through seq %d, the file holds %d through seq %d",
			end.Messages, end.LastSeq, n, lastSeq)
	}
	return head, n, nil
}

// importKey installs a company's claim key; an existing different key is an error.
func (s *Store) importKey(ctx context.Context, tenant domain.TenantID, key []byte) error {
	name := "claim." + string(tenant)
	_, err := s.keys.Create(ctx, name, key)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("eventstore: import claim key: %w", err)
	}
	entry, err := s.keys.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("eventstore: import claim key: %w", err)
	}
	if !hmac.Equal(entry.Value(), key) {
		return domain.Errorf(domain.ErrUniqueness, "company %s already has another claim key in this data dir", tenant)
	}
	return nil
}
