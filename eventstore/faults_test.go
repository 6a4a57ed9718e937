package eventstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"Nil", nil, false},
		{"Reconnecting", fmt.Errorf("eventstore: append: %w", nats.ErrReconnectBufExceeded), true},
		{"NoResponders", nats.ErrNoResponders, true},
		{"NoStreamResponse", jetstream.ErrNoStreamResponse, true},
		{"Timeout", fmt.Errorf("x: %w", nats.ErrTimeout), true},
		{"Deadline", context.DeadlineExceeded, true},
		{"Closed", nats.ErrConnectionClosed, true},
		{"NoLeader", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{"WrongLastSeq", &jetstream.APIError{Code: 400, ErrorCode: codeWrongLastSeq}, false},
		{"Canceled", context.Canceled, false},
		{"Conflict", domain.ErrConflict, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := unavailable(tt.err)
			if got := errors.Is(err, domain.ErrUnavailable); got != tt.want {
				t.Errorf("unavailable(%v) is ErrUnavailable = %v, want %v", tt.err, got, tt.want)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("unavailable(%v) lost the cause", tt.err)
			}
		})
	}
}
