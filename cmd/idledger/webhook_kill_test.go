package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/feed"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi/webhook"
)

// webhookChildEnv switches TestWebhookKillChild on in a subprocess:
// "<nats url>|<company>|<endpoint id>|<receiver url>".
const webhookChildEnv = "IDLEDGER_WEBHOOK_KILL_CHILD"

// TestWebhooks_KilledMidDelivery is the durability test of the webhook deliveries: a deliverer
// process is killed with SIGKILL while the receiver holds one of its deliveries unanswered; two
// new processes then deliver to the same endpoint at once. Every event must arrive, the first
// arrivals in log order, and the receiver must never see two deliveries of the endpoint at the
// same time.
func TestWebhooks_KilledMidDelivery(t *testing.T) {
	t.Parallel()
	const events, killAt = 200, 60
	ctx := t.Context()
	url := startNATS(t, filepath.Join(t.TempDir(), "nats"))
	store, err := eventstore.Open(ctx, eventstore.Config{URL: url, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tenant := domain.TenantID("acme")
	var want []string
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	var writes []domain.Write
	for i := range events {
		writes = append(writes, domain.Write{NoExpect: true, Event: domain.Event{
			ID: fmt.Sprintf("e-%d", i), Tenant: tenant, Kind: domain.KindUser, AggregateID: fmt.Sprintf("u%d", i),
			Type: domain.EventUserCreated, Schema: 1, At: at.Add(time.Duration(i) * time.Millisecond), Actor: "scim:kill",
			Data: domain.UserCreated{Attributes: map[string]any{"userName": fmt.Sprintf("user%d@acme.example", i)}}}})
	}
	last, err := store.Append(ctx, domain.Batch{Tenant: tenant, Writes: writes})
	if err != nil {
		t.Fatal(err)
	}
	for seq := last - events + 1; seq <= last; seq++ {
		want = append(want, feed.ID(seq))
	}
	secrets, err := store.OpenBucket(ctx, eventstore.BucketWebhookSecrets, "webhook secrets")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	const endpoint = "wh_kill"
	// The parent only stores the secret, as the API does when it creates the endpoint.
	if err := webhook.New(webhook.Config{Queues: store, Secrets: secrets}).SetSecret(ctx, tenant, endpoint, secret); err != nil {
		t.Fatal(err)
	}

	// The receiver: records first arrivals, checks signatures, counts deliveries in flight,
	// and holds the killAt-th event's delivery until released.
	var (
		mu       sync.Mutex
		arrivals []string
		seen     = map[string]bool{}
		inFlight atomic.Int32
		overlap  atomic.Int32
		badSig   atomic.Int32
	)
	holding, release := make(chan struct{}), make(chan struct{})
	var holdOnce sync.Once
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inFlight.Add(1) > 1 {
			overlap.Add(1)
		}
		defer inFlight.Add(-1)
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("webhook-id")
		if webhook.Verify(secret, id, r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body, time.Now(), time.Minute) != nil {
			badSig.Add(1)
		}
		if id == want[killAt] {
			held := false
			holdOnce.Do(func() { held = true })
			if held {
				close(holding)
				<-release
				return // the sender is dead by now
			}
		}
		mu.Lock()
		if !seen[id] {
			seen[id] = true
			arrivals = append(arrivals, id)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	spec := strings.Join([]string{url, string(tenant), endpoint, recv.URL}, "|")

	first := startWebhookChild(t, spec)
	select {
	case <-holding:
	case <-time.After(60 * time.Second):
		t.Fatal("the first deliverer never reached the event to kill it on")
	}
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	close(release)
	mu.Lock()
	before := len(arrivals)
	mu.Unlock()
	if before != killAt {
		t.Fatalf("%d events acknowledged before the kill, want %d", before, killAt)
	}

	// Two instances resume at once.
	startWebhookChild(t, spec)
	startWebhookChild(t, spec)
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		n := len(arrivals)
		mu.Unlock()
		if n == events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered after the kill", n, events)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(arrivals, want) {
		t.Errorf("first arrivals out of log order:\n%v\nwant\n%v", arrivals, want)
	}
	if n := overlap.Load(); n > 0 {
		t.Errorf("%d deliveries overlapped another one to the same endpoint", n)
	}
	if n := badSig.Load(); n > 0 {
		t.Errorf("%d deliveries with an invalid signature", n)
	}
}

// TestWebhookKillChild runs a webhook deliverer for one endpoint until it is killed (only as
// the subprocess of TestWebhooks_KilledMidDelivery).
func TestWebhookKillChild(t *testing.T) {
	spec := os.Getenv(webhookChildEnv)
	if spec == "" {
		t.Skip("the subprocess of TestWebhooks_KilledMidDelivery")
	}
	parts := strings.Split(spec, "|")
	url, tenant, endpoint, target := parts[0], domain.TenantID(parts[1]), parts[2], parts[3]
	ctx := context.Background()
	store, err := eventstore.Open(ctx, eventstore.Config{URL: url, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	secrets, err := store.OpenBucket(ctx, eventstore.BucketWebhookSecrets, "webhook secrets")
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := store.OpenBucket(ctx, eventstore.BucketWebhookDeliveries, "webhook deliveries")
	if err != nil {
		t.Fatal(err)
	}
	hook := domain.Webhook{ID: endpoint, URL: target, Epoch: 1, Changed: 1}
	d := webhook.New(webhook.Config{Queues: store, Secrets: secrets, Deliveries: deliveries, AllowPrivate: true,
		Endpoints: func(context.Context) ([]domain.Tenant, error) {
			return []domain.Tenant{{ID: tenant, Webhooks: []domain.Webhook{hook}}}, nil
		},
		Disable: func(context.Context, domain.TenantID, string, string) error { return nil },
		Timeout: 2 * time.Second, AckWait: 3 * time.Second, FirstRetry: 50 * time.Millisecond,
	})
	_ = d.Run(ctx) // until SIGKILL
}

func startWebhookChild(t *testing.T, spec string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWebhookKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), webhookChildEnv+"="+spec)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}
