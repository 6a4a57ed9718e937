package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

type tenantKey struct{}

// bearer returns the token of an "Authorization: Bearer" header, or "".
func bearer(c echo.Context) string {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// requireAdmin admits requests carrying the operator token. Both sides are hashed first and the
// hashes compared in constant time, so neither the token's length nor the position of its first
// wrong byte shows in the response time. A company token is never an operator token: 401.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := bearer(c)
		if s.cfg.AdminToken == "" || token == "" ||
			subtle.ConstantTimeCompare([]byte(domain.HashToken(token)), []byte(domain.HashToken(s.cfg.AdminToken))) != 1 {
			return domain.Errorf(domain.ErrUnauthorized, "a valid operator bearer token is required")
		}
		setActor(c, "admin")
		return next(c)
	}
}

// requireSCIMToken resolves the bearer token to its company for the SCIM API; writes made
// through it count as provisioning (actor "scim:…").
func (s *Server) requireSCIMToken(next echo.HandlerFunc) echo.HandlerFunc {
	return s.tokenAuth(domain.ActorSCIMPrefix, next)
}

// requireCompanyToken resolves the same token for the company's own API (/api/v1); writes made
// through it are local (actor "api:…") and follow the provisioning lock.
func (s *Server) requireCompanyToken(next echo.HandlerFunc) echo.HandlerFunc {
	return s.tokenAuth(domain.ActorAPIPrefix, next)
}

// tokenAuth resolves the bearer token to its company. The token is looked up by its SHA-256, so
// the comparison never touches the secret itself: the index lookup's timing depends only on a
// hash the client cannot steer towards a valid one. Each company's requests then pass its rate
// limit (ratelimit.go) before reaching a handler.
func (s *Server) tokenAuth(actorPrefix string, next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := bearer(c)
		if token == "" {
			return domain.Errorf(domain.ErrUnauthorized, "a bearer token is required")
		}
		hash := domain.HashToken(token)
		id, err := s.tenantByTokenHash(c.Request().Context(), hash)
		if errors.Is(err, domain.ErrNotFound) {
			return domain.Errorf(domain.ErrUnauthorized, "the bearer token is not valid")
		}
		if err != nil {
			return err
		}
		// The actor names the token by its hash prefix, never by the secret.
		ctx := c.Request().Context()
		r := domain.RequestFrom(ctx)
		r.Actor = actorPrefix + hash[:16]
		ctx = context.WithValue(domain.WithRequest(ctx, r), tenantKey{}, id)
		c.SetRequest(c.Request().WithContext(ctx))
		if err := s.limit(c, id); err != nil {
			return err
		}
		return next(c)
	}
}

// tenantByTokenHash returns the company whose token hashes to hash, from the token cache while
// the read models have not changed since it was filled (tokencache.go), else from the read
// models.
func (s *Server) tenantByTokenHash(ctx context.Context, hash string) (domain.TenantID, error) {
	cp := s.tokens.checkpoint()
	if id, ok := s.tokens.get(hash, cp); ok {
		return id, nil
	}
	t, err := s.read.FindTenantByTokenHash(ctx, hash)
	if err != nil {
		return "", err
	}
	s.tokens.put(hash, t.ID, cp)
	return t.ID, nil
}

// tenantOf returns the company resolved by requireSCIMToken.
func tenantOf(c echo.Context) domain.TenantID {
	id, _ := c.Request().Context().Value(tenantKey{}).(domain.TenantID)
	return id
}
