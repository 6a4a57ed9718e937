package domain

import (
	"context"
	"strings"
	"time"
)

// What the log keeps for the audit (package domain/audit reads it back): every event names its
// actor and request, and a token client's User-Agent and address (see Request.client);
// sync-cycle markers ([SyncCycleStarted]) number a company's provisioning cycles on a subject
// of their own, idl.<tenant>.cycle.scim.

// KindCycle is the aggregate kind of a company's sync-cycle markers.
const KindCycle Kind = "cycle"

// CycleClient is the aggregate id of the SCIM provisioning client's cycle markers
// (idl.<tenant>.cycle.scim).
const CycleClient = "scim"

// SyncCycleStarted records that a company's provisioning client began a sync cycle: its first
// SCIM request after a quiet gap. Markers live on their own subject (kind [KindCycle]); the
// events of a cycle are those after its marker and before the next one.
type SyncCycleStarted struct {
	// Number counts the company's cycles from 1.
	Number int `json:"number"`
	// Request is the id of the request that opened the cycle.
	Request string `json:"request,omitempty"`
}

// NewSyncCycleStarted returns the marker of a company's sync cycle n, opened at at by the
// request in ctx, stamped like every other event (see [Request]). id is the event's id.
func NewSyncCycleStarted(ctx context.Context, id string, tenant TenantID, at time.Time, n int) Event {
	r := RequestFrom(ctx)
	ua, src := r.client()
	return Event{ID: id, Tenant: tenant, Kind: KindCycle, AggregateID: CycleClient,
		Type: EventSyncCycleStarted, Schema: SchemaOf(EventSyncCycleStarted), At: at,
		Actor: r.Actor, Correlation: r.Correlation, UserAgent: ua, Source: src,
		Data: SyncCycleStarted{Number: n, Request: r.Correlation}}
}

// client returns the User-Agent and source address to stamp on events: only for
// token-authenticated clients (SCIM, the company API, the operator), whose addresses are a
// service's, not a person's; a browser's stay out of the log, which cannot forget them.
func (r Request) client() (string, string) {
	if strings.HasPrefix(r.Actor, ActorSCIMPrefix) || strings.HasPrefix(r.Actor, ActorAPIPrefix) ||
		strings.HasPrefix(r.Actor, ActorAPIKeyPrefix) || r.Actor == "admin" {
		return r.UserAgent, r.Source
	}
	return "", ""
}
