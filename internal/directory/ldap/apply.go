package ldap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// Apply writes a batch. Its changes are sent over the pooled connections
// without waiting for each answer, with at most max(concurrency, 4)
// changes in flight over all batches; changes of one identity keep their
// order. A change the server refuses on its own (a schema or constraint
// violation, an entry that exists and is not managed) gets a
// *directory.ChangeError in its Result; an error returned means the
// directory failed as a whole, and the Results hold what was done before
// it.
func (d *Directory) Apply(ctx context.Context, changes []Change) ([]directory.Result, error) {
	results := make([]directory.Result, len(changes))

	// Changes of one identity form one group, applied in order.
	var groups [][]int
	byIdentity := make(map[string]int, len(changes))
	for i, ch := range changes {
		key := d.fold(ch.Identity)
		if g, ok := byIdentity[key]; ok && key != "" {
			groups[g] = append(groups[g], i)
			continue
		}
		byIdentity[key] = len(groups)
		groups = append(groups, []int{i})
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		fatal error
		wg    sync.WaitGroup
		work  = make(chan []int)
	)
	for range min(cap(d.inFlight), len(groups)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for group := range work {
				for _, i := range group {
					var slot int
					select {
					case slot = <-d.inFlight:
					case <-ctx.Done():
						return
					}
					id, err := d.applyOne(ctx, slot, changes[i])
					d.inFlight <- slot
					if err != nil && !directory.IsChangeError(err) {
						mu.Lock()
						if fatal == nil {
							fatal = err
						}
						mu.Unlock()
						cancel()
						break
					}
					results[i] = directory.Result{ID: id, Err: err}
				}
			}
		}()
	}
feed:
	for _, g := range groups {
		select {
		case work <- g:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if fatal == nil {
		fatal = parent.Err()
	}
	return results, fatal
}

// Change is directory.Change; the alias keeps signatures short.
type Change = directory.Change

// applyOne writes one change, holding the in-flight slot given, and
// returns the user's DN.
func (d *Directory) applyOne(ctx context.Context, slot int, ch Change) (string, error) {
	switch ch.Op {
	case directory.OpCreate:
		return d.create(ctx, slot, ch)
	case directory.OpUpdate:
		return d.update(ctx, ch.ID, ch.Identity, ch.Attributes, ch.Reactivate)
	case directory.OpDeactivate:
		return d.deactivate(ctx, ch.ID)
	case directory.OpDelete:
		return ch.ID, d.delete(ctx, ch.ID)
	}
	return "", &directory.ChangeError{Msg: fmt.Sprintf("unknown operation %v", ch.Op)}
}

// create adds the entry rdnAttribute=value,usersBaseDN. An entry of that
// name that already exists (a row replayed after a restart) is updated
// instead when it is managed; otherwise the row fails.
func (d *Directory) create(ctx context.Context, slot int, ch Change) (string, error) {
	attrs, err := d.cleanAttributes(ch.Attributes)
	if err != nil {
		return "", err
	}
	if attrs.get(d.identityAttr) == nil && ch.Identity != "" {
		attrs.set(d.identityAttr, []string{ch.Identity})
	}
	if d.markerAttr != "" && !containsFold(attrs.get(d.markerAttr), d.markerValue) {
		attrs.set(d.markerAttr, append(attrs.get(d.markerAttr), d.markerValue))
	}
	identity := ch.Identity
	if identity == "" {
		if v := attrs.get(d.identityAttr); len(v) > 0 {
			identity = v[0]
		}
	}
	if d.needsCNSN && identity != "" {
		for _, a := range []string{"cn", "sn"} {
			if attrs.get(a) == nil {
				attrs.set(a, []string{identity})
			}
		}
	}
	if d.ad {
		if err := d.adCreate(&attrs, identity); err != nil {
			return "", err
		}
	}
	rdn := attrs.get(d.rdnAttr)
	if len(rdn) == 0 {
		return "", &directory.ChangeError{Msg: fmt.Sprintf("%s: no value for the attribute that names new entries (rdnAttribute)", d.rdnAttr)}
	}
	dn := d.rdnAttr + "=" + d.escapeRDN(rdn[0]) + "," + d.usersBase

	err = d.doAdd(ctx, slot, func(p *pipe) error { return p.add(ctx, dn, d.objectClasses, attrs) })
	if ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		return d.replayCreate(ctx, dn, identity, attrs)
	}
	if err != nil {
		return "", d.writeError(err, attrs.names())
	}
	return dn, nil
}

