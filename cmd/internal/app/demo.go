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

// DemoCompany is what DIR/demo.json keeps so every start can print the demo token again.
type DemoCompany struct {
	ID    domain.TenantID `json:"id"`
	Name  string          `json:"name"`
	Token string          `json:"scimToken"`
}

// demo creates the demo company on first start and prints the URLs and tokens.
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
		t, token, err := s.Service.CreateTenant(domain.WithRequest(ctx, domain.Request{Actor: "system", Correlation: "demo"}), "Demo Company")
		if err != nil {
			return fmt.Errorf("create demo company: %w", err)
		}
		d = DemoCompany{ID: t.ID, Name: t.Name, Token: token}
		raw, _ := json.MarshalIndent(d, "", "  ")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return fmt.Errorf("save demo company: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.Projector.WaitFor(wctx, t.Version); err != nil {
			return fmt.Errorf("demo company not visible: %w", err)
		}
	default:
		return err
	}
	base := s.baseURL
	fmt.Fprintf(s.Stdout, `
idledger is running (data in %s, event log: %s)

  base URL         %s
  health           %s/healthz
  operator token   %s
  demo company     %s (%s)
  SCIM base URL    %s/scim/v2
  SCIM token       %s

Try it:
  export TOKEN=%s
  curl -s -X POST %s/scim/v2/Users -H "Authorization: Bearer $TOKEN" \
       -H 'Content-Type: application/scim+json' \
       -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com","active":true}'
  curl -s -G %s/scim/v2/Users -H "Authorization: Bearer $TOKEN" --data-urlencode 'filter=userName eq "ADA@example.com"'

`, s.DataDir, s.logName(),
		base, base, s.AdminToken, d.Name, d.ID, base, d.Token, d.Token, base, base)
	return nil
}

// persistentSecret returns the secret kept in DIR/name, creating it on first use.
func (s *Server) persistentSecret(name string) (string, error) {
	path := filepath.Join(s.DataDir, name)
	raw, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(raw)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok, err := domain.NewSecret(rand.Reader)
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
