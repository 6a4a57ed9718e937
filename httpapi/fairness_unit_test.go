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
