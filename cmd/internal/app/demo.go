package app

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/idledger/idledger/domain"
)

// DemoCompany is what DIR/demo.json keeps so every start can print the demo secrets again.
type DemoCompany struct {
	ID    domain.TenantID `json:"id"`
	Name  string          `json:"name"`
	Token string          `json:"scimToken"`
	// APIKey is an API key of the demo company with every scope, for /api/v1. A demo.json
	// written before API keys existed has none: the next start creates it.
	APIKey   string `json:"apiKey,omitempty"`
	APIKeyID string `json:"apiKeyId,omitempty"`
}

// demo creates the demo company (and its API key) on first start and prints the URLs and
// secrets.
func (s *Server) demo(ctx context.Context) error {
	path := filepath.Join(s.DataDir, "demo.json")
	var d DemoCompany
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return err
	}
	if d.ID == "" || d.APIKey == "" {
		if err := s.createDemo(ctx, path, &d); err != nil {
			return err
		}
	}
	base := s.baseURL
	link, err := s.demoSetupLink(ctx, d.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Stdout, `
idledger is running (data in %s, event log: %s)

  base URL         %s
  health           %s/healthz
  operator token   %s
  demo company     %s (%s)
  SCIM base URL    %s/scim/v2
  SCIM token       %s        (for Entra: opens /scim/v2 only)
  API key          %s        (for your backend: /api/v1, every scope)
  setup link       %s
                   (open it in a browser: the company settings console, to connect Entra; it works
                   once, for 24 hours; every start prints a new one)

Try it:
  export TOKEN=%s
  curl -s -X POST %s/scim/v2/Users -H "Authorization: Bearer $TOKEN" \
       -H 'Content-Type: application/scim+json' \
       -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com","active":true}'
  curl -s -G %s/scim/v2/Users -H "Authorization: Bearer $TOKEN" --data-urlencode 'filter=userName eq "ADA@example.com"'
  export KEY=%s
  curl -s %s/api/v1/provisioning -H "Authorization: Bearer $KEY"

`, s.DataDir, s.logName(),
		base, base, s.AdminToken, d.Name, d.ID, base, d.Token, d.APIKey, link, d.Token, base, base, d.APIKey, base)
	return nil
}

// demoSetupLink creates a fresh setup link of the demo company (as POST
// /admin/v1/tenants/{id}/setup-links does) and returns its URL once it works.
func (s *Server) demoSetupLink(ctx context.Context, tenant domain.TenantID) (string, error) {
	ctx = domain.WithRequest(ctx, domain.Request{Actor: "system", Correlation: "demo"})
	t, _, secret, err := s.Service.CreateSetupLink(ctx, tenant, domain.DefaultSetupLinkLifetime)
	if err != nil {
		return "", fmt.Errorf("demo setup link: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Projector.WaitFor(wctx, t.Version); err != nil {
		return "", fmt.Errorf("demo setup link not visible: %w", err)
	}
	return s.baseURL + "/console/setup/" + secret, nil // httpapi's setup link route
}

// createDemo creates what d lacks (the demo company, its API key), saves d to path (mode
// 0600) and waits until the read models have it.
func (s *Server) createDemo(ctx context.Context, path string, d *DemoCompany) error {
	ctx = domain.WithRequest(ctx, domain.Request{Actor: "system", Correlation: "demo"})
	if d.ID == "" {
		t, token, err := s.Service.CreateTenant(ctx, "Demo Company")
		if err != nil {
			return fmt.Errorf("create demo company: %w", err)
		}
		*d = DemoCompany{ID: t.ID, Name: t.Name, Token: token}
	}
	scopes := make([]string, 0, len(domain.AllScopes()))
	for _, sc := range domain.AllScopes() {
		scopes = append(scopes, string(sc))
	}
	t, k, secret, err := s.Service.CreateAPIKey(ctx, d.ID, "demo", scopes)
	if err != nil {
		return fmt.Errorf("create demo API key: %w", err)
	}
	d.APIKey, d.APIKeyID = secret, k.ID
	raw, _ := json.MarshalIndent(d, "", "  ")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return fmt.Errorf("save demo company: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Projector.WaitFor(wctx, t.Version); err != nil { // the key's event is the company's last
		return fmt.Errorf("demo company not visible: %w", err)
	}
	return nil
}

// persistentSecret returns the secret kept in DIR/name, creating it on first use with the
// operator token's prefix (it keeps the generated operator token).
func (s *Server) persistentSecret(name string) (string, error) {
	path := filepath.Join(s.DataDir, name)
	raw, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(raw)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok, err := domain.NewToken(rand.Reader, domain.OperatorTokenPrefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save %s: %w", name, err)
	}
	return tok, nil
}

// logName names the event log in the demo banner.
func (s *Server) logName() string {
	if s.NATSURL == "" {
		return "embedded NATS JetStream"
	}
	return s.NATSURL
}
