package app

import (
	"context"
	"fmt"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/projections"
)

// eraser runs erasures (httpapi.Eraser). The steps after user.erased are each idempotent and
// ordered so that a crash at any point leaves them resumable: request records first (found by
// the values that the key still opens), then the key, then the read-model file (once for a
// whole company); the mark written before user.erased goes last, and resumeErasures finishes
// what a mark names.
type eraser struct {
	store *eventstore.Store
	db    *projections.DB
}

// Erase implements httpapi.Eraser. The read-model file is rewritten once for all users.
func (e eraser) Erase(ctx context.Context, tenant domain.TenantID, users []domain.UserID, appendErased func(context.Context, domain.UserID) error) ([]httpapi.Erasure, error) {
	out := make([]httpapi.Erasure, 0, len(users))
	for _, user := range users {
		if err := e.store.MarkErasure(ctx, tenant, user); err != nil {
			return out, err
		}
		if err := appendErased(ctx, user); err != nil {
			if uerr := e.store.UnmarkErasure(ctx, tenant, user); uerr != nil {
				return out, fmt.Errorf("%w (and the mark stays until the next start: %w)", err, uerr)
			}
			return out, err
		}
		res, err := e.finish(ctx, tenant, user)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	if err := e.settle(ctx, tenant, users); err != nil {
		return out, err
	}
	return out, nil
}

// finish does the steps after user.erased but the last (settle).
func (e eraser) finish(ctx context.Context, tenant domain.TenantID, user domain.UserID) (httpapi.Erasure, error) {
	res := httpapi.Erasure{ID: user, Erased: true}
	values, err := e.store.PersonalValues(ctx, tenant, user)
	if err != nil {
		return res, fmt.Errorf("erase %s: %w", user, err)
	}
	if res.RequestRecords, err = e.store.EraseRequestRecords(ctx, tenant, user, values); err != nil {
		return res, fmt.Errorf("erase %s: %w", user, err)
	}
	if res.KeyDestroyed, err = e.store.EraseUserKey(ctx, tenant, user); err != nil {
		return res, fmt.Errorf("erase %s: %w", user, err)
	}
	return res, nil
}

// settle rewrites the read-model file (projections/erase.go), then removes the marks.
func (e eraser) settle(ctx context.Context, tenant domain.TenantID, users []domain.UserID) error {
	if err := e.db.Compact(ctx); err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	for _, user := range users {
		if err := e.store.UnmarkErasure(ctx, tenant, user); err != nil {
			return fmt.Errorf("erase %s: %w", user, err)
		}
	}
	return nil
}

// Users implements httpapi.Eraser: it reads the company's log.
func (e eraser) Users(ctx context.Context, tenant domain.TenantID) (live, deleted []domain.UserID, err error) {
	state := make(map[domain.UserID]bool) // id → deleted
	var order []domain.UserID
	err = e.store.Scan(ctx, tenant, 0, 0, func(ev domain.Event) bool {
		if ev.Kind != domain.KindUser {
			return true
		}
		id := domain.UserID(ev.AggregateID)
		if _, ok := state[id]; !ok {
			order = append(order, id)
		}
		state[id] = ev.Type == domain.EventUserDeleted || ev.Type == domain.EventUserErased || state[id]
		return true
	})
	for _, id := range order {
		if state[id] {
			deleted = append(deleted, id)
		} else {
			live = append(live, id)
		}
	}
	return live, deleted, err
}

// resumeErasures finishes the erasures a crash interrupted: once the read models have caught
// up with the log, each marked person whose user.erased is in the log is finished, and a mark
// without it (the erasure was refused or never appended) is removed.
func (s *Server) resumeErasures(ctx context.Context) error {
	e := eraser{store: s.Store, db: s.DB}
	pending, err := s.Store.PendingErasures(ctx)
	if err != nil || len(pending) == 0 {
		return err
	}
	head, err := s.Store.Head(ctx)
	if err != nil {
		return err
	}
	if err := s.Projector.WaitFor(ctx, head); err != nil {
		return fmt.Errorf("finish interrupted erasures: %w", err)
	}
	for _, p := range pending {
		events, _, err := s.Store.Load(ctx, p.Tenant, domain.KindUser, string(p.User))
		if err != nil {
			return fmt.Errorf("finish interrupted erasures: %w", err)
		}
		erased := false
		for _, ev := range events {
			erased = erased || ev.Type == domain.EventUserErased
		}
		if !erased {
			if err := s.Store.UnmarkErasure(ctx, p.Tenant, p.User); err != nil {
				return err
			}
			continue
		}
		if _, err := e.finish(ctx, p.Tenant, p.User); err != nil {
			return fmt.Errorf("finish interrupted erasures: %w", err)
		}
		if err := e.settle(ctx, p.Tenant, []domain.UserID{p.User}); err != nil {
			return fmt.Errorf("finish interrupted erasures: %w", err)
		}
		s.Logger.Info("finished an interrupted erasure", "tenant", p.Tenant, "user", p.User)
	}
	return nil
}
