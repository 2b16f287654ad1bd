package egress

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Control is a net.Dialer's Control function: it sees the address a
// connection goes to after the name was resolved.
type Control = func(network, address string, c syscall.RawConn) error

// ErrAddressDenied is a connection to an address the policy denies.
var ErrAddressDenied = errors.New("connection refused by the operator's egress policy")

// metadataV6 is the instance metadata service of AWS over IPv6.
var metadataV6 = net.ParseIP("fd00:ec2::254")

// Control checks, at connect time, the address a connection of the
// manager (or of an in-process run) goes to: whatever name was asked
// for, the address it resolved to must not be a loopback, link-local
// (where cloud metadata services answer, 169.254.169.254) or
// unspecified address, unless a CIDR or address of the policy lists it.
// The nil Policy denies them too.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil // not an IP connection (a Unix socket)
	}
	return p.AllowAddress(ip)
}

// AllowAddress checks one resolved address (see Control).
func (p *Policy) AllowAddress(ip net.IP) error {
	if p != nil {
		for _, n := range p.nets {
			if n.Contains(ip) {
				return nil
			}
		}
	}
	var kind string
	switch {
	case ip.IsLoopback():
		kind = "a loopback address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		kind = "a link-local address, where cloud metadata services answer"
	case ip.Equal(metadataV6):
		kind = "the cloud metadata service"
	case ip.IsUnspecified():
		kind = "the unspecified address"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s is %s; an operator lists it in --allowed-hosts to allow it", ErrAddressDenied, ip, kind)
}
