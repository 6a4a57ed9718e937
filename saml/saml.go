// Package saml is idledger's SAML 2.0 service provider: one per company, for single sign-on
// from Microsoft Entra ID (or any SAML IdP) into the users that SCIM provisioned.
//
// It wraps github.com/crewjam/saml (imported as csaml) and nothing else; it speaks domain types
// at its edges. cmd/idledger passes a *Service to httpapi, which declares the methods it calls.
//
// # One service provider per company
//
// crewjam models one SP trusting one IdP, so a [csaml.ServiceProvider] is built for the
// company named in the URL path whenever one is needed, from that company's read model: its
// entity ID <base>/saml/<tenant>/metadata, its ACS URL <base>/saml/<tenant>/acs (both from the
// configured base URL, never from a request's Host header) and the IdP metadata the company
// uploaded, which is the only trust anchor. The read model names the metadata document by its
// hash; the document itself is read from its tenant.idp_metadata_set event and kept parsed in
// memory. Nothing is shared between companies but the SP key pair.
//
// # What a response must pass
//
// crewjam verifies the signature (of the Response or of every Assertion; SHA-1 refused) with
// the company's IdP certificates, the Issuer, Audience, Destination and Recipient, the validity
// windows with its package skew limits (MaxClockSkew, MaxIssueDelay: left at their defaults),
// and InResponseTo against the request ids this package allows: only the outstanding request
// of this company whose browser binding matches, taken once. Accepted assertion ids are
// consumed in a shared replay cache until they would expire. Then the NameID is looked up as a
// SCIM userName, ignoring case, and the user must exist and be active.
//
// # Shared state
//
// Outstanding requests and consumed assertion ids live in [Records] stores (NATS KV buckets in
// production), so every instance sees them and they survive a restart.
//
// # Globals
//
// crewjam keeps package globals (TimeNow, Clock, RandReader, MaxClockSkew, MaxIssueDelay). This
// package sets none of them: the clock is injected per ServiceProvider (its Clock field), and
// request ids are drawn from the injected random source. crewjam still reads RandReader
// (crypto/rand) for ids of messages this package never sends.
package saml

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	csaml "github.com/crewjam/saml"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/idledger/idledger/domain"
)

// Reader is what the service reads from the projections.
type Reader interface {
	// FindTenant returns a company, or an error wrapping domain.ErrNotFound.
	FindTenant(ctx context.Context, id domain.TenantID) (domain.Tenant, error)
	// LoginByUserName returns the user whose userName equals name ignoring case, and whether
	// it is active, from the login index; or an error wrapping domain.ErrNotFound.
	LoginByUserName(ctx context.Context, tenant domain.TenantID, name string) (domain.LoginEntry, error)
}

// EventLoader reads an aggregate's events from the log (domain.EventLog's Load): the IdP
// metadata document is kept in its tenant.idp_metadata_set event, not in the read model.
type EventLoader interface {
	Load(ctx context.Context, tenant domain.TenantID, kind domain.Kind, id string) ([]domain.Event, domain.Version, error)
}

// Records is a shared store of records that expire on their own (eventstore.Records).
type Records interface {
	// Create stores value under key for ttl if key holds no record; otherwise it returns an
	// error wrapping domain.ErrUniqueness. It is atomic across instances.
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Get returns a record and its revision, or an error wrapping domain.ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	// Delete removes a record if it is still at revision (any revision if 0), or returns an
	// error wrapping domain.ErrConflict.
	Delete(ctx context.Context, key string, revision uint64) error
}

// Config holds what a Service needs.
type Config struct {
	// BaseURL is the public URL prefix (IDLEDGER_BASE_URL), scheme and host included.
	BaseURL string
	// KeyPair is the SP's key and certificate (see LoadKeyPair).
	KeyPair KeyPair
	// Reader reads companies and users from the projections; Log reads the uploaded IdP
	// metadata documents.
	Reader Reader
	Log    EventLoader
	// Requests keeps outstanding AuthnRequests; Assertions keeps consumed assertion ids.
	Requests   Records
	Assertions Records
	// Now is the clock (default time.Now); Random the source of request ids (default
	// crypto/rand).
	Now    func() time.Time
	Random io.Reader
	// RequestTTL is how long a login may take at the IdP (default 10 minutes).
	RequestTTL time.Duration
}

// Service is the SAML service provider of every company. It is safe for concurrent use.
type Service struct {
	base       string
	key        *rsa.PrivateKey
	cert       *x509.Certificate
	read       Reader
	log        EventLoader
	requests   Records
	assertions Records
	now        func() time.Time
	random     io.Reader
	requestTTL time.Duration
	clock      *dsig.Clock

	mu   sync.Mutex // guards idps
	idps map[domain.TenantID]idpCache
}