// replayCreate turns a create whose entry exists into an update of the
// attributes that differ, and activates the user.
func (d *Directory) replayCreate(ctx context.Context, dn, identity string, attrs attrList) (string, error) {
	names := attrs.names()
	wanted := d.searchAttributes(names)
	var entry *ldap.Entry
	err := d.do(ctx, func(c *ldap.Conn) error {
		res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", wanted, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) == 1 {
			entry = res.Entries[0]
		}
		return nil
	})
	if err != nil || entry == nil {
		if err == nil || ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			if d.ad {
				// No entry of that name: the add was refused for a value
				// unique in the whole domain.
				return "", &directory.ChangeError{Msg: fmt.Sprintf("%s: the value is already used by another entry in the domain (sAMAccountName and userPrincipalName are unique across it); the user is not created", d.identityAttr)}
			}
			return "", &directory.ChangeError{Msg: fmt.Sprintf("%s: entry exists but cannot be read", d.rdnAttr)}
		}
		return "", d.writeError(err, names)
	}
	u := d.toUser(entry, names)
	if d.managedOnly && !u.Managed {
		return "", &directory.ChangeError{Msg: fmt.Sprintf("%s: entry exists and is not managed by this operator", d.identityAttr)}
	}
	if d.fold(u.Identity) != d.fold(identity) {
		// Another person of the same name: adopting the entry would give
		// it this row's identity, and the two would swap on every run.
		return "", &directory.ChangeError{Msg: fmt.Sprintf("%s: another user already has this name (the entry's %s), with a different %s; the user is not created",
			d.rdnAttr, d.rdnAttr, d.identityAttr)}
	}
	changed := make(directory.Attributes)
	for _, a := range attrs {
		if d.ad && (sameAttr(a.name, unicodePwd) || sameAttr(a.name, uacAttr)) {
			// Never read back; the account state is the reactivation's.
			continue
		}
		if !slices.Equal(u.Attributes[a.name], a.values) {
			changed[a.name] = a.values
		}
	}
	return d.update(ctx, dn, identity, changed, !u.Active)
}

// update replaces the attributes given (an attribute without values is
// removed), renames the entry when the naming attribute changes, and
// activates it when asked.
func (d *Directory) update(ctx context.Context, dn, identity string, changed directory.Attributes, reactivate bool) (string, error) {
	attrs, err := d.cleanAttributes(changed)
	if err != nil {
		return dn, err
	}
	// Removed attributes are in changed but not in attrs.
	var removed []string
	for name, vals := range changed {
		if len(nonEmpty(vals)) == 0 {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	for _, name := range removed {
		if sameAttr(name, d.rdnAttr) {
			return dn, &directory.ChangeError{Msg: fmt.Sprintf("%s: the attribute that names the entry cannot be removed", name)}
		}
	}

	if reactivate && d.moveToDN != nil && d.underMoveTo(dn) {
		if dn, err = d.move(ctx, dn, d.usersBase); err != nil {
			return dn, err
		}
	}
	if vals := attrs.get(d.rdnAttr); len(vals) > 0 {
		if dn, err = d.rename(ctx, dn, vals[0]); err != nil {
			return dn, err
		}
		if len(vals) == 1 {
			// The rename wrote it; AD refuses the naming attribute in a
			// modify (notAllowedOnRDN), even with the same value.
			attrs = slices.DeleteFunc(attrs, func(a attr) bool { return sameAttr(a.name, d.rdnAttr) })
		}
	}
	if d.ad {
		attrs = adEncode(attrs)
	}

	req := ldap.NewModifyRequest(dn, nil)
	for _, a := range attrs {
		req.Replace(a.name, a.values)
	}
	for _, name := range removed {
		if d.needsCNSN && identity != "" && (sameAttr(name, "cn") || sameAttr(name, "sn")) {
			// Required by person: fall back to the identity, as on create.
			req.Replace(name, []string{identity})
			continue
		}
		// Replace with no values removes the attribute, and unlike
		// delete does not fail when it is already absent.
		req.Replace(name, nil)
	}
	if reactivate && d.disableAttr != "" && !d.ad {
		req.Replace(d.disableAttr, nil)
	}
	if len(req.Changes) > 0 {
		err = d.do(ctx, func(c *ldap.Conn) error { return c.Modify(req) })
		if err != nil {
			return dn, d.writeError(err, append(attrs.names(), removed...))
		}
	}
	if reactivate && d.ad {
		// After the modify: a password it writes lets AD enable the
		// account.
		return dn, d.setUAC(ctx, dn, false)
	}
	return dn, nil
}

// rename gives the entry a new RDN value when it differs from the current
// one.
func (d *Directory) rename(ctx context.Context, dn, value string) (string, error) {
	parsed, err := ldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 {
		return dn, &directory.ChangeError{Msg: "entry: its ID is not a distinguished name"}
	}
	for _, a := range parsed.RDNs[0].Attributes {
		if sameAttr(a.Type, d.rdnAttr) && a.Value == value {
			return dn, nil
		}
	}
	newRDN := d.rdnAttr + "=" + d.escapeRDN(value)
	err = d.do(ctx, func(c *ldap.Conn) error {
		return c.ModifyDN(ldap.NewModifyDNRequest(dn, newRDN, true, ""))
	})
	if err != nil {
		return dn, d.writeError(err, []string{d.rdnAttr})
	}
	return newRDN + "," + parentOf(parsed), nil
}

// deactivate sets the disable attribute, or moves the entry to moveToDN.
func (d *Directory) deactivate(ctx context.Context, dn string) (string, error) {
	if d.ad {
		if err := d.setUAC(ctx, dn, true); err != nil {
			return dn, err
		}
	}
	if d.moveToDN != nil {
		if d.underMoveTo(dn) {
			return dn, nil
		}
		return d.move(ctx, dn, d.moveTo)
	}
	if d.ad {
		return dn, nil
	}
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace(d.disableAttr, []string{d.disableValue})
	err := d.do(ctx, func(c *ldap.Conn) error { return c.Modify(req) })
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return dn, nil // gone is as inactive as it gets
	}
	if err != nil {
		return dn, d.writeError(err, []string{d.disableAttr})
	}
	return dn, nil
}

// move moves an entry under newParent, keeping its RDN. A replayed move
// whose entry is already at the target succeeds.
func (d *Directory) move(ctx context.Context, dn, newParent string) (string, error) {
	parsed, err := ldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 {
		return dn, &directory.ChangeError{Msg: "entry: its ID is not a distinguished name"}
	}
	rdn := rdnString(parsed.RDNs[0])
	target := rdn + "," + newParent
	err = d.do(ctx, func(c *ldap.Conn) error {
		return c.ModifyDN(ldap.NewModifyDNRequest(dn, rdn, true, newParent))
	})
	switch {
	case err == nil:
		return target, nil
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		if exists, xerr := d.exists(ctx, target); xerr == nil && exists {
			return target, nil
		}
		return dn, &directory.ChangeError{Msg: fmt.Sprintf("%s: entry no longer exists", d.rdnAttr)}
	case ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists):
		return dn, &directory.ChangeError{Msg: fmt.Sprintf("%s: an entry of the same name already exists in the target container", d.rdnAttr)}
	}
	return dn, d.writeError(err, nil)
}

