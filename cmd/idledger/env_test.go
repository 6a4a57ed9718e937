package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/idledger/idledger/cmd/internal/cli"
	"github.com/idledger/idledger/httpapi"
)

// TestReadEnv: every variable lands in its field; unset or unparsable ones keep the defaults.
func TestReadEnv(t *testing.T) {
	vars := map[string]string{
		"IDLEDGER_NATS_URL": "nats://n1:4222", "IDLEDGER_BASE_URL": "https://id.example", "IDLEDGER_ADMIN_TOKEN": "tok",
		"IDLEDGER_NATS_REPLICAS": "5", "IDLEDGER_NO_FSYNC": "1", "IDLEDGER_SYNC_PROJECTIONS": "1",
		"IDLEDGER_MEMORY_LIMIT": "2GiB", "GOMEMLIMIT": "1GiB", "IDLEDGER_RATE_LIMIT": "50",
		"IDLEDGER_CYCLE_GAP": "5m", "IDLEDGER_REQUEST_RETENTION": "48h",
		"IDLEDGER_MAX_STORAGE": "200MiB", "IDLEDGER_REQUEST_RECORDS_MAX_BYTES": "16MiB",
		"IDLEDGER_SCAN_BUDGET": "3", "IDLEDGER_READ_TIMEOUT": "5s",
	}
	got := readEnv(func(k string) string { return vars[k] })
	want := env{NATSURL: "nats://n1:4222", BaseURL: "https://id.example", AdminToken: "tok", Replicas: 5, NoSync: true,
		SyncProjections: true, MemoryLimit: "2GiB", GoMemLimit: "1GiB", RateLimit: 50,
		CycleGap: 5 * time.Minute, RequestRetention: 48 * time.Hour,
		MaxStorage: "200MiB", RequestRecordsMaxBytes: "16MiB",
		Fairness: httpapi.FairnessConfig{ScanBudget: 3, ReadTimeout: 5 * time.Second}}
	if got != want {
		t.Errorf("readEnv = %+v\nwant      %+v", got, want)
	}

	got = readEnv(func(k string) string {
		return map[string]string{"IDLEDGER_NO_FSYNC": "yes", "IDLEDGER_RATE_LIMIT": "many", "IDLEDGER_NATS_REPLICAS": "three",
			"IDLEDGER_SCAN_BUDGET": "two", "IDLEDGER_READ_TIMEOUT": "long"}[k]
	})
	if got != (env{RateLimit: 200}) {
		t.Errorf("readEnv of unset or unparsable variables = %+v, want the defaults", got)
	}
}

// TestServeConfig_storageSizes: --max-storage and --request-records-max-bytes (or their env)
// reach app.Config as bytes; a malformed size is a usage error.
func TestServeConfig_storageSizes(t *testing.T) {
	var stderr strings.Builder
	cfg, _, err := serveConfig(env{MaxStorage: "200MiB"}, []string{"--request-records-max-bytes", "16MiB"}, &stderr)
	if err != nil || cfg.MaxStorage != 200<<20 || cfg.RequestRecordsMaxBytes != 16<<20 {
		t.Errorf("serveConfig = %d, %d, %v, want 200 MiB and 16 MiB", cfg.MaxStorage, cfg.RequestRecordsMaxBytes, err)
	}
	cfg, _, err = serveConfig(env{}, nil, &stderr)
	if err != nil || cfg.MaxStorage != 0 || cfg.RequestRecordsMaxBytes != 0 {
		t.Errorf("serveConfig without sizes = %d, %d, %v, want zeros (scaled with the volume)", cfg.MaxStorage, cfg.RequestRecordsMaxBytes, err)
	}
	if _, _, err := serveConfig(env{}, []string{"--max-storage", "lots"}, &stderr); !errors.Is(err, cli.ErrUsage) ||
		!strings.Contains(stderr.String(), "--max-storage") {
		t.Errorf("--max-storage lots = %v (stderr %q), want a usage error naming the flag", err, stderr.String())
	}
}

// TestServeConfig_Fairness: the environment gives the fairness settings, flags override them.
func TestServeConfig_Fairness(t *testing.T) {
	e := readEnv(func(k string) string {
		return map[string]string{"IDLEDGER_SCAN_BUDGET": "3", "IDLEDGER_READ_TIMEOUT": "5s"}[k]
	})
	cfg, _, err := serveConfig(e, nil, io.Discard)
	if err != nil || cfg.Fairness != (httpapi.FairnessConfig{ScanBudget: 3, ReadTimeout: 5 * time.Second}) {
		t.Errorf("from the environment: %+v, %v", cfg.Fairness, err)
	}
	cfg, _, err = serveConfig(e, []string{"--scan-budget", "-1", "--read-timeout", "2m"}, io.Discard)
	if err != nil || cfg.Fairness != (httpapi.FairnessConfig{ScanBudget: -1, ReadTimeout: 2 * time.Minute}) {
		t.Errorf("from flags: %+v, %v", cfg.Fairness, err)
	}
}
