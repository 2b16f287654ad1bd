package ldap

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// List calls fn for every user under usersBaseDN that matches userFilter
// (and carries the marker when the scope is Managed), then, when users are
// deactivated by moving them, for those under moveToDN, reported with
// Active false. Searches are paged by spec.pageSize. A transient failure
// before the first user is delivered is retried; after it, the listing
// fails rather than deliver users twice.
func (d *Directory) List(ctx context.Context, attributes []string, fn func(directory.User) error) error {
	filter := d.userFilter
	if d.managedOnly {
		filter = fmt.Sprintf("(&%s(%s=%s))", d.userFilter, d.markerAttr, ldap.EscapeFilter(d.markerValue))
	}
	wanted := d.searchAttributes(attributes)
	for _, base := range d.searchBases() {
		delivered := false
		err := d.do(ctx, func(c *ldap.Conn) error {
			if delivered {
				// Not a transient error any more: a restart would repeat users.
				return errRestart
			}
			return d.pagedSearch(ctx, c, base, filter, wanted, func(e *ldap.Entry) error {
				delivered = true
				return fn(d.toUser(e, attributes))
			})
		})
		if err != nil {
			if err == errRestart {
				return failure.Errorf(v1alpha1.ReasonUnreachable, "listing users under %q: connection lost mid-listing", base)
			}
			return d.readError("list users under "+base, err)
		}
	}
	return nil
}

var errRestart = fmt.Errorf("listing interrupted after users were delivered")

// pagedSearch runs a subtree search in pages and calls fn per entry.
func (d *Directory) pagedSearch(ctx context.Context, c *ldap.Conn, base, filter string, attrs []string, fn func(*ldap.Entry) error) error {
	paging := ldap.NewControlPaging(d.pageSize)
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, []ldap.Control{paging})
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := c.Search(req)
		if err != nil {
			return err
		}
		for _, e := range res.Entries {
			if err := fn(e); err != nil {
				return callbackError{err}
			}
		}
		ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if ctrl == nil || len(ctrl.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(ctrl.Cookie)
	}
}

// callbackError carries an error of the caller's fn through the retry
// loop untouched.
type callbackError struct{ err error }

// It does not unwrap, so that the retry loop never mistakes it for a
// failure of the connection.
func (e callbackError) Error() string { return e.err.Error() }

// Lookup finds users by identity with one search per chunk of identities,
// under usersBaseDN and moveToDN. The map is keyed by the identities as
// given; LDAP matches them as the schema says (uid ignores case).
func (d *Directory) Lookup(ctx context.Context, identities []string, attributes []string) (map[string]directory.User, error) {
	out := make(map[string]directory.User, len(identities))
	// Identities are matched by the server's fold; each spelling asked
	// for gets its key.
	want := make(map[string][]string, len(identities))
	ids := make([]string, 0, len(identities))
	for _, id := range identities {
		if id == "" {
			continue
		}
		key := d.fold(id)
		if _, seen := want[key]; !seen {
			ids = append(ids, id)
		}
		if !slices.Contains(want[key], id) {
			want[key] = append(want[key], id)
		}
	}
	wanted := d.searchAttributes(attributes)
	for start := 0; start < len(ids); start += lookupChunk {
		chunk := ids[start:min(start+lookupChunk, len(ids))]
		var f strings.Builder
		f.WriteString("(&")
		f.WriteString(d.userFilter)
		f.WriteString("(|")
		for _, id := range chunk {
			fmt.Fprintf(&f, "(%s=%s)", d.identityAttr, ldap.EscapeFilter(id))
		}
		f.WriteString("))")
		for _, base := range d.searchBases() {
			err := d.do(ctx, func(c *ldap.Conn) error {
				return d.pagedSearch(ctx, c, base, f.String(), wanted, func(e *ldap.Entry) error {
					u := d.toUser(e, attributes)
					for _, v := range entryValues(e, d.identityAttr) {
						u.Identity = v
						for _, key := range want[d.fold(v)] {
							// An active entry under usersBaseDN wins over
							// a stale copy under moveToDN.
							if prev, seen := out[key]; !seen || (!prev.Active && u.Active) {
								out[key] = u
							}
						}
					}
					return nil
				})
			})
			if err != nil {
				return nil, d.readError("look up users under "+base, err)
			}
		}
	}
	return out, nil
}

