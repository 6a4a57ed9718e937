package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// ProjectionAdmin is what the operator's projection routes need: the read models' state and a
// way to rebuild them online. The routes are served when the Projector given to New implements
// it too (cmd passes an adapter of the projections package's projector); otherwise they answer
// 404.
type ProjectionAdmin interface {
	// ProjectionState reports checkpoint, log head, readiness, the failure that stopped the
	// projector (fail closed) and the progress of the current or last rebuild.
	ProjectionState(ctx context.Context) ProjectionState
	// StartRebuild starts an online rebuild in the background. It returns an error wrapping
	// domain.ErrConflict when one is already running or the projector is not running.
	StartRebuild() error
}

// ProjectionState is the body of GET /admin/v1/projections (and of the 202 answer to
// POST /admin/v1/projections/rebuild).
type ProjectionState struct {
	// Checkpoint is the last log sequence the read models reflect, Head the log's last
	// sequence, Lag the difference (HeadError says why the head is unknown, if it is).
	Checkpoint uint64 `json:"checkpoint"`
	Head       uint64 `json:"head"`
	Lag        uint64 `json:"lag"`
	HeadError  string `json:"headError,omitempty"`
	// Ready is what /healthz reports; Reason says why not.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// Running is true while the projector applies events.
	Running bool `json:"running"`
	// Failure is why the projector stopped: it never skips an event it cannot apply.
	Failure *ProjectionFailure `json:"failure,omitempty"`
	// Rebuild is the current or last rebuild since the server started.
	Rebuild *RebuildState `json:"rebuild,omitempty"`
}

// ProjectionFailure names the event the projector could not apply and why.
type ProjectionFailure struct {
	// Seq is the event's log sequence (0 if the failure was not about one event).
	Seq   uint64    `json:"seq"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// RebuildState is the progress of a rebuild: Done of Total log sequences applied to the new
// file; Finished is set once it has been swapped in or has failed (Error).
type RebuildState struct {
	Running         bool       `json:"running"`
	Done            uint64     `json:"done"`
	Total           uint64     `json:"total"`
	Percent         float64    `json:"percent"`
	EventsPerSecond float64    `json:"eventsPerSecond"`
	Started         time.Time  `json:"started"`
	Finished        *time.Time `json:"finished,omitempty"`
	Error           string     `json:"error,omitempty"`
}

func (s *Server) projectionAdmin() (ProjectionAdmin, error) {
	if a, ok := s.projector.(ProjectionAdmin); ok {
		return a, nil
	}
	return nil, domain.Errorf(domain.ErrNotFound, "projection administration is not available on this server")
}

// handleGetProjections answers GET /admin/v1/projections.
func (s *Server) handleGetProjections(c echo.Context) error {
	a, err := s.projectionAdmin()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.ProjectionState(c.Request().Context()))
}

// handleRebuildProjections answers POST /admin/v1/projections/rebuild: 202 with the state
// once the rebuild has started (follow it with GET /admin/v1/projections), 409 if one runs
// already or the projector has stopped.
func (s *Server) handleRebuildProjections(c echo.Context) error {
	a, err := s.projectionAdmin()
	if err != nil {
		return err
	}
	if err := a.StartRebuild(); err != nil {
		return err
	}
	s.log.Info("projection rebuild started by the operator",
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	c.Response().Header().Set(echo.HeaderLocation, "/admin/v1/projections")
	return c.JSON(http.StatusAccepted, a.ProjectionState(c.Request().Context()))
}
