package saml

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	csaml "github.com/crewjam/saml"

	"github.com/idledger/idledger/domain"
)

// maxResponseSize bounds a decoded SAMLResponse. httpapi caps the posted body too.
const maxResponseSize = 512 << 10

// ACS verifies a Response posted to the company's Assertion Consumer Service (HTTP-POST
// binding) and returns the user it signs in.
//
// samlResponse is the posted SAMLResponse field, relayState the posted RelayState, binding
// the browser's binding value (the cookie set by /login). The response may answer only the
// outstanding request of this company named by relayState and bound to this browser, which is
// taken (used once) whatever the outcome; an unsolicited response (no InResponseTo) is
// accepted only if the company allows IdP-initiated login. The identity is read only from the
// assertion crewjam verified: its NameID is looked up as a userName, ignoring case, in this
// company, and the user must exist and be active. SAML never creates users.
//
// A refusal is a *domain.SignInError (matching domain.ErrForbidden) whose Reason is the code
// for the login history; any other error is a failure of a store.
func (s *Service) ACS(ctx context.Context, tenant domain.TenantID, samlResponse, relayState, binding string) (domain.SignInResult, error) {
	refuse := func(reason string, err error) (domain.SignInResult, error) {
		return domain.SignInResult{}, &domain.SignInError{Reason: reason, Err: err}
	}
	t, err := s.tenant(ctx, tenant)
	if errors.Is(err, domain.ErrNotFound) {
		return refuse(domain.SignInSSONotConfigured, err)
	}
	if err != nil {
		return domain.SignInResult{}, err
	}
	idp, err := s.idpMetadata(ctx, t)
	if errors.Is(err, domain.ErrNotFound) {
		return refuse(domain.SignInSSONotConfigured, err)
	}
	if err != nil {
		return domain.SignInResult{}, err
	}
	if samlResponse == "" {
		return refuse(domain.SignInMalformed, errors.New("no SAMLResponse in the form"))
	}
	if base64.StdEncoding.DecodedLen(len(samlResponse)) > maxResponseSize {
		return refuse(domain.SignInMalformed, fmt.Errorf("SAMLResponse is larger than %d bytes", maxResponseSize))
	}
	xmlResponse, err := base64.StdEncoding.DecodeString(strings.TrimSpace(samlResponse))
	if err != nil {
		return refuse(domain.SignInMalformed, fmt.Errorf("SAMLResponse is not base64: %w", err))
	}

	// The request ids this browser may be answering: at most its own outstanding request.
	var possible []string
	returnTo := "/"
	pending, ok, err := s.takeRequest(ctx, t.ID, relayState, binding)
	if err != nil {
		return domain.SignInResult{}, err
	}
	if ok {
		possible = []string{pending.ID}
		returnTo = pending.ReturnTo
	}

	sp := s.provider(t.ID, t.SSO, idp, replayCache{ctx: ctx, store: s.assertions, now: s.now})
	assertion, err := sp.ParseXMLResponse(xmlResponse, possible, sp.AcsURL)
	if err != nil {
		return refuse(reasonOf(err), privateErr(err))
	}
	flow := domain.FlowSPInitiated
	if !answers(assertion, possible) {
		flow = domain.FlowIDPInitiated
		// An unsolicited response's RelayState is where Entra's admin said to land; honour it
		// only as a local path, never as a URL.
		returnTo = "/"
		if relayState != "" && LocalPath(relayState) {
			returnTo = relayState
		}
	}
	var nameID string
	if assertion.Subject != nil && assertion.Subject.NameID != nil {
		nameID = strings.TrimSpace(assertion.Subject.NameID.Value)
	}
	if nameID == "" {
		return domain.SignInResult{}, &domain.SignInError{Reason: domain.SignInUnknownUser, Flow: flow,
			Err: errors.New("the assertion has no NameID")}
	}
	u, err := s.read.LoginByUserName(ctx, t.ID, nameID)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.SignInResult{}, &domain.SignInError{Reason: domain.SignInUnknownUser, NameID: nameID, Flow: flow,
			Err: errors.New("no provisioned user has this NameID as userName (never provisioned, or deleted)")}
	}
	if err != nil {
		return domain.SignInResult{}, err
	}
	if !u.Active {
		return domain.SignInResult{}, &domain.SignInError{Reason: domain.SignInInactiveUser, User: u.User, NameID: nameID, Flow: flow,
			Err: errors.New("the user is deactivated (active=false)")}
	}
	return domain.SignInResult{User: u.User, ReturnTo: returnTo, Flow: flow}, nil
}

// answers reports whether the verified assertion answers one of the request ids.
func answers(a *csaml.Assertion, ids []string) bool {
	if len(ids) == 0 || a.Subject == nil {
		return false
	}
	for _, c := range a.Subject.SubjectConfirmations {
		if c.SubjectConfirmationData != nil && c.SubjectConfirmationData.InResponseTo != "" {
			for _, id := range ids {
				if c.SubjectConfirmationData.InResponseTo == id {
					return true
				}
			}
		}
	}
	return false
}

// privateErr unwraps crewjam's InvalidResponseError, whose Error() hides the cause.
func privateErr(err error) error {
	var ire *csaml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		return ire.PrivateErr
	}
	return err
}

// reasonOf maps crewjam's refusal to a login-history reason. The order matters: an error may
// match several kinds (a SHA-1 signature is both unsupported and invalid).
func reasonOf(err error) string {
	var bad csaml.ErrBadStatus
	switch {
	case errors.Is(err, csaml.ErrAssertionReplayed):
		return domain.SignInReplayed
	case errors.As(err, &bad):
		return domain.SignInIDPError
	case errors.Is(err, csaml.ErrCertificateNotValidNow):
		return domain.SignInCertificateExpired
	case errors.Is(err, csaml.ErrInvalidSignature) && errors.Is(err, csaml.ErrUnsupported):
		return domain.SignInWeakSignature
	case errors.Is(err, csaml.ErrInvalidSignature), errors.Is(err, csaml.ErrUntrustedCertificate):
		return domain.SignInInvalidSignature
	case errors.Is(err, csaml.ErrRequestIDMismatch):
		return domain.SignInRequestMismatch
	case errors.Is(err, csaml.ErrAudienceMismatch):
		return domain.SignInWrongAudience
	case errors.Is(err, csaml.ErrDestinationMismatch):
		return domain.SignInWrongDestination
	case errors.Is(err, csaml.ErrIssuerMismatch):
		return domain.SignInWrongIssuer
	case errors.Is(err, csaml.ErrExpired), errors.Is(err, csaml.ErrNotYetValid):
		return domain.SignInExpired
	case errors.Is(err, csaml.ErrMalformedMessage):
		return domain.SignInMalformed
	}
	return domain.SignInInvalidResponse
}

// replayCache is crewjam's AssertionReplayCache over a shared Records store: each assertion id
// is consumed once, atomically across instances, until the moment crewjam would refuse the
// assertion anyway. Keys are hashes, since ids are chosen by the IdP.
type replayCache struct {
	ctx   context.Context
	store Records
	now   func() time.Time
}

// Consume implements csaml.AssertionReplayCache.
func (r replayCache) Consume(id string, expiresAt time.Time) error {
	ttl := expiresAt.Sub(r.now()) + time.Minute // a margin for clocks between instances
	err := r.store.Create(r.ctx, "a."+hashHex(id), []byte(expiresAt.UTC().Format(time.RFC3339)), ttl)
	if errors.Is(err, domain.ErrUniqueness) {
		return csaml.ErrAssertionReplayed
	}
	return err
}
