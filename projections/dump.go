package projections

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Dump writes every row of the read models as JSON sorted by bucket and key, one row per line,
// so that two files holding equal read models give byte-identical dumps and a line diff shows
// what differs:
//
//	{
//	"groups": {
//	  "<tenant>/<group>": {"created":"…","id":"…","members":2,…}
//	},
//	"meta": {
//	  "schema": "3"
//	},
//	"users_by_externalid": {
//	  "<tenant>/ext-1\u0000<user>": ""
//	}
//	}
//
// Only meta/checkpoint is left out: it says how far the file got, not what it holds. Keys are
// JSON strings (a NUL separator shows as \u0000). A value holding a JSON object or array is
// shown as that JSON, compacted but otherwise as stored: the projector encodes
// deterministically (struct fields in order, map keys sorted), so equal read models store equal
// bytes and nothing but whitespace is normalised. Any other value is shown as a JSON string;
// bytes that are not UTF-8 are shown Go-quoted inside it. Dump reads one consistent snapshot;
// it is safe while the projector runs.
func (db *DB) Dump(w io.Writer) error {
	bw := bufio.NewWriter(w)
	err := db.view(func(tx *bolt.Tx) error {
		bw.WriteString("{\n")
		var bucket string
		buckets, inBucket := 0, 0 // buckets written, rows written in the current one
		closeBucket := func() {
			if inBucket > 0 {
				bw.WriteString("\n")
			}
			bw.WriteString("}")
		}
		for r := range rows(tx, true) {
			if buckets == 0 || r.bucket != bucket {
				if buckets > 0 {
					closeBucket()
					bw.WriteString(",\n")
				}
				bucket, buckets, inBucket = r.bucket, buckets+1, 0
				fmt.Fprintf(bw, "%s: {", renderKey([]byte(bucket)))
			}
			if r.key == nil {
				continue // an empty bucket
			}
			if inBucket > 0 {
				bw.WriteString(",")
			}
			fmt.Fprintf(bw, "\n  %s: %s", renderKey(r.key), renderValue(r.value))
			inBucket++
		}
		if buckets > 0 {
			closeBucket()
			bw.WriteString("\n")
		}
		bw.WriteString("}\n")
		return nil
	})
	if err != nil {
		return fmt.Errorf("projections: dump: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("projections: dump: %w", err)
	}
	return nil
}

// A Difference is one row that two read-model files do not hold alike.
type Difference struct {
	// Bucket and Key name the row; Key is rendered as in Dump.
	Bucket, Key string
	// A and B are the row's values in each file, rendered as in Dump; InA and InB say whether
	// the file holds the row at all.
	A, B     string
	InA, InB bool
}

// Diff compares the read models of a and b row by row, as Dump shows them (meta/checkpoint
// excepted), and returns the first max differences (all if max <= 0) in bucket and key order
// and how many rows differ in all.
func Diff(a, b *DB, max int) ([]Difference, int, error) {
	if a == b {
		return nil, 0, nil
	}
	var out []Difference
	total := 0
	note := func(d Difference) {
		total++
		if max <= 0 || len(out) < max {
			out = append(out, d)
		}
	}
	err := a.view(func(ta *bolt.Tx) error {
		return b.view(func(tb *bolt.Tx) error {
			nextA, stopA := iter.Pull(rows(ta, false))
			defer stopA()
			nextB, stopB := iter.Pull(rows(tb, false))
			defer stopB()
			ra, okA := nextA()
			rb, okB := nextB()
			for okA || okB {
				c := 0
				switch {
				case !okA:
					c = 1
				case !okB:
					c = -1
				default:
					if c = strings.Compare(ra.bucket, rb.bucket); c == 0 {
						c = bytes.Compare(ra.key, rb.key)
					}
				}
				switch {
				case c < 0:
					note(Difference{Bucket: ra.bucket, Key: renderKey(ra.key), A: renderValue(ra.value), InA: true})
					ra, okA = nextA()
				case c > 0:
					note(Difference{Bucket: rb.bucket, Key: renderKey(rb.key), B: renderValue(rb.value), InB: true})
					rb, okB = nextB()
				default:
					if !bytes.Equal(ra.value, rb.value) {
						if va, vb := renderValue(ra.value), renderValue(rb.value); va != vb {
							note(Difference{Bucket: ra.bucket, Key: renderKey(ra.key), A: va, B: vb, InA: true, InB: true})
						}
					}
					ra, okA = nextA()
					rb, okB = nextB()
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("projections: diff: %w", err)
	}
	return out, total, nil
}

// A row is one key and value of a bucket; bucket names a nested bucket by its path joined
// with "/". A row with a nil key stands for an empty bucket (only when asked for).
type row struct {
	bucket     string
	key, value []byte
}

// rows yields the rows of tx in bucket and key order, without meta/checkpoint. With empty set,
// a bucket without rows yields one row with a nil key. The slices are valid only inside tx.
func rows(tx *bolt.Tx, empty bool) iter.Seq[row] {
	return func(yield func(row) bool) {
		var walk func(name string, b *bolt.Bucket) bool
		walk = func(name string, b *bolt.Bucket) bool {
			c := b.Cursor()
			seen := false
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if v == nil {
					if nb := b.Bucket(k); nb != nil {
						seen = true
						if !walk(name+"/"+string(k), nb) {
							return false
						}
						continue
					}
				}
				if name == string(bucketMeta) && bytes.Equal(k, keyCheckpoint) {
					continue
				}
				seen = true
				if !yield(row{bucket: name, key: k, value: v}) {
					return false
				}
			}
			if !seen && empty {
				return yield(row{bucket: name})
			}
			return true
		}
		_ = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !walk(string(name), b) {
				return errStopWalk
			}
			return nil
		})
	}
}

var errStopWalk = errors.New("stop")

// renderKey shows a key or bucket name as a JSON string.
func renderKey(k []byte) string {
	return jsonString(k)
}

// renderValue shows a value: a JSON object or array compacted, anything else as a JSON string.
func renderValue(v []byte) string {
	if len(v) > 0 && (v[0] == '{' || v[0] == '[') {
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			return b.String()
		}
	}
	return jsonString(v)
}

// jsonString encodes b as a JSON string without HTML escaping; bytes that are not UTF-8 are
// shown Go-quoted, so no two values share a rendering by accident of encoding.
func jsonString(b []byte) string {
	if !utf8.Valid(b) {
		return encodeJSON(fmt.Sprintf("%q", b))
	}
	return encodeJSON(string(b))
}

func encodeJSON(x any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return fmt.Sprintf("%q", fmt.Sprint(x)) // cannot happen for decoded JSON and strings
	}
	return strings.TrimSuffix(buf.String(), "\n")
}
