package saml

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	csaml "github.com/crewjam/saml"

	"github.com/idledger/idledger/domain"
)

// pendingRequest is an outstanding AuthnRequest, stored under its id until the response comes
// back (or it expires). The browser that started it holds the binding value in a cookie; only
// its hash is stored.
type pendingRequest struct {
	ID          string          `json:"id"`
	Tenant      domain.TenantID `json:"tenant"`
	BindingHash string          `json:"bindingHash"`
	ReturnTo    string          `json:"returnTo"`
	Expires     time.Time       `json:"expires"`
}

// requestID matches the AuthnRequest ids this package makes: "id-" and 40 hex digits (an xs:ID
// must not start with a digit, and Entra copies it into InResponseTo).
var requestID = regexp.MustCompile(`^id-[0-9a-f]{40}$`)

// StartLogin makes an AuthnRequest for the company's IdP (HTTP-Redirect binding, NameIDPolicy
// emailAddress, ACS with HTTP-POST), remembers it bound to the browser's binding value and
// returnTo (a local path, see LocalPath), and returns the IdP URL to redirect the browser to.
// The request id travels as RelayState. It returns an error wrapping domain.ErrNotFound if the
// company does not exist or has no IdP metadata, and domain.ErrInvalid for a bad returnTo.
func (s *Service) StartLogin(ctx context.Context, tenant domain.TenantID, binding, returnTo string) (string, error) {
	if binding == "" {
		return "", errors.New("saml: no browser binding")
	}
	if returnTo == "" {
		returnTo = "/"
	}
	if !LocalPath(returnTo) {
		return "", domain.Errorf(domain.ErrInvalid, "return_to must be a path on this site, such as /app")
	}
	t, err := s.tenant(ctx, tenant)
	if err != nil {
		return "", err
	}
	idp, err := s.idpMetadata(ctx, t)
	if err != nil {
		return "", err
	}
	sp := s.provider(t.ID, t.SSO, idp, nil)
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(csaml.HTTPRedirectBinding), csaml.HTTPRedirectBinding, csaml.HTTPPostBinding)
	if err != nil {
		return "", fmt.Errorf("saml: make AuthnRequest: %w", err)
	}
	// Our own id, from the injected random source rather than crewjam's global one.
	id := make([]byte, 20)
	if _, err := io.ReadFull(s.randomReader(), id); err != nil {
		return "", fmt.Errorf("saml: random: %w", err)
	}
	req.ID = "id-" + hex.EncodeToString(id)
	rec := pendingRequest{
		ID: req.ID, Tenant: t.ID, BindingHash: hashHex(binding), ReturnTo: returnTo,
		Expires: s.now().Add(s.requestTTL).UTC(),
	}
	b, _ := json.Marshal(rec)
	if err := s.requests.Create(ctx, req.ID, b, s.requestTTL); err != nil {
		return "", fmt.Errorf("saml: remember request: %w", err)
	}
	u, err := req.Redirect(req.ID, sp)
	if err != nil {
		return "", fmt.Errorf("saml: redirect URL: %w", err)
	}
	return u.String(), nil
}

// takeRequest returns the outstanding request named by relayState if it belongs to tenant, to
// the browser holding binding, and has not expired, and removes it so that it is answered once.
// ok is false when there is no such request; err is set only when the store fails.
func (s *Service) takeRequest(ctx context.Context, tenant domain.TenantID, relayState, binding string) (pendingRequest, bool, error) {
	if !requestID.MatchString(relayState) || binding == "" {
		return pendingRequest{}, false, nil
	}
	raw, rev, err := s.requests.Get(ctx, relayState)
	if errors.Is(err, domain.ErrNotFound) {
		return pendingRequest{}, false, nil
	}
	if err != nil {
		return pendingRequest{}, false, err
	}
	var rec pendingRequest
	if err := json.Unmarshal(raw, &rec); err != nil {
		return pendingRequest{}, false, fmt.Errorf("saml: pending request %s: %w", relayState, err)
	}
	if rec.ID != relayState || rec.Tenant != tenant || !s.now().Before(rec.Expires) ||
		subtle.ConstantTimeCompare([]byte(rec.BindingHash), []byte(hashHex(binding))) != 1 {
		return pendingRequest{}, false, nil
	}
	if err := s.requests.Delete(ctx, relayState, rev); err != nil {
		if errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrNotFound) {
			return pendingRequest{}, false, nil // answered by a concurrent post
		}
		return pendingRequest{}, false, err
	}
	return rec, true, nil
}

// LocalPath reports whether p is a path on this site that is safe to redirect to after login:
// it starts with one "/" and is not followed by another "/" or "\" (which browsers read as
// another host), has no scheme, host, backslash or control character.
func LocalPath(p string) bool {
	if p == "" || len(p) > 2048 || p[0] != '/' {
		return false
	}
	if len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return false
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return false
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return false
	}
	// A decoded path must not turn into a network path either (/%2F%2Fevil is fine as a path,
	// but reject it rather than trust every browser's normalisation).
	return !strings.HasPrefix(u.Path, "//") && !strings.Contains(u.Path, "\\")
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (s *Service) randomReader() io.Reader {
	if s.random != nil {
		return s.random
	}
	return rand.Reader
}
