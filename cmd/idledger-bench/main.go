// Command idledger-bench measures idledger on this machine (issue 7; run by `make bench` and
// `make bench-short`). On a fresh temp data dir, in one process, it measures
//
//  1. this machine's limits with the same payloads and concurrency (bench_limits.go): raw
//     JetStream appends asserting the subject sequence (fsync each, at concurrency 1 and 32;
//     atomic batches of 2 and 100), a raw ordered-consumer read of this run's log, raw direct
//     gets, raw bbolt writes (fsync per transaction or not) and gets, the disk's fsync rate;
//  2. Entra's initial cycle through real HTTP against a real server (bench_server.go: the
//     server that cmd/internal/app wires, as `idledger serve` runs it, durable: fsync before every acknowledgement; bench_scim.go: the client), and the same
//     requests against an in-memory SCIM server, the baseline (bench_memscim.go); CPU and heap
//     profiles of the initial cycle are written next to the JSON results;
//  3. an incremental cycle;
//  4. asOf queries, the audit export and the projection rebuild from sequence 1
//     (bench_replay.go);
//  5. SAML: the login lookup alone and the full ACS (bench_saml.go);
//  6. fairness: a second company's trivial list request alone and while the first floods
//     the server with the costliest filters the limits allow (bench_fairness.go);
//
// and prints one table (bench_report.go): throughput, p50/p95/p99 latency, peak resident set
// and the ratio to the matching limit of (1), with the targets. Results go to a JSON
// file, and the table, the machine and the command to docs/benchmarks.md (the profile's
// section only; the notes around it are kept).
//
// The load generator runs in the same process as the server (as the cmd/idledger tests do), so both
// share the CPUs and the resident-set figures include the client; the in-memory baseline
// runs with the same client under the same conditions. Execution order: baseline, server
// sections, then limits (they publish payloads sampled from the server's log); the table
// is ordered by section.
//
// Usage:
//
//	idledger-bench [-short] [--out FILE] [--doc FILE] [flags]
package main

import (
	"github.com/idledger/idledger/cmd/internal/cli"
)

func main() { cli.Main("idledger-bench", run) }
