package domain

import "context"

// SCIMTokenRotated records that a company's SCIM token was replaced. Only the new token's hash
// is kept; the old token stops authenticating once the read model applies the event.
type SCIMTokenRotated struct {
	SCIMTokenHash string `json:"scimTokenHash"`
}

// RotateSCIMToken gives a company a new SCIM bearer token (the operator's answer to a leaked or
// departing secret) and returns the tenant with it. The token is returned only here; the log
// keeps its SHA-256. The old token is refused from the moment the read model has applied the
// event: a caller that answers only once its read model has caught up never lets it work again. It returns an
// error wrapping ErrNotFound for an unknown tenant.
func (s *Service) RotateSCIMToken(ctx context.Context, tenant TenantID) (Tenant, string, error) {
	token, err := NewToken(s.random(), SCIMTokenPrefix)
	if err != nil {
		return Tenant{}, "", err
	}
	t, err := s.changeTenant(ctx, tenant, EventTenantSCIMTokenRotated, func(Tenant) (any, error) {
		return SCIMTokenRotated{SCIMTokenHash: HashToken(token)}, nil
	})
	if err != nil {
		return Tenant{}, "", err
	}
	return t, token, nil
}
