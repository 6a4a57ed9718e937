package main

import (
	"strconv"
	"time"

	"github.com/idledger/idledger/httpapi"
)

// env is the part of idledger's configuration that the environment gives: every variable any
// command reads, read in one place (readEnv). Flags default to these values and override them.
type env struct {
	NATSURL         string  // IDLEDGER_NATS_URL
	BaseURL         string  // IDLEDGER_BASE_URL
	AdminToken      string  // IDLEDGER_ADMIN_TOKEN
	MasterKeyFile   string  // IDLEDGER_MASTER_KEY_FILE
	Replicas        int     // IDLEDGER_NATS_REPLICAS (0: unset)
	NoSync          bool    // IDLEDGER_NO_FSYNC=1
	SyncProjections bool    // IDLEDGER_SYNC_PROJECTIONS=1
	MemoryLimit     string  // IDLEDGER_MEMORY_LIMIT
	GoMemLimit      string  // GOMEMLIMIT, which the Go runtime applied at start
	RateLimit       float64 // IDLEDGER_RATE_LIMIT (default 200)
	// WebhookAllowPrivate is IDLEDGER_WEBHOOK_ALLOW_PRIVATE=1; WebhookRetryFor
	// IDLEDGER_WEBHOOK_RETRY_FOR (zero: 72h).
	WebhookAllowPrivate bool
	WebhookRetryFor     time.Duration
	// CycleGap is IDLEDGER_CYCLE_GAP, RequestRetention IDLEDGER_REQUEST_RETENTION; zero (unset)
	// leaves the component's default.
	CycleGap         time.Duration
	RequestRetention time.Duration
	// MaxStorage is IDLEDGER_MAX_STORAGE, RequestRecordsMaxBytes
	// IDLEDGER_REQUEST_RECORDS_MAX_BYTES: sizes such as "200MiB", "" when unset (the defaults
	// scale with the data volume). serve parses them with its flags.
	MaxStorage             string
	RequestRecordsMaxBytes string
	// Fairness is IDLEDGER_SCAN_BUDGET (concurrent scans per company) and
	// IDLEDGER_READ_TIMEOUT (a list read's deadline); zero (unset) leaves httpapi's defaults.
	Fairness httpapi.FairnessConfig
}

// readEnv reads the environment through getenv (os.Getenv).
func readEnv(getenv func(string) string) env {
	e := env{
		NATSURL:         getenv("IDLEDGER_NATS_URL"),
		BaseURL:         getenv("IDLEDGER_BASE_URL"),
		AdminToken:      getenv("IDLEDGER_ADMIN_TOKEN"),
		MasterKeyFile:   getenv("IDLEDGER_MASTER_KEY_FILE"),
		NoSync:          getenv("IDLEDGER_NO_FSYNC") == "1",
		SyncProjections: getenv("IDLEDGER_SYNC_PROJECTIONS") == "1",
		MemoryLimit:     getenv("IDLEDGER_MEMORY_LIMIT"),
		GoMemLimit:      getenv("GOMEMLIMIT"),
		RateLimit:       200,

		MaxStorage:             getenv("IDLEDGER_MAX_STORAGE"),
		RequestRecordsMaxBytes: getenv("IDLEDGER_REQUEST_RECORDS_MAX_BYTES"),
	}
	if v, err := strconv.Atoi(getenv("IDLEDGER_NATS_REPLICAS")); err == nil {
		e.Replicas = v
	}
	if v, err := strconv.ParseFloat(getenv("IDLEDGER_RATE_LIMIT"), 64); err == nil {
		e.RateLimit = v
	}
	e.CycleGap, _ = time.ParseDuration(getenv("IDLEDGER_CYCLE_GAP"))
	e.RequestRetention, _ = time.ParseDuration(getenv("IDLEDGER_REQUEST_RETENTION"))
	e.Fairness.ScanBudget, _ = strconv.Atoi(getenv("IDLEDGER_SCAN_BUDGET"))
	e.Fairness.ReadTimeout, _ = time.ParseDuration(getenv("IDLEDGER_READ_TIMEOUT"))
	e.WebhookAllowPrivate = getenv("IDLEDGER_WEBHOOK_ALLOW_PRIVATE") == "1"
	e.WebhookRetryFor, _ = time.ParseDuration(getenv("IDLEDGER_WEBHOOK_RETRY_FOR"))
	return e
}
