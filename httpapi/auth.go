package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

type tenantKey struct{}

// credentialKind names a kind of credential. Each kind opens its own routes and no others
// (README, "Credentials"): the operator token /admin/v1, a company's SCIM token /scim/v2, a
// company API key /api/v1 by scope, a console session (console_auth.go) /console/{tenant}.
type credentialKind uint8

// Kinds of credentials.
const (
	credNone     credentialKind = iota // no credential, or one that is not valid
	credOperator                       // IDLEDGER_ADMIN_TOKEN
	credSCIM                           // a company's SCIM token (given to Entra)
	credAPIKey                         // a company API key (given to the host application)
	credConsole                        // a console session cookie (a company admin's browser)
)

// String returns the kind's name, used as a metrics label.
func (k credentialKind) String() string {
	switch k {
	case credOperator:
		return "operator"
	case credSCIM:
		return "scim_token"
	case credAPIKey:
		return "api_key"
	case credConsole:
		return lockConsole
	default:
		return "none"
	}
}

// kindOfPrefix tells which kind a presented token claims to be by its prefix, for the
// failed-authentication metric only: it never grants anything.
func kindOfPrefix(token string) string {
	switch {
	case token == "":
		return "none"
	case strings.HasPrefix(token, domain.SCIMTokenPrefix):
		return credSCIM.String()
	case strings.HasPrefix(token, domain.APIKeyPrefix):
		return credAPIKey.String()
	case strings.HasPrefix(token, domain.OperatorTokenPrefix):
		return credOperator.String()
	}
	return "unknown"
}

// A credential is what a company bearer token resolved to.
type credential struct {
	kind   credentialKind
	tenant domain.TenantID
	key    domain.APIKey // for credAPIKey
}

// Reasons of failed authentications (idledger_auth_failures_total).
const (
	authMissing   = "missing"            // no bearer token
	authInvalid   = "invalid"            // not a live credential (unknown, rotated or revoked)
	authWrongKind = "wrong_kind"         // a live credential of a kind this route does not take
	authScope     = "insufficient_scope" // an API key without the route's scope
	authCSRF      = "csrf"               // a console change without the session's CSRF token or from another origin
	authLockedOut = "locked_out"         // a source locked out after too many refused console credentials
	authNotAdmin  = "not_admin"          // a console sign-in of a user who is not an admin of the company
)

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
// wrong byte shows in the response time. A company credential is never an operator token: 401.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := bearer(c)
		if s.cfg.AdminToken == "" || token == "" ||
			subtle.ConstantTimeCompare([]byte(domain.HashToken(token)), []byte(domain.HashToken(s.cfg.AdminToken))) != 1 {
			kind, reason := kindOfPrefix(token), authInvalid
			switch {
			case token == "":
				reason = authMissing
			default:
				// A live company credential is refused for its kind, not as an unknown token:
				// the metric then tells a misconfigured client from a guessing one.
				if cred, err := s.credentialByHash(c.Request().Context(), domain.HashToken(token)); err == nil {
					kind, reason = cred.kind.String(), authWrongKind
				}
			}
			s.metrics.authFailed(kind, reason)
			return domain.Errorf(domain.ErrUnauthorized, "a valid operator bearer token is required")
		}
		setActor(c, "admin")
		return next(c)
	}
}

// requireSCIMToken admits requests carrying a company's SCIM token, for the SCIM API; writes
// made through it count as provisioning (actor "scim:<token hash prefix>"). Any other
// credential is refused with 401, an API key included: it is not a SCIM credential.
func (s *Server) requireSCIMToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := bearer(c)
		cred, err := s.companyCredential(c, token)
		if err != nil {
			return err
		}
		if cred.kind != credSCIM {
			s.metrics.authFailed(cred.kind.String(), authWrongKind)
			return domain.Errorf(domain.ErrUnauthorized, "the bearer token is not a SCIM token")
		}
		s.touchSCIMToken(c.Request().Context(), cred.tenant, domain.HashToken(token)) // console_setup.go
		// The actor names the token by its hash prefix, never by the secret.
		return s.admit(c, cred, domain.ActorSCIMPrefix+domain.HashToken(token)[:16], next)
	}
}

