// Package ldap is the directory provider for LDAP servers (OpenLDAP, Active
// Directory and others speaking LDAPv3).
//
// Attributes are named by their LDAP attribute types ("uid", "cn", "sn",
// "givenName", "mail", "displayName", "title", "employeeNumber",
// "departmentNumber", "telephoneNumber", ...). Names are compared without
// regard to case, and users are returned with the attribute names the
// caller asked for, so that what Apply wrote and what List reads back
// compare equal.
//
// A user is created as rdnAttribute=value,usersBaseDN with the configured
// objectClasses and the managed-user marker. The object classes person,
// organizationalPerson and inetOrgPerson require cn and sn: when an import
// does not map them, or maps them to an empty value, both are set to the
// user's identity (documented in the UserDirectory reference), so that the
// entry is valid; a mapping that provides them wins.
//
// The marker attribute must be an attribute type of the server's schema
// that the object classes allow, such as "businessCategory" or
// "description". The API's default, "userImportManagedBy", exists in no
// standard schema: Check reports SchemaMismatch for it.
//
// Deactivation follows spec.disable: either an attribute set to a value
// (employeeType=disabled by default), removed again on reactivation, or a
// move of the entry to the moveToDN container and back to usersBaseDN.
//
// Values are written and read as strings, empty values dropped: an
// attribute mapped to an empty value is absent from the entry. Servers
// keep values as written, with one exception to know about: OpenLDAP
// rewrites DN-valued attributes (manager, secretary) in its own spelling,
// so map them already in the form "uid=x,ou=people,dc=example,dc=com"
// (no spaces after commas) or every run updates them again.
//
// Writes are idempotent so that a resumed import may replay rows: a
// create whose entry exists becomes an update when the entry is managed
// (or the scope is All), a delete of a missing entry succeeds, and a move
// whose entry is already at its target succeeds.
package ldap

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/time/rate"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/credentials"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
)

// Defaults of the API that a spec read outside the API server (tests, the
// local executor) may lack.
const (
	defaultUserFilter   = "(objectClass=inetOrgPerson)"
	defaultRDNAttribute = "uid"
	defaultPageSize     = 500
	defaultDisableAttr  = "employeeType"
	defaultDisableValue = "disabled"
	defaultMarkerValue  = "user-import-operator"
	defaultMaxRetries   = 3

	// minInFlight is the least number of changes in flight at once, over
	// all batches, whatever the concurrency: LDAP answers requests on one
	// connection out of order, so even one batch at a time keeps the
	// server busy instead of waiting a round trip per change. More would
	// only make the server's writers contend (its database takes one
	// write at a time).
	minInFlight = 4
	// lookupChunk is the number of identities per search filter.
	lookupChunk = 200
	dialTimeout = 10 * time.Second
	// defaultRequestTimeout bounds the wait for one answer (a page of a
	// search, one write) when the options give no timeout.
	defaultRequestTimeout = 30 * time.Second
)

var defaultObjectClasses = []string{"inetOrgPerson", "organizationalPerson", "person", "top"}