// idpCache is a company's parsed IdP metadata document, identified by its hash. crewjam only
// reads the EntityDescriptor, so one is shared by concurrent logins.
type idpCache struct {
	sha256 string
	entity *csaml.EntityDescriptor
}

// New returns a Service. It returns an error if the configuration is incomplete.
func New(cfg Config) (*Service, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("saml: base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.KeyPair.Key == nil || cfg.KeyPair.Certificate == nil {
		return nil, errors.New("saml: no SP key pair")
	}
	if cfg.Reader == nil || cfg.Log == nil || cfg.Requests == nil || cfg.Assertions == nil {
		return nil, errors.New("saml: reader, log and record stores are required")
	}
	s := &Service{
		base: base, key: cfg.KeyPair.Key, cert: cfg.KeyPair.Certificate, read: cfg.Reader, log: cfg.Log,
		requests: cfg.Requests, assertions: cfg.Assertions, now: cfg.Now, random: cfg.Random,
		requestTTL: cfg.RequestTTL, idps: make(map[domain.TenantID]idpCache),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.requestTTL <= 0 {
		s.requestTTL = 10 * time.Minute
	}
	s.clock = dsig.NewFakeClock(funcClock{Clock: clockwork.NewRealClock(), now: s.now})
	return s, nil
}

// EntityID returns a company's SP entity ID, which is also its metadata URL.
func (s *Service) EntityID(tenant domain.TenantID) string {
	return s.base + "/saml/" + string(tenant) + "/metadata"
}

// ACSURL returns a company's Assertion Consumer Service URL.
func (s *Service) ACSURL(tenant domain.TenantID) string {
	return s.base + "/saml/" + string(tenant) + "/acs"
}

// provider builds the company's crewjam ServiceProvider; idp may be nil (metadata only).
// replay, if set, is the replay cache for this request.
func (s *Service) provider(tenant domain.TenantID, sso domain.SSOConfig, idp *csaml.EntityDescriptor, replay csaml.AssertionReplayCache) *csaml.ServiceProvider {
	entityID := s.EntityID(tenant)
	metadataURL, _ := url.Parse(entityID)
	acsURL, _ := url.Parse(s.ACSURL(tenant))
	return &csaml.ServiceProvider{
		EntityID:                         entityID,
		Key:                              s.key,
		Certificate:                      s.cert,
		MetadataURL:                      *metadataURL,
		AcsURL:                           *acsURL,
		IDPMetadata:                      idp,
		AuthnNameIDFormat:                csaml.EmailAddressNameIDFormat,
		AllowIDPInitiated:                sso.AllowIDPInitiated,
		ReplayCache:                      replay,
		RejectSHA1Signatures:             true,
		AssertionConsumerServiceBindings: []string{csaml.HTTPPostBinding},
		Clock:                            s.clock,
	}
}

// idpMetadata returns the company's parsed IdP metadata: the document whose hash the read
// model names, read from its tenant.idp_metadata_set event in the log on first use. It returns
// an error wrapping domain.ErrNotFound if single sign-on is not configured.
func (s *Service) idpMetadata(ctx context.Context, t domain.Tenant) (*csaml.EntityDescriptor, error) {
	if !t.SSO.Enabled() {
		return nil, domain.Errorf(domain.ErrNotFound, "single sign-on is not configured for this company")
	}
	want := t.SSO.IDPMetadataSHA256
	s.mu.Lock()
	c, ok := s.idps[t.ID]
	s.mu.Unlock()
	if ok && c.sha256 == want {
		return c.entity, nil
	}
	events, _, err := s.log.Load(ctx, t.ID, domain.KindTenant, string(t.ID))
	if err != nil {
		return nil, fmt.Errorf("saml: load IdP metadata of %s: %w", t.ID, err)
	}
	var doc string
	for i := len(events) - 1; i >= 0 && doc == ""; i-- {
		if md, ok := events[i].Data.(domain.IDPMetadataSet); ok && domain.MetadataSHA256(md.Metadata) == want {
			doc = md.Metadata
		}
	}
	if doc == "" {
		return nil, fmt.Errorf("saml: IdP metadata %s of %s is not in the log", want, t.ID)
	}
	entity, err := parseEntity([]byte(doc))
	if err != nil {
		// It was accepted at upload; a parser change may refuse it now.
		return nil, fmt.Errorf("saml: stored IdP metadata of %s: %w", t.ID, err)
	}
	s.mu.Lock()
	s.idps[t.ID] = idpCache{sha256: want, entity: entity}
	s.mu.Unlock()
	return entity, nil
}

// tenant returns a company from the read model; an unknown one wraps domain.ErrNotFound.
func (s *Service) tenant(ctx context.Context, id domain.TenantID) (domain.Tenant, error) {
	t, err := s.read.FindTenant(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Tenant{}, domain.Errorf(domain.ErrNotFound, "no company %s", id)
	}
	return t, err
}
