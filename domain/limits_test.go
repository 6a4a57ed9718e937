package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestEncodeData_Limit(t *testing.T) {
	t.Parallel()
	// 200 KiB of "<" encode to 1.2 MB: more than one log message holds.
	_, err := EncodeData(UserCreated{Attributes: map[string]any{"x": strings.Repeat("<", 200<<10)}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(ErrorDetail(err), "too large to record") {
		t.Errorf("err = %v, want ErrInvalid: too large to record", err)
	}
	if _, err := EncodeData(UserCreated{Attributes: map[string]any{"x": strings.Repeat("a", 800<<10)}}); err != nil {
		t.Errorf("800 KiB payload: %v", err)
	}
}