// validAttrName tells whether name is an attribute description: a
// descriptor ("givenName") or an OID ("2.5.4.42"), with options such as
// ";lang-de". It runs for every attribute of every write, hence no regexp.
func validAttrName(name string) bool {
	typ, options, _ := strings.Cut(name, ";")
	if typ == "" {
		return false
	}
	if isDigit(typ[0]) {
		// numericoid: digits separated by single dots.
		prevDot := true
		for i := 0; i < len(typ); i++ {
			switch c := typ[i]; {
			case c == '.' && !prevDot:
				prevDot = true
			case isDigit(c):
				prevDot = false
			default:
				return false
			}
		}
		if prevDot || !strings.Contains(typ, ".") {
			return false
		}
	} else {
		for i := 0; i < len(typ); i++ {
			if c := typ[i]; !isLetter(c) && (i == 0 || !isDigit(c) && c != '-') {
				return false
			}
		}
	}
	if options == "" {
		return !strings.HasSuffix(name, ";")
	}
	for _, opt := range strings.Split(options, ";") {
		if opt == "" {
			return false
		}
		for i := 0; i < len(opt); i++ {
			if c := opt[i]; !isLetter(c) && !isDigit(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// Directory is an LDAP directory. It is safe for concurrent use.
type Directory struct {
	// dialControl checks each connection's address (Options.DialControl).
	dialControl func(network, address string, c syscall.RawConn) error
	url         *url.URL
	startTLS    bool
	tlsConfig   *tls.Config
	bindDN      string
	password    string

	usersBase     string
	usersBaseDN   *ldap.DN
	userFilter    string
	objectClasses []string
	rdnAttr       string
	pageSize      uint32

	disableAttr  string // attribute mode, when moveTo is empty
	disableValue string
	moveTo       string
	moveToDN     *ldap.DN

	groups *groups // nil without spec.groups

	identityAttr string
	markerAttr   string
	markerValue  string
	managedOnly  bool
	needsCNSN    bool

	// ad: the server is Active Directory (see ad.go).
	ad bool
	// fold is the key by which the server tells identities apart.
	fold func(string) string

	// inFlight holds the numbers of the slots for changes in flight: it
	// bounds them across batches, and gives each add a pipe of its own.
	inFlight   chan int
	maxRetries int
	// timeout bounds the wait for one answer; 0: defaultRequestTimeout.
	timeout time.Duration
	limiter *rate.Limiter
	pool    *pool[*ldap.Conn]
	pipes   *pool[*pipe] // for adds
}

var _ directory.Directory = (*Directory)(nil)

// New builds a Directory from its spec. It reads the bind password and CA
// bundle through secrets but does not connect: connections are made on
// first use, and Check tells whether the server answers.
func New(ctx context.Context, spec *v1alpha1.LDAPDirectory, opts directory.Options, secrets keyread.KeyReader) (*Directory, error) {
	if spec == nil {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap is not set")
	}
	u, err := url.Parse(spec.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.url %q must be an ldap:// or ldaps:// URL", spec.URL)
	}
	if spec.StartTLS && u.Scheme == "ldaps" {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.startTLS applies to ldap:// URLs only; %q is already TLS", spec.URL)
	}
	ad := spec.Vendor == v1alpha1.LDAPActiveDirectory
	userFilter, rdnAttr, objectClasses := defaultUserFilter, defaultRDNAttribute, defaultObjectClasses
	if ad {
		userFilter, rdnAttr, objectClasses = adUserFilter, adRDN, adObjectClasses
		if u.Scheme != "ldaps" && !spec.StartTLS {
			return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap: Active Directory takes passwords (unicodePwd) over TLS only, and an account without one cannot be enabled: use ldaps:// or startTLS: true")
		}
	}
	fold := directory.FoldCaseAndBlanks
	if ad {
		fold = directory.FoldUpperCaseAndSpaces
	}
	d := &Directory{
		ad:           ad,
		fold:         fold,
		dialControl:  opts.DialControl,
		url:          u,
		startTLS:     spec.StartTLS,
		bindDN:       spec.BindDN,
		usersBase:    spec.UsersBaseDN,
		userFilter:   orDefault(spec.UserFilter, userFilter),
		rdnAttr:      orDefault(spec.RDNAttribute, rdnAttr),
		pageSize:     defaultPageSize,
		identityAttr: orDefault(opts.IdentityAttribute, defaultRDNAttribute),
		markerAttr:   opts.MarkerAttribute,
		markerValue:  orDefault(opts.MarkerValue, defaultMarkerValue),
		managedOnly:  opts.ManagedOnly,
		maxRetries:   opts.MaxRetries,
		timeout:      opts.RequestTimeout,
		limiter:      rate.NewLimiter(rate.Inf, 1),
	}
	if spec.PageSize > 0 {
		d.pageSize = uint32(spec.PageSize)
	}
	if ad {
		// AD answers a larger page with MaxPageSize entries and a
		// cookie that may not resume where the page ended.
		d.pageSize = min(d.pageSize, adMaxPageSize)
	}
	if d.maxRetries <= 0 {
		d.maxRetries = defaultMaxRetries
	}
	if opts.RateLimit > 0 {
		d.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), opts.RateLimit)
	}
	d.objectClasses = spec.ObjectClasses
	if len(d.objectClasses) == 0 {
		d.objectClasses = objectClasses
	}
	for _, oc := range d.objectClasses {
		switch strings.ToLower(oc) {
		case "person", "organizationalperson", "inetorgperson":
			// AD's person requires cn only, its naming attribute.
			d.needsCNSN = !ad
		}
	}

	if d.usersBaseDN, err = ldap.ParseDN(spec.UsersBaseDN); err != nil || len(d.usersBaseDN.RDNs) == 0 {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.usersBaseDN %q is not a distinguished name", spec.UsersBaseDN)
	}
	if _, err := ldap.CompileFilter(d.userFilter); err != nil {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.userFilter %q is not an LDAP filter: %v", d.userFilter, err)
	}
	d.disableAttr, d.disableValue = defaultDisableAttr, defaultDisableValue
	if ad {
		// The account state is userAccountControl's ACCOUNTDISABLE bit,
		// whatever spec.disable says of an attribute; moveToDN moves the
		// disabled entry as well.
		d.disableAttr, d.disableValue = uacAttr, ""
		if dis := spec.Disable; dis != nil && dis.Attribute != "" && !sameAttr(dis.Attribute, uacAttr) {
			return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.disable.attribute %q: Active Directory disables an account with the ACCOUNTDISABLE bit of userAccountControl; leave attribute unset", dis.Attribute)
		}
	}
	if dis := spec.Disable; dis != nil && (!ad || dis.MoveToDN != "") {
		switch {
		case dis.MoveToDN != "":
			if !ad {
				d.disableAttr, d.disableValue = "", ""
			}
			d.moveTo = dis.MoveToDN
			if d.moveToDN, err = ldap.ParseDN(dis.MoveToDN); err != nil || len(d.moveToDN.RDNs) == 0 {
				return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.disable.moveToDN %q is not a distinguished name", dis.MoveToDN)
			}
			if d.usersBaseDN.EqualFold(d.moveToDN) {
				return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.disable.moveToDN must differ from usersBaseDN")
			}
		case dis.Attribute != "":
			d.disableAttr = dis.Attribute
			d.disableValue = orDefault(dis.Value, defaultDisableValue)
		}
	}
	for field, name := range map[string]string{
		"identityAttribute":            d.identityAttr,
		"spec.ldap.rdnAttribute":       d.rdnAttr,
		"managedUsers.markerAttribute": d.markerAttr,
		"spec.ldap.disable.attribute":  d.disableAttr,
	} {
		if name != "" && !validAttrName(name) {
			return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "%s %q is not an LDAP attribute name", field, name)
		}
	}
	if d.markerAttr == "" && d.managedOnly {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "managedUsers.markerAttribute is required when the scope is Managed")
	}

	if d.groups, err = newGroups(spec.Groups, ad); err != nil {
		return nil, err
	}

	pw, err := credentials.SecretValue(ctx, secrets, "spec.ldap.bindPassword", spec.BindPassword)
	if err != nil {
		return nil, err
	}
	d.password = strings.TrimRight(string(pw), "\r\n")

	host := u.Hostname()
	d.tlsConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if ref := spec.CABundle; ref != nil {
		roots, err := credentials.CertPool(ctx, secrets, "spec.ldap.caBundle", *ref)
		if err != nil {
			return nil, err
		}
		d.tlsConfig.RootCAs = roots
	}

	size := opts.Concurrency
	if size < 1 {
		size = 1
	}
	d.pool = newPool(size, d.dial)
	// A pipe per slot: slapd serialises much of the work of one
	// connection, so adds spread over several run faster.
	slots := max(size, minInFlight)
	d.pipes = newPool(slots, d.dialPipe)
	d.inFlight = make(chan int, slots)
	for i := range slots {
		d.inFlight <- i
	}
	return d, nil
}

