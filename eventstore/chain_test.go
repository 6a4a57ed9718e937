package eventstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/idledger/idledger/domain"
)

// TestVerify: untouched data verifies; a message forged straight into the stream with the
// NATS client (bypassing idledger), a message that breaks its aggregate's chain, and a
// message whose content does not match its hash are each reported at their sequence.
func TestVerify(t *testing.T) {
	s := MustOpenStore(t)
	ctx := t.Context()
	ids := idSeq()
	tenant := domain.TenantID(ids())
	user := ids()
	if _, err := s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: tenantCreated(tenant, ids())}}}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Append(ctx, domain.Batch{Tenant: tenant,
		Writes: []domain.Write{{Event: userCreated(tenant, user, ids(), "ada@example.com")}},
		Unique: []domain.UniqueOp{{Field: "userName", Value: "ada@example.com", Holder: user}}})
	if err != nil {
		t.Fatal(err)
	}
	// Two more events on the user: a chain of three, plus an unlinked one.
	for range 2 {
		e := noop(tenant, user, ids())
		if v, err = s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: e, Expected: v}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: noop(tenant, user, ids()), NoExpect: true}}}); err != nil {
		t.Fatal(err)
	}

	r, err := s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Config != "" || len(r.Breaks) != 0 || r.Messages != messages(t, s) {
		t.Fatalf("untouched log: %+v", r)
	}

	js, _ := rawStream(t, s)
	forge := func(subject string, h nats.Header, body string) uint64 {
		m := nats.NewMsg(subject)
		m.Header = h
		m.Data = []byte(body)
		ack, err := js.PublishMsg(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	userSubject := "idl." + string(tenant) + ".user." + user
	_, st := rawStream(t, s)
	real, err := st.GetLastMsgForSubject(ctx, userSubject)
	if err != nil {
		t.Fatal(err)
	}
	// 1. A naive forgery: right headers, no hash.
	naive := forge(userSubject, nats.Header{"Idl-Type": {"user.deleted"}, "Idl-Schema": {"1"}, "Idl-Tenant": {string(tenant)}}, `{}`)
	// 2. A forgery that copies a real message's hash headers (content differs).
	copied := forge(userSubject, nats.Header{"Idl-Type": {"user.deleted"}, "Idl-Schema": {"1"},
		"Idl-Hash": real.Header.Values("Idl-Hash"), "Idl-Prev": real.Header.Values("Idl-Prev")}, `{"forged":true}`)

	r, err = s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Breaks) != 2 {
		t.Fatalf("breaks = %v, want 2", r.Breaks)
	}
	if r.Breaks[0].Sequence != naive || r.Breaks[0].Subject != userSubject || !strings.Contains(r.Breaks[0].Reason, "Idl-Hash") {
		t.Errorf("first break = %+v, want the naive forgery at %d", r.Breaks[0], naive)
	}
	if r.Breaks[1].Sequence != copied || !strings.Contains(r.Breaks[1].Reason, "does not match") {
		t.Errorf("second break = %+v, want the copied-hash forgery at %d", r.Breaks[1], copied)
	}
}
