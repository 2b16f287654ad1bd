// Package egress decides which hosts the manager itself may connect to.
// The manager makes these requests to addresses that users write into
// objects: the readiness check of a UserDirectory (SCIM, LDAP,
// PostgreSQL), a schedule's look at its source (the HEAD request of an
// HTTP source, the listing of an SFTP folder or S3 prefix), and the move
// or deletion of an SFTP or S3 file after its import. What comes back
// (reachable or not, a status code) is visible in status, so
// an unrestricted manager lets anyone who may create these objects probe
// the network from the manager's pod. The manager's --allowed-hosts flag
// restricts these checks; a NetworkPolicy (config/network-policy)
// restricts them again at the network. Imports themselves run in Jobs,
// which this does not govern.
package egress

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Policy lists the hosts allowed. The nil Policy allows every host
// name; at connect time it still refuses loopback, link-local and
// metadata addresses (Control).
type Policy struct {
	anyName  bool     // "*": every host name
	names    []string // exact host names, lower case
	suffixes []string // from "*.example.com": ".example.com"
	nets     []*net.IPNet
}

// Parse reads a comma-separated list of host names, wildcards
// ("*.corp.example", or "*" for every name) and CIDRs ("10.0.0.0/8"). An
// empty list is nil: every host name allowed. A CIDR or an address also
// allows connections to the loopback or link-local addresses it covers,
// which are otherwise refused at connect time.
func Parse(list string) (*Policy, error) {
	list = strings.TrimSpace(list)
	if list == "" {
		return nil, nil
	}
	p := &Policy{}
	for _, e := range strings.Split(list, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		ip := net.ParseIP(e)
		switch {
		case e == "":
			continue
		case e == "*":
			p.anyName = true
		case strings.Contains(e, "/"):
			_, n, err := net.ParseCIDR(e)
			if err != nil {
				return nil, fmt.Errorf("allowed host %q: not a CIDR: %w", e, err)
			}
			p.nets = append(p.nets, n)
		case strings.HasPrefix(e, "*."):
			p.suffixes = append(p.suffixes, e[1:])
		case ip != nil:
			bits := 32
			if ip.To4() == nil {
				bits = 128
			}
			p.nets = append(p.nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		case strings.ContainsAny(e, "*:/ "):
			return nil, fmt.Errorf("allowed host %q: want a host name, *.domain or a CIDR", e)
		default:
			p.names = append(p.names, e)
		}
	}
	return p, nil
}

// Allow returns nil when host (a name or an IP, without port) may be
// connected to, and otherwise an error that names it.
func (p *Policy) Allow(host string) error {
	if p == nil || p.anyName {
		return nil
	}
	h := strings.ToLower(strings.Trim(host, "[]"))
	if ip := net.ParseIP(h); ip != nil {
		for _, n := range p.nets {
			if n.Contains(ip) {
				return nil
			}
		}
	} else {
		for _, n := range p.names {
			if h == n {
				return nil
			}
		}
		for _, s := range p.suffixes {
			if strings.HasSuffix(h, s) {
				return nil
			}
		}
	}
	return fmt.Errorf("host %s is not among the manager's --allowed-hosts", host)
}

// AllowURL checks the host of a URL.
func (p *Policy) AllowURL(raw string) error {
	if p == nil {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("%q is not a URL with a host", raw)
	}
	return p.Allow(u.Hostname())
}

// AllowSource checks the server of an sftp or s3 source (AWS's regional
// endpoint when s3 names none); other sources need no check here.
func (p *Policy) AllowSource(src v1alpha1.ImportSource) error {
	if p == nil {
		return nil
	}
	switch {
	case src.SFTP != nil:
		if err := p.Allow(src.SFTP.Host); err != nil {
			return fmt.Errorf("spec.source.sftp.host: %w", err)
		}
	case src.S3 != nil && src.S3.Endpoint != "":
		if err := p.AllowURL(src.S3.Endpoint); err != nil {
			return fmt.Errorf("spec.source.s3.endpoint: %w", err)
		}
	case src.S3 != nil:
		region := src.S3.Region
		if region == "" {
			region = "us-east-1"
		}
		if err := p.Allow("s3." + region + ".amazonaws.com"); err != nil {
			return fmt.Errorf("spec.source.s3: %w", err)
		}
	}
	return nil
}

// AllowDirectory checks the hosts the check of a UserDirectory connects
// to; dsn is the SQL directory's connection string, read from its
// Secret. SQLite is a file: no host.
func (p *Policy) AllowDirectory(spec v1alpha1.UserDirectorySpec, dsn func() (string, error)) error {
	if p == nil {
		return nil
	}
	switch {
	case spec.SCIM != nil:
		if err := p.AllowURL(spec.SCIM.URL); err != nil {
			return fmt.Errorf("spec.scim.url: %w", err)
		}
		if o := spec.SCIM.Auth.OAuth2; o != nil {
			if err := p.AllowURL(o.TokenURL); err != nil {
				return fmt.Errorf("spec.scim.auth.oauth2.tokenURL: %w", err)
			}
		}
	case spec.LDAP != nil:
		if err := p.AllowURL(spec.LDAP.URL); err != nil {
			return fmt.Errorf("spec.ldap.url: %w", err)
		}
	case spec.SQL != nil && spec.SQL.Driver == v1alpha1.SQLDriverPostgres:
		s, err := dsn()
		if err != nil {
			return err
		}
		cfg, err := pgx.ParseConfig(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("spec.sql.dsn: not a valid PostgreSQL connection string")
		}
		hosts := []string{cfg.Host}
		for _, f := range cfg.Fallbacks {
			hosts = append(hosts, f.Host)
		}
		for _, h := range hosts {
			if strings.HasPrefix(h, "/") {
				continue // a Unix socket
			}
			if err := p.Allow(h); err != nil {
				return fmt.Errorf("spec.sql.dsn: %w", err)
			}
		}
	}
	return nil
}
