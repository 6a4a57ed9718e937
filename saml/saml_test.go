package saml_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
	"github.com/idledger/idledger/projections/usernames"
	"github.com/idledger/idledger/saml"
	"github.com/idledger/idledger/saml/samltest"
)

const base = "https://idl.example"

// testClock is the tests' clock; it moves only when told.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is a saml.Service on the real embedded JetStream (log and KV buckets) and bbolt
// projections, with the domain service that provisions companies and users.
type env struct {
	svc   *saml.Service
	dom   *domain.Service
	db    *projections.DB
	proj  *projections.Projector
	clock *testClock
	idp   *samltest.IDP
	other *samltest.IDP
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	dir := tb.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := eventstore.Open(ctx, eventstore.Config{Dir: dir, NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	db, err := projections.Open(filepath.Join(dir, "projections.db"), projections.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	proj := projections.NewProjector(db, store, projections.ProjectorConfig{})
	done := make(chan struct{})
	go func() { defer close(done); _ = proj.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		<-done
		if err := db.Check(); err != nil {
			tb.Errorf("bbolt check: %v", err)
		}
		db.Close()
		store.Close()
	})
	clock := &testClock{now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	records := func(bucket string) *eventstore.Records {
		r, err := store.OpenRecords(ctx, bucket, bucket, 15*time.Minute)
		if err != nil {
			tb.Fatal(err)
		}
		return r
	}
	svc, err := saml.New(saml.Config{BaseURL: base, KeyPair: spKeyPair(tb), Reader: db, Log: store,
		Requests: records(eventstore.BucketSAMLRequests), Assertions: records(eventstore.BucketSAMLAssertions), Now: clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return &env{
		svc: svc, db: db, proj: proj, clock: clock,
		dom: &domain.Service{Log: store, Read: db, Sync: proj.WaitFor, Now: clock.Now,
			NewID: func() string { return uuid.Must(uuid.NewV7()).String() }, Names: usernames.Rule{}},
		idp:   samltest.New(tb, samltest.Entra, clock.Now),
		other: samltest.New(tb, samltest.Other, clock.Now),
	}
}

func spKeyPair(tb testing.TB) saml.KeyPair {
	key, cert := samltest.KeyPair(tb, "sp")
	return saml.KeyPair{Key: key, Certificate: cert}
}

// company creates a company trusting idp (none if nil).
func (e *env) company(tb testing.TB, idp *samltest.IDP) domain.TenantID {
	tb.Helper()
	ctx := context.Background()
	t, _, err := e.dom.CreateTenant(ctx, "Acme")
	if err != nil {
		tb.Fatal(err)
	}
	if idp != nil {
		md, err := e.svc.CheckIDPMetadata(idp.Metadata)
		if err != nil {
			tb.Fatal(err)
		}
		if t, err = e.dom.SetIDPMetadata(ctx, t.ID, md); err != nil {
			tb.Fatal(err)
		}
	}
	e.wait(tb, t.Version)
	return t.ID
}

func (e *env) wait(tb testing.TB, v domain.Version) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.proj.WaitFor(ctx, v); err != nil {
		tb.Fatal(err)
	}
}

func (e *env) user(tb testing.TB, tenant domain.TenantID, userName string, active bool) domain.User {
	tb.Helper()
	u, err := e.dom.CreateUser(context.Background(), domain.OriginSystem, tenant, map[string]any{
		"schemas": []any{scim.SchemaUser}, "userName": userName, "active": active,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.wait(tb, u.Version)
	return u
}

func (e *env) spMetadata(tb testing.TB, tenant domain.TenantID) []byte {
	tb.Helper()
	b, err := e.svc.SPMetadata(context.Background(), tenant)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// login starts a login with binding and has the IdP answer it.
func (e *env) login(tb testing.TB, tenant domain.TenantID, idp *samltest.IDP, binding, nameID string, opts ...samltest.Option) samltest.Response {
	tb.Helper()
	loc, err := e.svc.StartLogin(context.Background(), tenant, binding, "/app")
	if err != nil {
		tb.Fatal(err)
	}
	return idp.Login(tb, loc, e.spMetadata(tb, tenant), nameID, opts...)
}

func (e *env) acs(tenant domain.TenantID, r samltest.Response, binding string) (domain.SignInResult, error) {
	return e.svc.ACS(context.Background(), tenant, r.Form.Get("SAMLResponse"), r.Form.Get("RelayState"), binding)
}

func reason(err error) string {
	var se *domain.SignInError
	if errors.As(err, &se) {
		return se.Reason
	}
	return fmt.Sprintf("not a refusal: %v", err)
}

func TestService_ACS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.company(t, e.idp)
	globex := e.company(t, e.other)
	ada := e.user(t, acme, "Ada@Contoso.example", true)
	e.user(t, acme, "off@contoso.example", false)
	globexAda := e.user(t, globex, "ada@contoso.example", true)
	const binding = "browser-binding-1"

	t.Run("SPInitiated", func(t *testing.T) {
		r := e.login(t, acme, e.idp, binding, "ada@contoso.example")
		res, err := e.acs(acme, r, binding)
		if err != nil {
			t.Fatal(err)
		}
		if res.User != ada.ID || res.ReturnTo != "/app" || res.Flow != domain.FlowSPInitiated {
			t.Fatalf("result = %+v", res)
		}
		// The request was taken: the same post answers nothing now.
		if _, err := e.acs(acme, r, binding); reason(err) != domain.SignInRequestMismatch {
			t.Fatalf("second post: %v", err)
		}
	})
	t.Run("OtherBrowser", func(t *testing.T) {
		r := e.login(t, acme, e.idp, binding, "ada@contoso.example")
		if _, err := e.acs(acme, r, "browser-binding-2"); reason(err) != domain.SignInRequestMismatch {
			t.Fatalf("err = %v", err)
		}
		// The request is still outstanding for its own browser.
		if _, err := e.acs(acme, r, binding); err != nil {
			t.Fatalf("own browser: %v", err)
		}
	})
	t.Run("OtherCompanysRequest", func(t *testing.T) {
		// globex's outstanding request, answered by acme's IdP for acme's SP.
		loc, err := e.svc.StartLogin(context.Background(), globex, binding, "/")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(loc)
		id := u.Query().Get("RelayState")
		r := e.login(t, acme, e.idp, "another", "ada@contoso.example", samltest.WithInResponseTo(id))
		r.Form.Set("RelayState", id)
		if _, err := e.acs(acme, r, binding); reason(err) != domain.SignInRequestMismatch {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("RequestExpired", func(t *testing.T) {
		r := e.login(t, acme, e.idp, binding, "ada@contoso.example")
		e.clock.Advance(11 * time.Minute)
		defer e.clock.Advance(-11 * time.Minute)
		if _, err := e.acs(acme, r, binding); reason(err) != domain.SignInRequestMismatch {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("InactiveUser", func(t *testing.T) {
		_, err := e.acs(acme, e.login(t, acme, e.idp, binding, "OFF@contoso.example"), binding)
		var se *domain.SignInError
		if !errors.As(err, &se) || se.Reason != domain.SignInInactiveUser || se.User == "" || !errors.Is(err, domain.ErrForbidden) {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("UnknownUser", func(t *testing.T) {
		_, err := e.acs(acme, e.login(t, acme, e.idp, binding, "nobody@contoso.example"), binding)
		var se *domain.SignInError
		if !errors.As(err, &se) || se.Reason != domain.SignInUnknownUser || se.User != "" || se.NameID != "nobody@contoso.example" {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("OtherCompanysUser", func(t *testing.T) {
		// Globex's user, signed by globex's IdP, posted to globex's ACS: fine; the same
		// name at acme through acme's IdP finds acme's user, never globex's.
		res, err := e.acs(globex, e.login(t, globex, e.other, binding, "ada@contoso.example"), binding)
		if err != nil || res.User != globexAda.ID || globexAda.ID == ada.ID {
			t.Fatalf("res = %+v, err = %v", res, err)
		}
	})
}

func TestService_ReplayCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.company(t, e.idp)
	e.user(t, acme, "ada@contoso.example", true)
	allow := true
	tt, err := e.dom.SetSSOSettings(context.Background(), acme, &allow)
	if err != nil {
		t.Fatal(err)
	}
	e.wait(t, tt.Version)
	r := e.idp.Unsolicited(t, e.spMetadata(t, acme), "ada@contoso.example", "/x")
	res, err := e.acs(acme, r, "")
	if err != nil || res.Flow != domain.FlowIDPInitiated || res.ReturnTo != "/x" {
		t.Fatalf("res = %+v, err = %v", res, err)
	}
	// Concurrent replays on the shared store: none gets through.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := e.acs(acme, r, ""); reason(err) != domain.SignInReplayed {
				t.Errorf("replay: %v", err)
			}
		})
	}
	wg.Wait()
}

func TestService_StartLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	none := e.company(t, nil)
	acme := e.company(t, e.idp)
	ctx := context.Background()
	if _, err := e.svc.StartLogin(ctx, none, "b", "/"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("without IdP metadata: err = %v", err)
	}
	if _, err := e.svc.StartLogin(ctx, "nope", "b", "/"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unknown company: err = %v", err)
	}
	if _, err := e.svc.StartLogin(ctx, acme, "b", "https://evil.example"); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("absolute return_to: err = %v", err)
	}
	loc, err := e.svc.StartLogin(ctx, acme, "b", "")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	if u.Scheme+"://"+u.Host+u.Path != e.idp.SSOURL || u.Query().Get("SAMLRequest") == "" {
		t.Errorf("redirect = %s", loc)
	}
	// The IdP (with EnforceNameIDPolicy) accepts it: emailAddress is asked for, not transient.
	e.idp.Login(t, loc, e.spMetadata(t, acme), "ada@contoso.example")
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]bool{
		"/": true, "/app": true, "/a/b?c=d#e": true, "/a%2Fb": true, "/%2Fx": false,
		"": false, "app": false, "//evil.example": false, `/\evil.example`: false, "https://evil.example": false,
		"javascript:alert(1)": false, "/a\nb": false, "/a\\b": false, "/%2F%2Fevil.example": false, "///evil": false,
		"\t/x": false,
	} {
		if got := saml.LocalPath(p); got != want {
			t.Errorf("LocalPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestLoadKeyPair(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	kp, created, err := saml.LoadKeyPair("", "", dir, now)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	for _, f := range []string{"saml-sp.key", "saml-sp.crt"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	again, created, err := saml.LoadKeyPair("", "", dir, now)
	if err != nil || created || !again.Key.Equal(kp.Key) {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	// Flags: both, or neither.
	if _, _, err := saml.LoadKeyPair(filepath.Join(dir, "saml-sp.key"), "", dir, now); err == nil {
		t.Error("--saml-key without --saml-cert was accepted")
	}
	given, _, err := saml.LoadKeyPair(samltest.Path(t, "sp.key"), samltest.Path(t, "sp.crt"), dir, now)
	if err != nil || given.Key.Equal(kp.Key) {
		t.Fatalf("flags: %v", err)
	}
	if _, _, err := saml.LoadKeyPair(samltest.Path(t, "sp.key"), samltest.Path(t, "other-idp.crt"), dir, now); err == nil {
		t.Error("a certificate of another key was accepted")
	}
}

// BenchmarkLoginLookup measures the login lookup alone: the NameID through the folded userName
// index entry in bbolt, and the active check, among 1,000 users.
func BenchmarkLoginLookup(b *testing.B) {
	e := newEnv(b)
	acme := e.company(b, nil)
	var last domain.User // user0500
	for i := range 1000 {
		u := e.user(b, acme, fmt.Sprintf("user%04d@contoso.example", i), true)
		if i == 500 {
			last = u
		}
	}
	ctx := context.Background()
	for b.Loop() {
		u, err := e.db.LoginByUserName(ctx, acme, "USER0500@Contoso.Example")
		if err != nil || !u.Active || u.User != last.ID {
			b.Fatal(err)
		}
	}
}

// BenchmarkService_ACS measures saml.Service.ACS: base64, taking the outstanding request from
// the KV bucket, crewjam's verification with the RSA-SHA256 signature, the replay cache and the
// login lookup (no HTTP, no history, no session; see httpapi's BenchmarkACS for those).
func BenchmarkService_ACS(b *testing.B) {
	e := newEnv(b)
	acme := e.company(b, e.idp)
	e.user(b, acme, "ada@contoso.example", true)
	md := e.spMetadata(b, acme)
	for b.Loop() {
		b.StopTimer()
		loc, err := e.svc.StartLogin(context.Background(), acme, "b", "/")
		if err != nil {
			b.Fatal(err)
		}
		r := e.idp.Login(b, loc, md, "ada@contoso.example")
		b.StartTimer()
		if _, err := e.acs(acme, r, "b"); err != nil {
			b.Fatal(err)
		}
	}
}

// nopReader and nopRecords satisfy saml.New for tests that use no store.
type nopReader struct{}

func (nopReader) FindTenant(context.Context, domain.TenantID) (domain.Tenant, error) {
	return domain.Tenant{}, domain.ErrNotFound
}

func (nopReader) LoginByUserName(context.Context, domain.TenantID, string) (domain.LoginEntry, error) {
	return domain.LoginEntry{}, domain.ErrNotFound
}

func (nopReader) Load(context.Context, domain.TenantID, domain.Kind, string) ([]domain.Event, domain.Version, error) {
	return nil, 0, nil
}

type nopRecords struct{}

func (nopRecords) Create(context.Context, string, []byte, time.Duration) error { return nil }
func (nopRecords) Get(context.Context, string) ([]byte, uint64, error) {
	return nil, 0, domain.ErrNotFound
}
func (nopRecords) Delete(context.Context, string, uint64) error { return nil }

// TestService_ACS_UserNameFold: a NameID finds its user through the same userName rule as
// SCIM's uniqueness and filters (RFC 8265 PRECIS UsernameCaseMapped).
func TestService_ACS_UserNameFold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.company(t, e.idp)
	for i, c := range []struct{ name, stored, nameID string }{
		{"trim", " trim@contoso.example ", "trim@contoso.example"},
		{"NBSP", "nbsp@contoso.example", "\u00a0nbsp@contoso.example"},
		{"NFC and NFD", "jos\u00e9@contoso.example", "jose\u0301@contoso.example"},
		{"full-width", "\uff4b\uff49\uff4d@contoso.example", "Kim@contoso.example"},
		{"Kelvin sign", "\u212aelvin@contoso.example", "kelvin@contoso.example"},
		{"Turkish dotted I", "\u0130pek@contoso.example", "i\u0307pek@contoso.example"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := e.user(t, acme, c.stored, true)
			binding := fmt.Sprintf("browser-binding-fold-%d", i)
			res, err := e.acs(acme, e.login(t, acme, e.idp, binding, c.nameID), binding)
			if err != nil {
				t.Fatalf("sign-in as %+q (stored %+q): %v", c.nameID, c.stored, err)
			}
			if res.User != u.ID {
				t.Fatalf("signed in %s, want %s", res.User, u.ID)
			}
		})
	}
	t.Run("dotless i is another user", func(t *testing.T) {
		e.user(t, acme, "ipek2@contoso.example", true)
		const binding = "browser-binding-fold-dotless"
		_, err := e.acs(acme, e.login(t, acme, e.idp, binding, "\u0131pek2@contoso.example"), binding)
		if err == nil {
			t.Fatal("the dotless ı signed in as the user with a dotted i")
		}
	})
}
