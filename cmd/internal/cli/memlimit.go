package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The Go runtime's soft memory limit (debug.SetMemoryLimit, the GOMEMLIMIT setting): with it
// the collector runs more often as the heap nears the limit and returns freed memory to the
// system sooner, instead of letting the heap double between collections (GOGC=100). It bounds
// the resident set of a server whose live heap is well below it — nats-server's block cache
// and a burst of requests are transient — at the price of more collection work near the
// limit (the runtime caps that at about half the CPU, so it slows down rather than fails).
// bbolt's memory map is file-backed page cache and is not counted.

// MemoryLimitHelp documents --memory-limit.
const MemoryLimitHelp = "soft memory limit of the Go runtime, e.g. 448MiB or 2GiB; 0 = none " +
	"(env IDLEDGER_MEMORY_LIMIT; default: GOMEMLIMIT if set, else 90% of the cgroup's memory.max if any, else none)"

// ApplyMemoryLimit sets the runtime's soft memory limit from spec (see MemoryLimitHelp); an
// empty spec applies the default. gomemlimit is the GOMEMLIMIT environment variable, which the
// runtime has applied at start. It logs what it chose.
func ApplyMemoryLimit(spec, gomemlimit string, log *slog.Logger) error {
	if spec == "" {
		if v := gomemlimit; v != "" {
			log.Info("memory limit from GOMEMLIMIT", "limit", v)
			return nil // the runtime applied it at start
		}
		if max := cgroupMemoryMax(); max > 0 {
			limit := max / 10 * 9
			debug.SetMemoryLimit(limit)
			log.Info("memory limit: 90% of the cgroup's memory.max", "limit_mib", limit>>20)
		}
		return nil
	}
	limit, err := parseBytes(spec)
	if err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	if limit == 0 {
		debug.SetMemoryLimit(math.MaxInt64) // no limit
		return nil
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "limit_mib", limit>>20)
	return nil
}

// ParseBytes parses a size with an optional binary unit (B, KiB, MiB, GiB, TiB), as GOMEMLIMIT
// does: "256MiB", "2GiB", "0".
func ParseBytes(s string) (int64, error) { return parseBytes(s) }

// parseBytes is ParseBytes.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	shift := uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, errors.New("want a size such as 448MiB, 2GiB or 0")
	}
	return n << shift, nil
}

// cgroupMemoryMax returns the memory limit of this process's cgroup (v2), or 0 if none.
func cgroupMemoryMax() int64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0 // "max"
	}
	return n
}
