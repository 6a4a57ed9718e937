package httpapi

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

func TestScanBudget(t *testing.T) {
	t.Parallel()
	b := newScanBudget(2)
	for i := range 2 {
		if !b.acquire("a") {
			t.Fatalf("a's slot %d refused", i+1)
		}
	}
	if b.acquire("a") {
		t.Fatal("a's third scan admitted")
	}
	if !b.acquire("b") {
		t.Fatal("b refused while a is full")
	}
	b.release("a")
	if !b.acquire("a") {
		t.Fatal("a's released slot refused")
	}
	for _, tenant := range []domain.TenantID{"a", "a", "b"} {
		b.release(tenant)
	}
	if len(b.running) != 0 {
		t.Errorf("companies without a running scan kept: %v", b.running)
	}
	none := newScanBudget(-1)
	if none != nil || !none.acquire("a") {
		t.Error("a negative budget must admit everything")
	}
	none.release("a")
}

func TestFairnessDefaults(t *testing.T) {
	t.Parallel()
	got := FairnessConfig{}.withDefaults()
	if want := (FairnessConfig{ScanBudget: max(1, runtime.GOMAXPROCS(0)/2), ReadTimeout: 30 * time.Second}); got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	set := FairnessConfig{ScanBudget: -1, ReadTimeout: -1}
	if got := set.withDefaults(); got != set {
		t.Errorf("explicit settings changed: %+v", got)
	}
}

func TestReadError(t *testing.T) {
	t.Parallel()
	stopped := func(cause error) error {
		return fmt.Errorf("projections: query stopped after 32 candidates: %w", cause)
	}
	if err := readError(stopped(context.DeadlineExceeded)); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("deadline: %v, want ErrUnavailable (503)", err)
	}
	var he *echo.HTTPError
	if err := readError(stopped(context.Canceled)); !errors.As(err, &he) || he.Code != statusClientClosed {
		t.Errorf("client gone: %v, want %d", err, statusClientClosed)
	}
	other := errors.New("disk on fire")
	if err := readError(other); err != other {
		t.Errorf("other error changed: %v", err)
	}
}

// TestScanBudget_pressed: a company refused a slot counts as pressing for pressWindow, then
// no longer (and leaves the map); another company does not.
func TestScanBudget_pressed(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := newScanBudget(1)
	b.now = func() time.Time { return now }
	if !b.acquire("a") || b.pressed("a") {
		t.Fatal("a's first scan refused, or a pressing before any refusal")
	}
	if b.acquire("a") {
		t.Fatal("a's second scan admitted")
	}
	if !b.pressed("a") || b.pressed("b") {
		t.Fatalf("after a's refusal: a pressing %v (want true), b pressing %v (want false)", b.pressed("a"), b.pressed("b"))
	}
	now = now.Add(pressWindow - time.Millisecond)
	if !b.pressed("a") {
		t.Error("a no longer pressing within the window")
	}
	now = now.Add(time.Millisecond)
	if b.pressed("a") {
		t.Error("a still pressing after the window")
	}
	if len(b.refused) != 0 {
		t.Errorf("companies not refused lately kept: %v", b.refused)
	}
	var none *scanBudget
	if none.pressed("a") {
		t.Error("no budget: a pressing")
	}
}