// requireScope admits requests carrying a company API key that holds scope, for the company
// API (/api/v1); writes made through it are local and name the key (actor "key:<key id>").
// A SCIM token is a valid credential that this API does not take: 403, so that a client
// holding one learns it has the wrong kind. A key without the scope gets 403
// insufficient_scope with the RFC 6750 §3.1 challenge naming the scope.
func (s *Server) requireScope(scope domain.Scope) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			cred, err := s.companyCredential(c, bearer(c))
			if err != nil {
				return err
			}
			switch {
			case cred.kind == credSCIM:
				s.metrics.authFailed(cred.kind.String(), authWrongKind)
				return domain.Errorf(domain.ErrForbidden,
					"the SCIM token opens /scim/v2 only; the company API takes an API key (POST /admin/v1/tenants/{id}/api-keys)")
			case cred.kind != credAPIKey:
				s.metrics.authFailed(cred.kind.String(), authWrongKind)
				return domain.Errorf(domain.ErrUnauthorized, "the bearer token is not an API key")
			case !cred.key.Allows(scope):
				s.metrics.authFailed(cred.kind.String(), authScope)
				c.Response().Header().Set(echo.HeaderWWWAuthenticate,
					`Bearer error="insufficient_scope", scope="`+string(scope)+`"`)
				return c.JSON(http.StatusForbidden, map[string]string{
					"code": "insufficient_scope", "scope": string(scope),
					"error": "the API key lacks the scope " + string(scope),
				})
			}
			s.touchKey(c.Request().Context(), cred)
			return s.admit(c, cred, domain.ActorAPIKeyPrefix+cred.key.ID, next)
		}
	}
}

// admit records the company and the actor in the request's context and passes the company's
// rate limit (ratelimit.go) before the handler.
func (s *Server) admit(c echo.Context, cred credential, actor string, next echo.HandlerFunc) error {
	ctx := c.Request().Context()
	r := domain.RequestFrom(ctx)
	r.Actor = actor
	ctx = context.WithValue(domain.WithRequest(ctx, r), tenantKey{}, cred.tenant)
	c.SetRequest(c.Request().WithContext(ctx))
	if err := s.limit(c, cred.tenant); err != nil {
		return err
	}
	return next(c)
}

// companyCredential resolves a company bearer token (a SCIM token or an API key) to its
// credential. A missing or unknown token is a 401 error, counted by reason. The token is looked
// up by its SHA-256, so the comparison never touches the secret itself: the index lookup's
// timing depends only on a hash the client cannot steer towards a valid one.
func (s *Server) companyCredential(c echo.Context, token string) (credential, error) {
	if token == "" {
		s.metrics.authFailed("none", authMissing)
		return credential{}, domain.Errorf(domain.ErrUnauthorized, "a bearer token is required")
	}
	cred, err := s.credentialByHash(c.Request().Context(), domain.HashToken(token))
	if errors.Is(err, domain.ErrNotFound) {
		s.metrics.authFailed(kindOfPrefix(token), authInvalid)
		return credential{}, domain.Errorf(domain.ErrUnauthorized, "the bearer token is not valid")
	}
	return cred, err
}

// credentialByHash returns the company credential whose secret hashes to hash, from the token
// cache while the read models have not changed since it was filled (tokencache.go), else from
// the read models. A rotated SCIM token or a revoked API key is not found from the moment the
// read model has applied the change.
func (s *Server) credentialByHash(ctx context.Context, hash string) (credential, error) {
	cp := s.tokens.checkpoint()
	if cred, ok := s.tokens.get(hash, cp); ok {
		return cred, nil
	}
	t, err := s.read.FindTenantByTokenHash(ctx, hash)
	if err != nil {
		return credential{}, err
	}
	cred := credential{tenant: t.ID}
	if subtle.ConstantTimeCompare([]byte(t.SCIMTokenHash), []byte(hash)) == 1 {
		cred.kind = credSCIM
	} else if k, ok := t.APIKeyByHash(hash); ok {
		cred.kind, cred.key = credAPIKey, k
	} else {
		return credential{}, domain.Errorf(domain.ErrNotFound, "no credential")
	}
	s.tokens.put(hash, cred, cp)
	return cred, nil
}

// tenantOf returns the company resolved by requireSCIMToken or requireScope.
func tenantOf(c echo.Context) domain.TenantID {
	id, _ := c.Request().Context().Value(tenantKey{}).(domain.TenantID)
	return id
}
