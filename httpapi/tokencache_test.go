package httpapi_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRotateTokenWhileInUse rotates a company's token while clients keep reading with it, so
// that the token is in the server's token cache: every request sent after the rotation has
// been answered is refused, and the new token works at once.
func TestRotateTokenWhileInUse(t *testing.T) {
	e := newTestEnv(t)
	tenant, old := e.tenant(t, "Acme")
	for range 3 { // warm the cache: no write between these reads
		if res := e.do(t, old, "GET", "/scim/v2/Users", ""); res.Status != http.StatusOK {
			t.Fatalf("GET with the token: %d %s", res.Status, res.Body)
		}
	}

	var rotated atomic.Int64                 // UnixNano when the rotation was answered; 0 before
	var answered, afterRotation atomic.Int64 // requests answered; of them, sent after the rotation
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent := time.Now().UnixNano()
				res := e.do(t, old, "GET", "/scim/v2/Users", "")
				at := rotated.Load()
				if at != 0 && sent > at && res.Status != http.StatusUnauthorized {
					t.Errorf("old token sent after the rotation answered: %d, want 401", res.Status)
					return
				}
				answered.Add(1)
				if at != 0 && sent > at {
					afterRotation.Add(1)
				}
			}
		})
	}
	eventually(t, 10*time.Second, "readers running with the old token", func() bool { return answered.Load() >= 8 })
	res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/rotate-token", "")
	rotated.Store(time.Now().UnixNano())
	if res.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", res.Status, res.Body)
	}
	fresh, _ := res.JSON(t)["scimToken"].(string)
	eventually(t, 10*time.Second, "old token refused to readers after the rotation", func() bool { return afterRotation.Load() >= 8 })
	close(stop)
	wg.Wait()
	if res := e.do(t, old, "GET", "/scim/v2/Users", ""); res.Status != http.StatusUnauthorized {
		t.Errorf("old token after the rotation = %d, want 401", res.Status)
	}
	for range 2 {
		if res := e.do(t, fresh, "GET", "/scim/v2/Users", ""); res.Status != http.StatusOK {
			t.Errorf("new token = %d, want 200: %s", res.Status, res.Body)
		}
	}
}