// delete removes an entry; one that does not exist counts as deleted.
func (d *Directory) delete(ctx context.Context, dn string) error {
	err := d.do(ctx, func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest(dn, nil)) })
	if err == nil || ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil
	}
	return d.writeError(err, nil)
}

func (d *Directory) exists(ctx context.Context, dn string) (bool, error) {
	var found bool
	err := d.do(ctx, func(c *ldap.Conn) error {
		res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, true, "(objectClass=*)", []string{"1.1"}, nil))
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil
		}
		if err != nil {
			return err
		}
		found = len(res.Entries) > 0
		return nil
	})
	return found, err
}

// rowCodes are results that concern one entry, not the directory.
var rowCodes = map[uint16]string{
	ldap.LDAPResultNoSuchAttribute:           "no such attribute",
	ldap.LDAPResultUndefinedAttributeType:    "attribute type not in the server's schema",
	ldap.LDAPResultInappropriateMatching:     "inappropriate matching",
	ldap.LDAPResultConstraintViolation:       "constraint violation",
	ldap.LDAPResultAttributeOrValueExists:    "value already exists",
	ldap.LDAPResultInvalidAttributeSyntax:    "invalid syntax",
	ldap.LDAPResultNoSuchObject:              "entry no longer exists",
	ldap.LDAPResultInvalidDNSyntax:           "invalid distinguished name",
	ldap.LDAPResultInsufficientAccessRights:  "insufficient access rights",
	ldap.LDAPResultUnwillingToPerform:        "server unwilling to perform",
	ldap.LDAPResultNamingViolation:           "naming violation",
	ldap.LDAPResultObjectClassViolation:      "object class violation",
	ldap.LDAPResultNotAllowedOnNonLeaf:       "entry has children",
	ldap.LDAPResultNotAllowedOnRDN:           "not allowed on the naming attribute",
	ldap.LDAPResultEntryAlreadyExists:        "entry already exists",
	ldap.LDAPResultObjectClassModsProhibited: "object class change prohibited",
}

