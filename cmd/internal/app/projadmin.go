package app

import (
	"context"
	"time"

	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/projections"
)

// projectionAdmin serves the operator's projection routes (httpapi.ProjectionAdmin) from the
// projector; it is what the Server hands httpapi as its Projector.
type projectionAdmin struct {
	*projections.Projector
}

// ProjectionState implements httpapi.ProjectionAdmin.
func (a projectionAdmin) ProjectionState(ctx context.Context) httpapi.ProjectionState {
	return projectionState(a.Status(ctx), time.Now())
}

// projectionState translates the projector's status into the operator API's shape.
func projectionState(st projections.Status, now time.Time) httpapi.ProjectionState {
	s := httpapi.ProjectionState{Checkpoint: uint64(st.Checkpoint), Head: uint64(st.Head),
		Ready: st.Ready == nil, Running: st.Running}
	if st.HeadErr != nil {
		s.HeadError = st.HeadErr.Error()
	} else if st.Head > st.Checkpoint {
		s.Lag = uint64(st.Head - st.Checkpoint)
	}
	if st.Ready != nil {
		s.Reason = st.Ready.Error()
	}
	if f := st.Failure; f != nil {
		s.Failure = &httpapi.ProjectionFailure{Seq: uint64(f.Seq), Error: f.Err.Error(), At: f.At}
	}
	if r := st.Rebuild; r != nil {
		rs := &httpapi.RebuildState{Running: r.Running, Done: r.Done, Total: r.Total, Started: r.Started}
		if r.Total > 0 {
			rs.Percent = float64(int(float64(r.Done)*1000/float64(r.Total))) / 10
		}
		end := now
		if !r.Finished.IsZero() {
			end = r.Finished
			rs.Finished = &r.Finished
		}
		if d := end.Sub(r.Started).Seconds(); d > 0 {
			rs.EventsPerSecond = float64(int64(float64(r.Done) / d))
		}
		if r.Err != nil {
			rs.Error = r.Err.Error()
		}
		s.Rebuild = rs
	}
	return s
}
