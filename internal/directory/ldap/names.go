package ldap

import (
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// aliases maps the lower-case alternative names of standard attribute
// types (RFC 4519, RFC 4524, RFC 2798) to their short names, so that a
// mapping may say "surname" or "sn" and still be compared with what the
// server returns, and so that cn and sn are not derived when the mapping
// gives them under another name.
var aliases = map[string]string{
	"commonname":               "cn",
	"surname":                  "sn",
	"gn":                       "givenname",
	"localityname":             "l",
	"stateorprovincename":      "st",
	"organizationname":         "o",
	"organizationalunitname":   "ou",
	"countryname":              "c",
	"streetaddress":            "street",
	"rfc822mailbox":            "mail",
	"userid":                   "uid",
	"mobiletelephonenumber":    "mobile",
	"pagertelephonenumber":     "pager",
	"hometelephonenumber":      "homephone",
	"facsimiletelephonenumber": "fax",
	"domaincomponent":          "dc",
	"favouritedrink":           "drink",
}

// canonical returns the lower-case short name of an attribute
// description, options kept.
func canonical(name string) string {
	lower := strings.ToLower(name)
	typ, options, hasOptions := strings.Cut(lower, ";")
	if short, ok := aliases[typ]; ok {
		typ = short
	}
	if hasOptions {
		return typ + ";" + options
	}
	return typ
}

// sameAttr tells whether two attribute descriptions name the same
// attribute.
func sameAttr(a, b string) bool {
	return strings.EqualFold(a, b) || canonical(a) == canonical(b)
}

// entryValues returns the values of the attribute named name, under
// whichever of its names the server used.
func entryValues(e *ldap.Entry, name string) []string {
	for _, a := range e.Attributes {
		if sameAttr(a.Name, name) {
			return a.Values
		}
	}
	return nil
}
