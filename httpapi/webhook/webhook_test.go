package webhook

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
)

// TestSignStandardWebhooksVector reproduces the Standard Webhooks specification's published
// test vector: any of its libraries verifies idledger's deliveries.
func TestSignStandardWebhooksVector(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	at := time.Unix(1614265330, 0)
	sig, err := Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", at, body)
	if err != nil || sig != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("Sign = %q, %v", sig, err)
	}
	if err := Verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,bogus "+sig, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("Verify of the vector: %v", err)
	}
	for name, check := range map[string]error{
		"altered body": Verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, []byte(`{"test": 2432232315}`), at, time.Minute),
		"other id":     Verify(secret, "msg_other", "1614265330", sig, body, at, time.Minute),
		"stale":        Verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body, at.Add(time.Hour), 5*time.Minute),
	} {
		if check == nil {
			t.Errorf("%s verifies", name)
		}
	}
	if _, err := Sign("not-a-secret", "x", at, body); !errors.Is(err, ErrBadSecret) {
		t.Errorf("bad secret: %v", err)
	}
}

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, SecretPrefix))
	if !strings.HasPrefix(a, SecretPrefix) || err != nil || len(raw) != 32 || a == b {
		t.Errorf("secrets %q %q", a, b)
	}
}

func TestBlocked(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
		"100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fd00:ec2::254", "fe80::1", "fc00::1",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"} {
		if !Blocked(netip.MustParseAddr(s)) {
			t.Errorf("%s is not blocked", s)
		}
	}
	for _, s := range []string{"93.184.215.14", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:82b::200e"} {
		if Blocked(netip.MustParseAddr(s)) {
			t.Errorf("%s is blocked", s)
		}
	}
	if err := dialControl("tcp", "127.0.0.1:443", nil); !errors.Is(err, ErrBlocked) {
		t.Errorf("dialControl(127.0.0.1) = %v", err)
	}
	if err := dialControl("tcp", "[2606:4700:4700::1111]:443", nil); err != nil {
		t.Errorf("dialControl(public) = %v", err)
	}
}

func TestCheckHost(t *testing.T) {
	ctx := context.Background()
	for _, host := range []string{"127.0.0.1", "localhost", "::1", "10.1.1.1"} {
		if err := CheckHost(ctx, net.DefaultResolver, host); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("CheckHost(%s) = %v, want ErrInvalid", host, err)
		}
	}
	if err := CheckHost(ctx, net.DefaultResolver, "name.invalid"); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("an unresolvable name: %v", err)
	}
	if err := CheckHost(ctx, net.DefaultResolver, "93.184.215.14"); err != nil {
		t.Errorf("a public address: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	d := New(Config{FirstRetry: time.Second, MaxRetryDelay: 30 * time.Second})
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		for range 20 {
			if got := d.backoff(n); got < want*8/10 || got > want*12/10 {
				t.Fatalf("backoff(%d) = %s, want %s ± 20 %%", n, got, want)
			}
		}
	}
}
