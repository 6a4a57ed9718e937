package httpapi

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Lock-outs of the console's credentials (README, "Credentials"). The secrets themselves carry
// 256 random bits and cannot be guessed; what a lock-out stops is a source hammering the console
// with setup-link secrets or session cookies (a scanner, a script replaying a stolen list): after
// Failures refused credentials of one kind from one source within Window, that source gets 429
// with Retry-After for that kind until the window that started with its first failure ends.
// A source is the client address (IPv6 by its /64, which one host usually holds whole).
//
// The bearer APIs have no such lock-out on purpose: Entra calls from shared Azure addresses,
// so refusing an address for bad tokens would let anyone there stop every company's
// provisioning; their failures are only counted (idledger_auth_failures_total).

// LockoutConfig bounds refused console credentials per source; the zero value gives the
// defaults.
type LockoutConfig struct {
	// Failures is how many refused credentials of one kind a source may present within Window
	// before it is locked out (default 10).
	Failures int
	// Window is how long failures are counted, from the first (default 15 minutes).
	Window time.Duration
}

// Kinds of console credentials a lock-out counts apart.
const (
	lockSetup   = "setup_link"      // secrets presented at /console/setup/{secret}
	lockConsole = "console_session" // console session cookies
)

// lockoutSources bounds the sources tracked at once; beyond it expired entries are swept, and
// if none has expired the new source is not tracked (counted, not refused).
const lockoutSources = 100_000

// lockout counts refused credentials per kind and source. It is safe for concurrent use.
type lockout struct {
	failures int
	window   time.Duration
	now      func() time.Time

	mu      sync.Mutex // guards sources
	sources map[string]*failureRun
}

// failureRun is a source's refused credentials of one kind since since.
type failureRun struct {
	n     int
	since time.Time
}

func newLockout(cfg LockoutConfig, now func() time.Time) *lockout {
	if cfg.Failures <= 0 {
		cfg.Failures = 10
	}
	if cfg.Window <= 0 {
		cfg.Window = 15 * time.Minute
	}
	return &lockout{failures: cfg.Failures, window: cfg.Window, now: now, sources: make(map[string]*failureRun)}
}

// sourceKey is the key of a kind of credential from a source address.
func sourceKey(kind, source string) string {
	if ip := net.ParseIP(source); ip != nil && ip.To4() == nil {
		source = ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return kind + "|" + source
}

// locked reports whether the source is locked out for the kind, and for how long still.
func (l *lockout) locked(kind, source string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.sources[sourceKey(kind, source)]
	if r == nil || r.n < l.failures {
		return false, 0
	}
	left := r.since.Add(l.window).Sub(now)
	return left > 0, left
}

// fail counts one refused credential of the kind from the source.
func (l *lockout) fail(kind, source string) {
	now := l.now()
	k := sourceKey(kind, source)
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.sources[k]
	if r != nil && now.Sub(r.since) >= l.window {
		r = nil // the window is over: a new run starts
	}
	if r == nil {
		if len(l.sources) >= lockoutSources && !l.sweep(now) {
			return
		}
		r = &failureRun{since: now}
		l.sources[k] = r
	}
	r.n++
}

// sweep drops the runs whose window is over and reports whether there is room for another.
func (l *lockout) sweep(now time.Time) bool {
	for k, r := range l.sources {
		if now.Sub(r.since) >= l.window {
			delete(l.sources, k)
		}
	}
	return len(l.sources) < lockoutSources
}

// lockedOut answers 429 with Retry-After (an HTML page) and reports true when the request's
// source is locked out for the kind of console credential; the error is the answer's.
func (s *Server) lockedOut(c echo.Context, kind, source string) (bool, error) {
	locked, left := s.console.lockout.locked(kind, source)
	if !locked {
		return false, nil
	}
	s.metrics.authFailed(kind, authLockedOut)
	secs := max(int(math.Ceil(left.Seconds())), 1)
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return true, consoleMessage(c, http.StatusTooManyRequests, "Too many attempts", nil,
		"Too many links or sessions that are not valid came from your address. Wait "+strconv.Itoa(secs)+" seconds and try again.")
}

// consoleAuthFailed counts a refused console credential in the metrics (by kind and reason,
// never the secret) and against the source's lock-out.
func (s *Server) consoleAuthFailed(kind, source, reason string) {
	s.metrics.authFailed(kind, reason)
	s.console.lockout.fail(kind, source)
}
