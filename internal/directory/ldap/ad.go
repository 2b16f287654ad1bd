package ldap

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/internal/directory"
)

// Active Directory (spec.ldap.vendor: ActiveDirectory) differs from other
// LDAP servers in how it keeps accounts:
//
//   - The account state is bit 0x2 (ACCOUNTDISABLE) of
//     userAccountControl, among bits an administrator sets for other
//     reasons (DONT_EXPIRE_PASSWORD, SMARTCARD_REQUIRED, ...): it is read,
//     the one bit changed, and written back; the attribute is never
//     removed, which AD refuses.
//   - An account without a password cannot be enabled: a new user gets
//     its recovery code or, without one, an unusable random password.
//   - Passwords go to unicodePwd, written only (never read back), as the
//     quoted password in UTF-16LE, and only over TLS.
//   - cn is the naming attribute and cannot be written by a modify: a
//     new cn is a ModifyDN.
//   - Names in DNs escape '=' too.
//   - sAMAccountName has rules of its own (checked before any write) and
//     is unique in the domain: a value taken elsewhere is the line's
//     error.
//   - Groups are of objectClass group, with a groupType and a
//     sAMAccountName; their member attribute is read in ranges of 1,500
//     values when larger, and may be empty.
const (
	adUserFilter = "(objectClass=user)"
	adRDN        = "cn"
	uacAttr      = "userAccountControl"
	unicodePwd   = "unicodePwd"
	// uacDisabled is ACCOUNTDISABLE; uacNormal NORMAL_ACCOUNT.
	uacDisabled = 0x2
	uacNormal   = 0x200
	// adMaxPageSize is the MaxPageSize of a default AD domain.
	adMaxPageSize = 1000
	// defaultGroupType is a global security group.
	defaultGroupType = -2147483646
	// samMaxLen is the longest sAMAccountName of a user.
	samMaxLen = 20
)

var adObjectClasses = []string{"top", "person", "organizationalPerson", "user"}

// samForbidden are the characters a sAMAccountName may not hold.
const samForbidden = `"/\[]:;|=,+*?<>@`

// CheckValue is Active Directory's rules on the values of
// sAMAccountName and userPrincipalName (directory.ValueChecker). Other
// directories accept any value here.
func (d *Directory) CheckValue(attribute, value string) string {
	if !d.ad {
		return ""
	}
	switch {
	case sameAttr(attribute, "sAMAccountName"):
		switch {
		case len(utf16.Encode([]rune(value))) > samMaxLen:
			return fmt.Sprintf("%s: longer than %d characters, which Active Directory refuses", attribute, samMaxLen)
		case strings.ContainsAny(value, samForbidden):
			return fmt.Sprintf("%s: holds one of the characters %s, which Active Directory refuses", attribute, samForbidden)
		case strings.HasSuffix(value, "."):
			return attribute + ": ends with a period, which Active Directory refuses"
		case strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 }):
			return attribute + ": holds a control character"
		}
	case sameAttr(attribute, "userPrincipalName"):
		user, domain, ok := strings.Cut(value, "@")
		if !ok || user == "" || domain == "" || strings.Contains(domain, "@") {
			return attribute + ": not of the form name@domain"
		}
		if strings.ContainsAny(value, ` "/\[]:;|=,+*?<>`) {
			return attribute + ": holds a character Active Directory refuses in a user principal name"
		}
	}
	return ""
}

// EncodePassword is the value of unicodePwd for password: the password in
// double quotes, in UTF-16LE.
func EncodePassword(password string) string {
	units := utf16.Encode([]rune(`"` + password + `"`))
	b := make([]byte, 2*len(units))
	for i, u := range units {
		binary.LittleEndian.PutUint16(b[2*i:], u)
	}
	return string(b)
}

// randomPassword is a password nobody knows that meets AD's complexity
// rules (three of four character classes, at least 7 characters): an
// account must have one to be enabled, and its user gets in with a
// recovery code or a reset.
func randomPassword() (string, error) {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 32)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", err
		}
		b[i] = alphabet[n.Int64()]
	}
	return "Aa1!" + string(b), nil
}

// EscapeADValue escapes a value for an RDN the way AD requires: RFC 4514's
// escapes, and '=' too (AD answers invalidDNSyntax otherwise).
func EscapeADValue(value string) string {
	return strings.ReplaceAll(ldap.EscapeDN(value), "=", `\=`)
}

// escapeRDN escapes an RDN value for this directory.
func (d *Directory) escapeRDN(value string) string {
	if d.ad {
		return EscapeADValue(value)
	}
	return ldap.EscapeDN(value)
}

// uacActive tells from an entry's userAccountControl whether the account
// is enabled; an entry without one (not a user) counts as enabled.
func uacActive(values []string) bool {
	if len(values) == 0 {
		return true
	}
	n, err := strconv.ParseInt(values[0], 10, 64)
	return err != nil || n&uacDisabled == 0
}

