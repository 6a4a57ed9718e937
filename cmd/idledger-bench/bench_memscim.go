package main

// The in-memory SCIM baseline of the bench: a minimal map-backed SCIM server for exactly the
// request mix of the Entra-like cycle, over the same HTTP stack on the same machine. It is a
// yardstick for the target "initial-cycle requests/s no lower than an in-memory SCIM server",
// NOT a product path: nothing is durable, there is no log, no projection, no schema checking
// beyond what the cycle needs, and it lives only in the bench.

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// memSCIM is the baseline server's state. One mutex guards everything.
type memSCIM struct {
	token string
	base  string

	mu         sync.RWMutex // guards the maps and version
	users      map[string]map[string]any
	userNames  map[string]string // folded userName → id
	groups     map[string]*memGroup
	groupNames map[string]string // folded displayName → id
	version    int64
}

type memGroup struct {
	res     map[string]any
	members map[string]bool
}

// startMemSCIM serves the baseline on a loopback port; stop closes it.
func startMemSCIM(token string) (base string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	s := &memSCIM{token: token, base: "http://" + ln.Addr().String() + "/scim/v2",
		users: map[string]map[string]any{}, userNames: map[string]string{},
		groups: map[string]*memGroup{}, groupNames: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /scim/v2/Users", s.listUsers)
	mux.HandleFunc("POST /scim/v2/Users", s.createUser)
	mux.HandleFunc("GET /scim/v2/Users/{id}", s.getUser)
	mux.HandleFunc("PATCH /scim/v2/Users/{id}", s.patchUser)
	mux.HandleFunc("GET /scim/v2/Groups", s.listGroups)
	mux.HandleFunc("POST /scim/v2/Groups", s.createGroup)
	mux.HandleFunc("PATCH /scim/v2/Groups/{id}", s.patchGroup)
	srv := &http.Server{Handler: s.auth(mux), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	return s.base, func() { srv.Close() }, nil
}

func (s *memSCIM) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
			memError(w, http.StatusUnauthorized, "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func memError(w http.ResponseWriter, status int, scimType string) {
	memJSON(w, status, map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"status": strconv.Itoa(status), "scimType": scimType})
}

func memJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	w.Write(b) //nolint:errcheck // the client's problem
}

// memEqFilter parses the one filter shape the cycle sends: attr eq "value".
func memEqFilter(r *http.Request, attr string) (string, error) {
	f := r.URL.Query().Get("filter")
	a, v, ok := strings.Cut(f, " eq ")
	if !ok || !strings.EqualFold(strings.TrimSpace(a), attr) {
		return "", errors.New("unsupported filter")
	}
	return strconv.Unquote(strings.TrimSpace(v))
}

func memReadJSON(r *http.Request) (map[string]any, error) {
	var m map[string]any
	err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(&m)
	return m, err
}

// stamp sets id and meta on a resource; the caller holds mu.
func (s *memSCIM) stamp(res map[string]any, typ, id string, created bool) {
	s.version++
	now := time.Now().UTC().Format(time.RFC3339Nano)
	meta, _ := res["meta"].(map[string]any)
	if meta == nil || created {
		meta = map[string]any{"resourceType": typ, "created": now, "location": s.base + "/" + typ + "s/" + id}
	}
	meta["lastModified"] = now
	meta["version"] = fmt.Sprintf(`W/"%d"`, s.version)
	res["id"], res["meta"] = id, meta
}

func memListOf(rs []any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
		"totalResults": len(rs), "startIndex": 1, "itemsPerPage": len(rs), "Resources": rs}
}

func (s *memSCIM) listUsers(w http.ResponseWriter, r *http.Request) {
	name, err := memEqFilter(r, "userName")
	if err != nil {
		memError(w, http.StatusBadRequest, "invalidFilter")
		return
	}
	s.mu.RLock()
	rs := []any{}
	if id, ok := s.userNames[strings.ToLower(name)]; ok {
		rs = append(rs, s.users[id])
	}
	b, _ := json.Marshal(memListOf(rs))
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "application/scim+json")
	w.Write(b) //nolint:errcheck
}

func (s *memSCIM) createUser(w http.ResponseWriter, r *http.Request) {
	res, err := memReadJSON(r)
	if err != nil {
		memError(w, http.StatusBadRequest, "invalidSyntax")
		return
	}
	name, _ := res["userName"].(string)
	if name == "" {
		memError(w, http.StatusBadRequest, "invalidValue")
		return
	}
	id := uuid.Must(uuid.NewV7()).String()
	s.mu.Lock()
	if _, taken := s.userNames[strings.ToLower(name)]; taken {
		s.mu.Unlock()
		memError(w, http.StatusConflict, "uniqueness")
		return
	}
	s.stamp(res, "User", id, true)
	s.users[id] = res
	s.userNames[strings.ToLower(name)] = id
	b, _ := json.Marshal(res)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/scim+json")
	w.Header().Set("Location", s.base+"/Users/"+id)
	w.WriteHeader(http.StatusCreated)
	w.Write(b) //nolint:errcheck
}