// IdentityFold is the fold of the server's string comparison, which the
// attributes users are identified by (uid, mail, cn, sAMAccountName,
// userPrincipalName, employeeNumber) use: directory.FoldCaseAndBlanks, as
// OpenLDAP prepares a directory string, or on Active Directory
// directory.FoldUpperCaseAndSpaces.
func (d *Directory) IdentityFold(context.Context) (func(string) string, error) {
	return d.fold, nil
}

// HasUnmanaged searches for one user, under the bases Lookup searches,
// that lacks the marker; the marker is matched as List matches it.
func (d *Directory) HasUnmanaged(ctx context.Context) (bool, error) {
	filter := fmt.Sprintf("(&%s(!(%s=%s)))", d.userFilter, d.markerAttr, ldap.EscapeFilter(d.markerValue))
	for _, base := range d.searchBases() {
		found := false
		err := d.do(ctx, func(c *ldap.Conn) error {
			res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false, filter, []string{"1.1"}, nil))
			if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
				found = true
				return nil
			}
			found = err == nil && len(res.Entries) > 0
			return err
		})
		if err != nil {
			return false, d.readError("look for unmanaged users under "+base, err)
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// searchBases are usersBaseDN, and moveToDN when it is not inside it.
func (d *Directory) searchBases() []string {
	bases := []string{d.usersBase}
	if d.moveToDN != nil && !d.usersBaseDN.AncestorOfFold(d.moveToDN) {
		bases = append(bases, d.moveTo)
	}
	return bases
}

// searchAttributes are the attributes asked for plus those that decide
// identity, management and activity.
func (d *Directory) searchAttributes(attributes []string) []string {
	out := make([]string, 0, len(attributes)+3)
	add := func(a string) {
		if a == "" {
			return
		}
		for _, have := range out {
			if sameAttr(have, a) {
				return
			}
		}
		out = append(out, a)
	}
	for _, a := range attributes {
		add(a)
	}
	add(d.identityAttr)
	add(d.markerAttr)
	add(d.disableAttr)
	return out
}

// toUser converts an entry. Attributes are keyed by the names asked for,
// whatever case the server used, and hold the values in the server's
// order; absent attributes are left out.
func (d *Directory) toUser(e *ldap.Entry, attributes []string) directory.User {
	u := directory.User{
		ID:         e.DN,
		Identity:   first(entryValues(e, d.identityAttr)),
		Attributes: make(directory.Attributes, len(attributes)),
		Active:     true,
	}
	for _, a := range attributes {
		if vals := entryValues(e, a); len(vals) > 0 {
			u.Attributes[a] = vals
		}
	}
	if d.markerAttr != "" {
		u.Managed = containsFold(entryValues(e, d.markerAttr), d.markerValue)
	}
	switch {
	case d.ad:
		u.Active = uacActive(entryValues(e, uacAttr)) && (d.moveToDN == nil || !d.underMoveTo(e.DN))
	case d.moveToDN != nil:
		u.Active = !d.underMoveTo(e.DN)
	case d.disableAttr != "":
		u.Active = !containsFold(entryValues(e, d.disableAttr), d.disableValue)
	}
	return u
}

func (d *Directory) underMoveTo(dn string) bool {
	parsed, err := ldap.ParseDN(dn)
	return err == nil && d.moveToDN.AncestorOfFold(parsed)
}

// readError turns a failed search into an error a person can act on.
func (d *Directory) readError(what string, err error) error {
	if ce, ok := err.(callbackError); ok {
		return ce.err
	}
	if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonDirectoryError {
		return err
	}
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return failure.Errorf(v1alpha1.ReasonInvalidConfig, "%s: the base DN does not exist", what)
	case ldap.IsErrorAnyOf(err, ldap.LDAPResultInsufficientAccessRights):
		return failure.Errorf(v1alpha1.ReasonAuthenticationFailed, "%s: %q may not search there", what, d.bindDN)
	case isConnError(err):
		return failure.Errorf(v1alpha1.ReasonUnreachable, "%s: %v", what, err)
	}
	return failure.Errorf(v1alpha1.ReasonDirectoryError, "%s: %s", what, resultName(err))
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func first(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}
