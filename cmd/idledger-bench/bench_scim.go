package main

// Sections 2 and 3 of the bench: an Entra-like provisioning client (docs/entra-scim.md §1, the
// request shapes of httpapi/entra_cycle_test.go) driving a SCIM server over real HTTP at the
// profile's concurrency. The same client and request mix run against idledger and against the
// in-memory baseline (bench_memscim.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idledger/idledger/cmd/internal/cli"
)

const (
	scimSchemaUser  = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimSchemaEnt   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	scimSchemaGroup = "urn:ietf:params:scim:schemas:core:2.0:Group"
	scimSchemaPatch = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// Operation names: the latency samples are kept per name.
const (
	opGetUserFilter  = "GET /Users?filter=userName eq"
	opPostUser       = "POST /Users"
	opGetGroupFilter = "GET /Groups?filter=displayName eq"
	opPostGroup      = "POST /Groups"
	opPatchMembers   = "PATCH /Groups members (chunks of 25)"
	opPatchManager   = "PATCH /Users manager"
	opGetUser        = "GET /Users/{id}"
	opPatchAttrs     = "PATCH /Users attributes"
	opPatchDisable   = "PATCH /Users active=false"
	opPatchRename    = "PATCH /Users userName"
	opPatchGrpMember = "PATCH /Groups members add/remove"
	opPatchGrpName   = "PATCH /Groups displayName"
)

// benchIsWrite reports whether an operation changes the server (a durable write on idledger).
func benchIsWrite(op string) bool { return !strings.HasPrefix(op, "GET ") }

// benchClient is an Entra-like SCIM client over HTTP. It is safe for concurrent use.
type benchClient struct {
	base  string // <server>/scim/v2
	token string
	http  *http.Client
}

func newBenchClient(base, token string, conc int) *benchClient {
	return &benchClient{base: base, token: token, http: &http.Client{
		Timeout: 60 * time.Second, // Entra gives up after 60 s (docs/entra-scim.md §1)
		Transport: &http.Transport{MaxIdleConns: 2 * conc, MaxIdleConnsPerHost: 2 * conc,
			DisableCompression: true, IdleConnTimeout: time.Minute},
	}}
}

func (c *benchClient) close() { c.http.CloseIdleConnections() }

// do sends body (nil: none), checks the status against want, decodes a JSON answer into out
// (if not nil) and returns the time from sending to the end of the answer.
func (c *benchClient) do(ctx context.Context, method, path string, body []byte, out any, want ...int) (time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	start := time.Now()
	res, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%s %s: %w", method, path, err)
	}
	ok := false
	for _, w := range want {
		ok = ok || res.StatusCode == w
	}
	if !ok {
		return d, fmt.Errorf("%s %s: status %d, want %v: %.300s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return d, fmt.Errorf("%s %s: %w: %.300s", method, path, err, b)
		}
	}
	return d, nil
}

// The model of the directory Entra provisions: what the client sent, plus the ids it got.

type benchUser struct {
	id, userName, externalID, given, family, dept string
	manager                                       int // index of the manager, -1 for none
	active                                        bool
}

type benchGroup struct {
	id, name, externalID string
	members              []int
}

type benchModel struct {
	users  []*benchUser
	groups []*benchGroup
}

var (
	benchGiven  = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus"}
	benchFamily = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Wirth"}
	benchDepts  = []string{"Research", "Sales", "Finance", "Legal", "Support", "Marketing", "Operations", "Engineering"}
)