func (s *memSCIM) getUser(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	res, ok := s.users[r.PathValue("id")]
	var b []byte
	if ok {
		b, _ = json.Marshal(res)
	}
	s.mu.RUnlock()
	if !ok {
		memError(w, http.StatusNotFound, "")
		return
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.Write(b) //nolint:errcheck
}

type memPatch struct {
	Operations []struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	} `json:"Operations"`
}

func memReadPatch(r *http.Request) (memPatch, error) {
	var p memPatch
	err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(&p)
	return p, err
}

func (s *memSCIM) patchUser(w http.ResponseWriter, r *http.Request) {
	p, err := memReadPatch(r)
	if err != nil {
		memError(w, http.StatusBadRequest, "invalidSyntax")
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	res, ok := s.users[id]
	if !ok {
		memError(w, http.StatusNotFound, "")
		return
	}
	set := func(path string, v any) {
		if strings.EqualFold(path, "userName") {
			name, _ := v.(string)
			old, _ := res["userName"].(string)
			delete(s.userNames, strings.ToLower(old))
			s.userNames[strings.ToLower(name)] = id
		}
		res[path] = v
	}
	for _, op := range p.Operations {
		switch {
		case strings.EqualFold(op.Op, "remove"):
			delete(res, op.Path)
		case op.Path == "":
			obj, _ := op.Value.(map[string]any)
			for k, v := range obj {
				set(k, v)
			}
		default:
			set(op.Path, op.Value)
		}
	}
	s.stamp(res, "User", id, false)
	w.WriteHeader(http.StatusNoContent)
}

func (s *memSCIM) listGroups(w http.ResponseWriter, r *http.Request) {
	name, err := memEqFilter(r, "displayName")
	if err != nil {
		memError(w, http.StatusBadRequest, "invalidFilter")
		return
	}
	s.mu.RLock()
	rs := []any{}
	if id, ok := s.groupNames[strings.ToLower(name)]; ok {
		rs = append(rs, s.groups[id].res)
	}
	b, _ := json.Marshal(memListOf(rs))
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "application/scim+json")
	w.Write(b) //nolint:errcheck
}

func (s *memSCIM) createGroup(w http.ResponseWriter, r *http.Request) {
	res, err := memReadJSON(r)
	if err != nil {
		memError(w, http.StatusBadRequest, "invalidSyntax")
		return
	}
	name, _ := res["displayName"].(string)
	id := uuid.Must(uuid.NewV7()).String()
	delete(res, "members")
	s.mu.Lock()
	if _, taken := s.groupNames[strings.ToLower(name)]; taken {
		s.mu.Unlock()
		memError(w, http.StatusConflict, "uniqueness")
		return
	}
	s.stamp(res, "Group", id, true)
	s.groups[id] = &memGroup{res: res, members: map[string]bool{}}
	s.groupNames[strings.ToLower(name)] = id
	b, _ := json.Marshal(res)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(http.StatusCreated)
	w.Write(b) //nolint:errcheck
}

func (s *memSCIM) patchGroup(w http.ResponseWriter, r *http.Request) {
	p, err := memReadPatch(r)
	if err != nil {
		memError(w, http.StatusBadRequest, "invalidSyntax")
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[id]
	if !ok {
		memError(w, http.StatusNotFound, "")
		return
	}
	for _, op := range p.Operations {
		switch strings.ToLower(op.Path) {
		case "members":
			vals, _ := op.Value.([]any)
			for _, v := range vals {
				m, _ := v.(map[string]any)
				uid, _ := m["value"].(string)
				if _, known := s.users[uid]; !known {
					continue
				}
				if strings.EqualFold(op.Op, "remove") {
					delete(g.members, uid)
				} else {
					g.members[uid] = true
				}
			}
		case "displayname":
			name, _ := op.Value.(string)
			old, _ := g.res["displayName"].(string)
			delete(s.groupNames, strings.ToLower(old))
			s.groupNames[strings.ToLower(name)] = id
			g.res["displayName"] = name
		}
	}
	s.stamp(g.res, "Group", id, false)
	w.WriteHeader(http.StatusNoContent)
}