// writeError makes a refused write a *directory.ChangeError that names the
// attribute (when the server's message names one of those written) and
// the LDAP result, never the server's message itself, which may quote
// values. Other failures stay errors of the directory.
func (d *Directory) writeError(err error, attrs []string) error {
	var le *ldap.Error
	if errors.As(err, &le) {
		if rule, ok := rowCodes[le.ResultCode]; ok {
			subject := "entry"
			if le.Err != nil {
				if name := mentionedAttribute(le.Err.Error(), attrs); name != "" {
					subject = name
				}
				if d.ad && le.ResultCode == ldap.LDAPResultConstraintViolation && slices.ContainsFunc(attrs, func(a string) bool { return sameAttr(a, unicodePwd) }) &&
					strings.Contains(strings.ToLower(le.Err.Error()), "password") {
					// AD's check_password_restrictions: length, history,
					// complexity (which also refuses the account's name in
					// the password).
					subject, rule = unicodePwd, "the password does not meet the domain's password policy"
				}
			}
			return &directory.ChangeError{Msg: fmt.Sprintf("%s: %s (LDAP result %d)", subject, rule, le.ResultCode)}
		}
	}
	if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonDirectoryError || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if isConnError(err) {
		return failure.Errorf(v1alpha1.ReasonUnreachable, "write: %v", err)
	}
	return failure.Errorf(v1alpha1.ReasonDirectoryError, "write: %s", resultName(err))
}

// mentionedAttribute returns the name in attrs that msg mentions first as
// a whole word, or "".
func mentionedAttribute(msg string, attrs []string) string {
	lower := strings.ToLower(msg)
	best, bestAt := "", len(lower)+1
	for _, a := range attrs {
		la := strings.ToLower(a)
		for from := 0; ; {
			i := strings.Index(lower[from:], la)
			if i < 0 {
				break
			}
			i += from
			end := i + len(la)
			if (i == 0 || !isWordByte(lower[i-1])) && (end == len(lower) || !isWordByte(lower[end])) {
				if i < bestAt {
					best, bestAt = a, i
				}
				break
			}
			from = i + 1
		}
	}
	return best
}

func isWordByte(c byte) bool {
	return c == '-' || c == ';' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// resultName describes an LDAP error by its result code alone.
func resultName(err error) string {
	var le *ldap.Error
	if errors.As(err, &le) {
		return fmt.Sprintf("%s (LDAP result %d)", ldap.LDAPResultCodeMap[le.ResultCode], le.ResultCode)
	}
	return err.Error()
}

// attr is one attribute of a write, in the caller's spelling.
type attr struct {
	name   string
	key    string // canonical(name), for comparing names
	values []string
}

// attrList keeps attributes in a stable order (sorted by name) so that
// requests are deterministic.
type attrList []attr

func (l attrList) get(name string) []string {
	key := canonical(name)
	for _, a := range l {
		if a.key == key {
			return a.values
		}
	}
	return nil
}

func (l *attrList) set(name string, values []string) {
	key := canonical(name)
	for i, a := range *l {
		if a.key == key {
			(*l)[i].values = values
			return
		}
	}
	*l = append(*l, attr{name: name, key: key, values: values})
}

func (l attrList) names() []string {
	out := make([]string, len(l))
	for i, a := range l {
		out[i] = a.name
	}
	return out
}

// cleanAttributes drops empty values and attributes left without values,
// and rejects names that are not attribute descriptions or that appear
// twice in different case.
func (d *Directory) cleanAttributes(in directory.Attributes) (attrList, error) {
	names := make([]string, 0, len(in))
	for name := range in {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make(attrList, 0, len(in)+4)
	for _, name := range names {
		if !validAttrName(name) {
			return nil, &directory.ChangeError{Msg: fmt.Sprintf("%s: not an LDAP attribute name", name)}
		}
		if strings.EqualFold(name, "objectClass") {
			return nil, &directory.ChangeError{Msg: "objectClass: set by spec.ldap.objectClasses, not by the mapping"}
		}
		if out.get(name) != nil {
			return nil, &directory.ChangeError{Msg: fmt.Sprintf("%s: mapped twice", name)}
		}
		if vals := nonEmpty(in[name]); len(vals) > 0 {
			out = append(out, attr{name: name, key: canonical(name), values: vals})
		}
	}
	return out, nil
}

func nonEmpty(vals []string) []string {
	for _, v := range vals {
		if v == "" {
			out := make([]string, 0, len(vals))
			for _, v := range vals {
				if v != "" {
					out = append(out, v)
				}
			}
			return out
		}
	}
	return vals
}

func rdnString(r *ldap.RelativeDN) string {
	parts := make([]string, len(r.Attributes))
	for i, a := range r.Attributes {
		parts[i] = a.Type + "=" + ldap.EscapeDN(a.Value)
	}
	return strings.Join(parts, "+")
}

func parentOf(dn *ldap.DN) string {
	parts := make([]string, 0, len(dn.RDNs)-1)
	for _, r := range dn.RDNs[1:] {
		parts = append(parts, rdnString(r))
	}
	return strings.Join(parts, ",")
}