// newBenchModel builds the profile's directory deterministically: user i reports to user i/10
// (users 0..9 to no one), group g has 1..2·avg−1 members (avg on average) drawn at random.
func newBenchModel(p benchProfile) *benchModel {
	m := &benchModel{}
	for i := range p.Users {
		g, f := benchGiven[i%len(benchGiven)], benchFamily[(i/len(benchGiven))%len(benchFamily)]
		u := &benchUser{
			userName: fmt.Sprintf("%s.%s%07d@Contoso.example", g, f, i), externalID: fmt.Sprintf("%s%07d", strings.ToLower(g), i),
			given: g, family: f, dept: benchDepts[i%len(benchDepts)], manager: -1, active: true,
		}
		if i >= 10 {
			u.manager = i / 10
		}
		m.users = append(m.users, u)
	}
	rng := rand.New(rand.NewPCG(20261126, 7))
	spread := max(2*p.MembersAvg-1, 1)
	for g := range p.Groups {
		grp := &benchGroup{name: fmt.Sprintf("Team %05d", g), externalID: fmt.Sprintf("grp-%05d", g)}
		size := min(1+(g*7919)%spread, p.Users)
		seen := map[int]bool{}
		for len(grp.members) < size {
			if i := rng.IntN(p.Users); !seen[i] {
				seen[i] = true
				grp.members = append(grp.members, i)
			}
		}
		m.groups = append(m.groups, grp)
	}
	return m
}

// Request bodies, shaped as Entra sends them (docs/entra-scim.md §4).

type benchSCIMUser struct {
	Schemas     []string            `json:"schemas"`
	ExternalID  string              `json:"externalId"`
	UserName    string              `json:"userName"`
	Active      bool                `json:"active"`
	DisplayName string              `json:"displayName"`
	Title       *string             `json:"title"` // Entra sends null for an unmapped attribute
	Emails      []benchSCIMEmail    `json:"emails"`
	Name        benchSCIMName       `json:"name"`
	Meta        map[string]string   `json:"meta"`
	Roles       []any               `json:"roles"`
	Enterprise  benchSCIMEnterprise `json:"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`
}

type benchSCIMEmail struct {
	Primary bool   `json:"primary"`
	Type    string `json:"type"`
	Value   string `json:"value"`
}

type benchSCIMName struct {
	Formatted  string `json:"formatted"`
	FamilyName string `json:"familyName"`
	GivenName  string `json:"givenName"`
}

type benchSCIMEnterprise struct {
	Department     string `json:"department"`
	EmployeeNumber string `json:"employeeNumber,omitempty"`
}

func (u *benchUser) createBody(i int) []byte {
	b, _ := json.Marshal(benchSCIMUser{
		Schemas: []string{scimSchemaUser, scimSchemaEnt}, ExternalID: u.externalID, UserName: u.userName, Active: true,
		DisplayName: u.given + " " + u.family,
		Emails:      []benchSCIMEmail{{Primary: true, Type: "work", Value: strings.ToLower(u.userName)}},
		Name:        benchSCIMName{Formatted: u.given + " " + u.family, FamilyName: u.family, GivenName: u.given},
		Meta:        map[string]string{"resourceType": "User"}, Roles: []any{},
		Enterprise: benchSCIMEnterprise{Department: u.dept, EmployeeNumber: fmt.Sprint(100000 + i)},
	})
	return b
}

type benchSCIMOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

func benchPatchBody(ops ...benchSCIMOp) []byte {
	b, _ := json.Marshal(map[string]any{"schemas": []string{scimSchemaPatch}, "Operations": ops})
	return b
}

func benchFilterPath(resource, filter string, extra string) string {
	p := "/" + resource + "?filter=" + url.QueryEscape(filter)
	if extra != "" {
		p += "&" + extra
	}
	return p
}

type benchSCIMList struct {
	TotalResults int `json:"totalResults"`
}

type benchSCIMID struct {
	ID string `json:"id"`
}

// benchCycle runs provisioning steps against one server.
type benchCycle struct {
	c    *benchClient
	m    *benchModel
	conc int
	bar  func(label string, total int) *cli.Progress
	// onStep, if set, is called as each step starts, with its label (diagnostics).
	onStep func(label string)
}

// benchStep is one step of a cycle: its wall time and the latencies of its requests.
type benchStep struct {
	Name     string
	Elapsed  time.Duration
	Samples  benchSamples
	Requests int
}

