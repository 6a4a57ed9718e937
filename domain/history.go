package domain

import "strings"

// SyncCycleStarted records that a company's provisioning client began a sync cycle: its first
// SCIM request after a quiet gap. Markers live on their own subject (kind [KindCycle]); the
// events of a cycle are those after its marker and before the next one.
type SyncCycleStarted struct {
	// Number counts the company's cycles from 1.
	Number int `json:"number"`
	// Request is the id of the request that opened the cycle.
	Request string `json:"request,omitempty"`
}

// client returns the User-Agent and source address to stamp on events: only for
// token-authenticated clients (SCIM, the company API, the operator), whose addresses are a
// service's, not a person's; a browser's stay out of the log, which cannot forget them.
func (r Request) client() (string, string) {
	if strings.HasPrefix(r.Actor, ActorSCIMPrefix) || strings.HasPrefix(r.Actor, ActorAPIPrefix) || r.Actor == "admin" {
		return r.UserAgent, r.Source
	}
	return "", ""
}