// readUAC reads the userAccountControl of dn.
func (d *Directory) readUAC(ctx context.Context, dn string) (int64, bool, error) {
	var vals []string
	found := false
	err := d.do(ctx, func(c *ldap.Conn) error {
		res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{uacAttr}, nil))
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(res.Entries) > 0 {
			found = true
			vals = res.Entries[0].GetAttributeValues(uacAttr)
		}
		return nil
	})
	if err != nil || !found {
		return 0, found, err
	}
	if len(vals) == 0 {
		return uacNormal, true, nil
	}
	n, perr := strconv.ParseInt(vals[0], 10, 64)
	if perr != nil {
		return 0, true, &directory.ChangeError{Msg: uacAttr + ": not a number"}
	}
	return n, true, nil
}

// setUAC sets or clears ACCOUNTDISABLE on dn, keeping the other bits.
// The value is swapped, not replaced: a delete of the value read and an
// add of the new one in one modify, which fails when someone changed it
// in between, and is then read again.
func (d *Directory) setUAC(ctx context.Context, dn string, disabled bool) error {
	for attempt := 0; ; attempt++ {
		old, found, err := d.readUAC(ctx, dn)
		if err != nil {
			return err
		}
		if !found {
			if disabled {
				return nil // gone is as inactive as it gets
			}
			return &directory.ChangeError{Msg: uacAttr + ": entry no longer exists"}
		}
		want := old &^ uacDisabled
		if disabled {
			want = old | uacDisabled
		}
		if want == old {
			return nil
		}
		req := ldap.NewModifyRequest(dn, nil)
		req.Delete(uacAttr, []string{strconv.FormatInt(old, 10)})
		req.Add(uacAttr, []string{strconv.FormatInt(want, 10)})
		err = d.do(ctx, func(c *ldap.Conn) error { return c.Modify(req) })
		if err == nil {
			return nil
		}
		if attempt < 2 && ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchAttribute, ldap.LDAPResultAttributeOrValueExists) {
			continue
		}
		return d.writeError(err, []string{uacAttr})
	}
}

// rangedValues returns the values of attr in e. AD sends a large
// multi-valued attribute in ranges ("member;range=0-1499"): the rest is
// read from dn, range after range.
func (d *Directory) rangedValues(ctx context.Context, c *ldap.Conn, e *ldap.Entry, attr string) ([]string, error) {
	vals := entryValues(e, attr)
	next := -1
	for _, a := range e.Attributes {
		name, rng, ok := strings.Cut(a.Name, ";range=")
		if !ok || !sameAttr(name, attr) {
			continue
		}
		vals = append(vals, a.Values...)
		next = rangeNext(rng)
	}
	for next >= 0 {
		want := fmt.Sprintf("%s;range=%d-*", attr, next)
		res, err := c.Search(ldap.NewSearchRequest(e.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{want}, nil))
		if err != nil {
			return nil, err
		}
		next = -1
		if len(res.Entries) == 0 {
			break
		}
		for _, a := range res.Entries[0].Attributes {
			name, rng, ok := strings.Cut(a.Name, ";range=")
			if !ok || !sameAttr(name, attr) {
				continue
			}
			vals = append(vals, a.Values...)
			next = rangeNext(rng)
		}
	}
	return vals, nil
}

// rangeNext is the first index after the range "low-high", or -1 when the
// range is the last ("low-*") or unreadable.
func rangeNext(rng string) int {
	_, high, ok := strings.Cut(rng, "-")
	if !ok || high == "*" {
		return -1
	}
	n, err := strconv.Atoi(high)
	if err != nil {
		return -1
	}
	return n + 1
}

// adCreate completes a new AD user: cn (its name) from the identity when
// not mapped, a password (the recovery code given, or an unusable random
// one) and userAccountControl NORMAL_ACCOUNT, so that the account is
// enabled.
func (d *Directory) adCreate(attrs *attrList, identity string) error {
	if attrs.get(d.rdnAttr) == nil && identity != "" {
		attrs.set(d.rdnAttr, []string{identity})
	}
	if attrs.get(unicodePwd) == nil {
		pw, err := randomPassword()
		if err != nil {
			return err
		}
		attrs.set(unicodePwd, []string{pw})
	}
	if attrs.get(uacAttr) == nil {
		attrs.set(uacAttr, []string{strconv.Itoa(uacNormal)})
	}
	*attrs = adEncode(*attrs)
	return nil
}

// adEncode returns attrs with unicodePwd's value encoded.
func adEncode(attrs attrList) attrList {
	for i, a := range attrs {
		if sameAttr(a.name, unicodePwd) {
			enc := make([]string, len(a.values))
			for j, v := range a.values {
				enc[j] = EncodePassword(v)
			}
			attrs[i].values = enc
		}
	}
	return attrs
}