// parallel runs job(0..n-1) on the cycle's workers. It stops handing out jobs after 20
// failures and returns the first few.
func (cy *benchCycle) parallel(ctx context.Context, label string, n int, job func(i int, s benchSamples) error) (benchStep, error) {
	if cy.onStep != nil {
		cy.onStep(label)
	}
	bar := cy.bar(label, n)
	var done atomic.Int64
	var mu sync.Mutex
	var errs []error
	failures := atomic.Int64{}
	all := benchSamples{}
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range cy.conc {
		wg.Go(func() {
			s := benchSamples{}
			for i := range next {
				if failures.Load() >= 20 || ctx.Err() != nil {
					continue
				}
				if err := job(i, s); err != nil {
					failures.Add(1)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				bar.Update(uint64(done.Add(1)), uint64(n))
			}
			mu.Lock()
			all.merge(s)
			mu.Unlock()
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	st := benchStep{Name: label, Elapsed: time.Since(start), Samples: all}
	bar.Update(uint64(n), uint64(n))
	bar.Done()
	for _, ds := range all {
		st.Requests += len(ds)
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("%s: %d failed jobs; first: %w", label, len(errs), errors.Join(errs[:min(len(errs), 3)]...))
	}
	return st, ctx.Err()
}

// initial runs Entra's initial cycle: every user matched (GET filter, none found) and
// created (POST); every group matched and created empty, then filled by PATCHes of at most 25
// members; then every manager written by PATCH, once both users exist.
func (cy *benchCycle) initial(ctx context.Context, label string) ([]benchStep, error) {
	var steps []benchStep
	for _, ph := range cy.initialPhases(ctx) {
		st, err := cy.parallel(ctx, label+" "+ph.name, ph.n, ph.job)
		steps = append(steps, st)
		if err != nil {
			return steps, err
		}
	}
	return steps, nil
}

// A benchPhase is one step of a cycle: job(i) for each of its n items, in any order.
type benchPhase struct {
	name string
	n    int
	job  func(i int, s benchSamples) error
}

// initialPhases returns the steps of the initial cycle, each to run once the one before it
// is done.
func (cy *benchCycle) initialPhases(ctx context.Context) []benchPhase {
	m := cy.m
	return []benchPhase{{"users", len(m.users), func(i int, s benchSamples) error {
		u := m.users[i]
		var list benchSCIMList
		d, err := cy.c.do(ctx, "GET", benchFilterPath("Users", fmt.Sprintf("userName eq %q", u.userName), ""), nil, &list, 200)
		if err != nil {
			return err
		}
		s.add(opGetUserFilter, d)
		if list.TotalResults != 0 {
			return fmt.Errorf("match for new user %s: totalResults %d", u.userName, list.TotalResults)
		}
		var id benchSCIMID
		d, err = cy.c.do(ctx, "POST", "/Users", u.createBody(i), &id, 201)
		if err != nil {
			return err
		}
		s.add(opPostUser, d)
		if id.ID == "" {
			return fmt.Errorf("create %s: no id", u.userName)
		}
		u.id = id.ID
		return nil
	}}, {"groups", len(m.groups), func(g int, s benchSamples) error {
		grp := m.groups[g]
		var list benchSCIMList
		d, err := cy.c.do(ctx, "GET", benchFilterPath("Groups", fmt.Sprintf("displayName eq %q", grp.name), "excludedAttributes=members"), nil, &list, 200)
		if err != nil {
			return err
		}
		s.add(opGetGroupFilter, d)
		if list.TotalResults != 0 {
			return fmt.Errorf("match for new group %s: totalResults %d", grp.name, list.TotalResults)
		}
		body, _ := json.Marshal(map[string]any{"schemas": []string{scimSchemaGroup}, "displayName": grp.name,
			"externalId": grp.externalID, "members": []any{}})
		var id benchSCIMID
		d, err = cy.c.do(ctx, "POST", "/Groups", body, &id, 201)
		if err != nil {
			return err
		}
		s.add(opPostGroup, d)
		grp.id = id.ID
		return nil
	}}, {"members", len(m.groups), func(g int, s benchSamples) error {
		// One worker per group, its chunks in order (as one Entra job sends them).
		grp := m.groups[g]
		for start := 0; start < len(grp.members); start += 25 {
			chunk := grp.members[start:min(start+25, len(grp.members))]
			var ops []benchSCIMOp
			for k := 0; k < len(chunk); k += 10 {
				var vals []map[string]any
				for _, i := range chunk[k:min(k+10, len(chunk))] {
					vals = append(vals, map[string]any{"value": m.users[i].id})
				}
				ops = append(ops, benchSCIMOp{Op: "Add", Path: "members", Value: vals})
			}
			d, err := cy.c.do(ctx, "PATCH", "/Groups/"+grp.id, benchPatchBody(ops...), nil, 204, 200)
			if err != nil {
				return err
			}
			s.add(opPatchMembers, d)
		}
		return nil
	}}, {"managers", len(m.users), func(i int, s benchSamples) error {
		u := m.users[i]
		if u.manager < 0 {
			return nil
		}
		mgr := m.users[u.manager].id
		var op benchSCIMOp
		switch i % 3 { // the three shapes Entra uses (docs/entra-scim.md §4.4)
		case 0:
			op = benchSCIMOp{Op: "Add", Path: "manager", Value: []any{map[string]any{"$ref": cy.c.base + "/Users/" + mgr, "value": mgr}}}
		case 1:
			op = benchSCIMOp{Op: "add", Path: scimSchemaEnt + ":manager", Value: mgr}
		default:
			op = benchSCIMOp{Op: "replace", Path: scimSchemaEnt + ":manager", Value: map[string]any{"value": mgr}}
		}
		d, err := cy.c.do(ctx, "PATCH", "/Users/"+u.id, benchPatchBody(op), nil, 204, 200)
		if err != nil {
			return err
		}
		s.add(opPatchManager, d)
		return nil
	}}}
}

// incremental runs an incremental cycle: 5 % of users get attribute changes, 2 % are
// disabled, 1 % renamed (userName), 10 % of groups change members (3 added, 2 removed) and
// 2 % are renamed. Each user change reads the user by its cached id first.
func (cy *benchCycle) incremental(ctx context.Context, label string, p benchProfile) (benchStep, error) {
	m := cy.m
	rng := rand.New(rand.NewPCG(20261126, 9))
	perm := rng.Perm(len(m.users))
	take := func(pct float64) []int {
		n := min(max(int(float64(len(m.users))*pct/100), 1), len(perm))
		s := perm[:n]
		perm = perm[n:]
		return s
	}
	type job struct {
		kind string
		i, n int
	}
	var jobs []job
	for n, i := range take(p.IncPatchPct) {
		jobs = append(jobs, job{"update", i, n})
	}
	for n, i := range take(p.IncDisablePct) {
		jobs = append(jobs, job{"disable", i, n})
	}
	for n, i := range take(p.IncRenamePct) {
		jobs = append(jobs, job{"rename", i, n})
	}
	grng := rand.New(rand.NewPCG(20261126, 10))
	gperm := grng.Perm(len(m.groups))
	nMember := min(max(len(m.groups)*p.IncGroupPct/100, 1), len(gperm))
	for n, g := range gperm[:nMember] {
		jobs = append(jobs, job{"members", g, n})
	}
	nRename := min(max(len(m.groups)*2/100, 1), len(gperm)-nMember)
	for n, g := range gperm[nMember : nMember+nRename] {
		jobs = append(jobs, job{"group-rename", g, n})
	}
	rng.Shuffle(len(jobs), func(a, b int) { jobs[a], jobs[b] = jobs[b], jobs[a] })

	return cy.parallel(ctx, label, len(jobs), func(j int, s benchSamples) error {
		jb := jobs[j]
		switch jb.kind {
		case "members":
			grp := m.groups[jb.i]
			in := map[int]bool{}
			for _, i := range grp.members {
				in[i] = true
			}
			var add []map[string]any
			r := rand.New(rand.NewPCG(uint64(jb.i), 3))
			for len(add) < 3 {
				if i := r.IntN(len(m.users)); !in[i] {
					in[i] = true
					add = append(add, map[string]any{"value": m.users[i].id})
					grp.members = append(grp.members, i)
				}
			}
			d, err := cy.c.do(ctx, "PATCH", "/Groups/"+grp.id, benchPatchBody(benchSCIMOp{Op: "Add", Path: "members", Value: add}), nil, 204, 200)
			if err != nil {
				return err
			}
			s.add(opPatchGrpMember, d)
			var rm []map[string]any
			for _, i := range grp.members[:min(2, len(grp.members)-3)] {
				rm = append(rm, map[string]any{"value": m.users[i].id})
			}
			if len(rm) == 0 {
				return nil
			}
			grp.members = grp.members[len(rm):]
			d, err = cy.c.do(ctx, "PATCH", "/Groups/"+grp.id, benchPatchBody(benchSCIMOp{Op: "Remove", Path: "members", Value: rm}), nil, 204, 200)
			if err != nil {
				return err
			}
			s.add(opPatchGrpMember, d)
			return nil
		case "group-rename":
			grp := m.groups[jb.i]
			grp.name += " (renamed)"
			d, err := cy.c.do(ctx, "PATCH", "/Groups/"+grp.id, benchPatchBody(benchSCIMOp{Op: "Replace", Path: "displayName", Value: grp.name}), nil, 204, 200)
			if err != nil {
				return err
			}
			s.add(opPatchGrpName, d)
			return nil
		}
		u := m.users[jb.i]
		d, err := cy.c.do(ctx, "GET", "/Users/"+u.id, nil, nil, 200)
		if err != nil {
			return err
		}
		s.add(opGetUser, d)
		var body []byte
		op := opPatchAttrs
		switch jb.kind {
		case "update":
			family := u.family + "-Smith"
			dept := benchDepts[(jb.i+3)%len(benchDepts)]
			email := fmt.Sprintf("updated.%07d@contoso.example", jb.i)
			if jb.n%2 == 0 { // default dialect, one op per attribute
				body = benchPatchBody(
					benchSCIMOp{Op: "Replace", Path: "displayName", Value: u.given + " " + family},
					benchSCIMOp{Op: "Replace", Path: "name.familyName", Value: family},
					benchSCIMOp{Op: "Replace", Path: scimSchemaEnt + ":department", Value: dept},
					benchSCIMOp{Op: "Replace", Path: `emails[type eq "work"].value`, Value: email})
			} else { // aadOptscim062020: a filtered op plus a no-path replace
				body = benchPatchBody(
					benchSCIMOp{Op: "replace", Path: `emails[type eq "work"].value`, Value: email},
					benchSCIMOp{Op: "replace", Value: map[string]any{"displayName": u.given + " " + family, "name.familyName": family,
						scimSchemaEnt + ":department": dept}})
			}
			u.family, u.dept = family, dept
		case "disable":
			op = opPatchDisable
			body = benchPatchBody(benchSCIMOp{Op: "Replace", Path: "active", Value: "False"})
			u.active = false
		case "rename":
			op = opPatchRename
			name := fmt.Sprintf("renamed.%07d@Contoso.example", jb.i)
			body = benchPatchBody(benchSCIMOp{Op: "Replace", Path: "userName", Value: name})
			u.userName = name
		}
		d, err = cy.c.do(ctx, "PATCH", "/Users/"+u.id, body, nil, 204, 200)
		if err != nil {
			return err
		}
		s.add(op, d)
		return nil
	})
}
