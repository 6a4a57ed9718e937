package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/idledger/idledger/domain"
)

// blockedPrefixes are the address ranges a webhook may not reach unless the operator allows
// private addresses: this host, private networks, link-local ones (cloud metadata services
// live there: 169.254.169.254, fd00:ec2::254), carrier-grade NAT, and reserved ranges.
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
		"224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// Blocked reports whether a webhook may not be sent to ip (without the operator's
// allow-private switch).
func Blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ErrBlocked is wrapped by the errors of a request to a blocked address.
var ErrBlocked = errors.New("webhook: the address is not allowed")

// CheckHost resolves a URL's host and returns an error wrapping domain.ErrInvalid if it does
// not resolve or any of its addresses is blocked. The dialer checks again at delivery time
// (DNS may answer differently then).
func CheckHost(ctx context.Context, r *net.Resolver, host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		if Blocked(ip) {
			return domain.Errorf(domain.ErrInvalid, "url points to a loopback, private, link-local or reserved address")
		}
		return nil
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return domain.Errorf(domain.ErrInvalid, "url's host %q does not resolve", host)
	}
	for _, ip := range ips {
		if Blocked(ip) {
			return domain.Errorf(domain.ErrInvalid, "url's host resolves to a loopback, private, link-local or reserved address")
		}
	}
	return nil
}

// dialControl refuses a connection to a blocked address: it runs after name resolution, on
// the address actually dialled, so a name that resolves elsewhere at delivery time than at
// creation (DNS rebinding) is refused too.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlocked, address)
	}
	if Blocked(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrBlocked, ap.Addr())
	}
	return nil
}