// Close closes the pooled connections.
func (d *Directory) Close() error {
	d.pool.close()
	d.pipes.close()
	return nil
}

// requestTimeout bounds the wait for one answer: the option, or
// defaultRequestTimeout.
func (d *Directory) requestTimeout() time.Duration {
	if d.timeout > 0 {
		return d.timeout
	}
	return defaultRequestTimeout
}

// dial opens a connection, upgrades it with StartTLS when asked, and
// binds. Errors are *failure.Error with the reason a person acts on.
func (d *Directory) dial(ctx context.Context) (*ldap.Conn, error) {
	dialer := &net.Dialer{Timeout: dialTimeout, Control: d.dialControl}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < dialTimeout {
		dialer.Deadline = deadline
	}
	c, err := ldap.DialURL(d.url.String(), ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(d.tlsConfig))
	if err != nil {
		return nil, connectError(d.url.Host, err)
	}
	c.SetTimeout(d.requestTimeout())
	if d.startTLS {
		if err := c.StartTLS(d.tlsConfig); err != nil {
			c.Close()
			return nil, connectError(d.url.Host, err)
		}
	}
	if err := c.Bind(d.bindDN, d.password); err != nil {
		c.Close()
		return nil, d.bindError(err)
	}
	return c, nil
}

// bindError classifies a failed bind.
func (d *Directory) bindError(err error) error {
	if ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication) {
		return failure.Errorf(v1alpha1.ReasonAuthenticationFailed, "bind as %q: invalid credentials", d.bindDN)
	}
	if ldap.IsErrorAnyOf(err, ldap.LDAPResultConfidentialityRequired, ldap.LDAPResultStrongAuthRequired) {
		return failure.Errorf(v1alpha1.ReasonTLSError, "bind as %q: the server requires TLS (set startTLS or use ldaps://)", d.bindDN)
	}
	return connectError(d.url.Host, err)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// String describes the directory for logs, without credentials.
func (d *Directory) String() string {
	return fmt.Sprintf("ldap %s base %q", d.url.Redacted(), d.usersBase)
}
