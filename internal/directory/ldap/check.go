package ldap

import (
	"context"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// oidPagedResults is the simple paged results control (RFC 2696).
const oidPagedResults = "1.2.840.113556.1.4.319"

// Check connects and binds on a connection of its own (so that the reason
// of a failure is not hidden by the pool's retries), reads the root DSE
// for the supported controls, makes sure usersBaseDN (and moveToDN)
// exist, and reads the server's schema to make sure the marker, identity
// and disable attributes exist and the object classes allow them.
func (d *Directory) Check(ctx context.Context) (directory.Capabilities, error) {
	var caps directory.Capabilities
	c, err := d.dial(ctx)
	if err != nil {
		return caps, err
	}
	defer c.Close()

	rootDSE, err := searchBase(c, "", "(objectClass=*)", []string{"supportedControl", "subschemaSubentry"})
	if err != nil {
		return caps, d.readError("read the root DSE", err)
	}
	caps.Filter = true
	caps.Patch = true
	if rootDSE != nil {
		caps.PagedSearch = containsFold(rootDSE.GetAttributeValues("supportedControl"), oidPagedResults)
	}

	for field, dn := range map[string]string{"spec.ldap.usersBaseDN": d.usersBase, "spec.ldap.disable.moveToDN": d.moveTo} {
		if dn == "" {
			continue
		}
		if _, err := searchBase(c, dn, "(objectClass=*)", []string{"1.1"}); err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
				return caps, failure.Errorf(v1alpha1.ReasonInvalidConfig, "%s %q does not exist", field, dn)
			}
			return caps, d.readError("read "+field, err)
		}
	}

	subschema := "cn=Subschema"
	if rootDSE != nil && rootDSE.GetAttributeValue("subschemaSubentry") != "" {
		subschema = rootDSE.GetAttributeValue("subschemaSubentry")
	}
	entry, err := searchBase(c, subschema, "(objectClass=subschema)", []string{"attributeTypes", "objectClasses", "dITContentRules"})
	if err != nil || entry == nil {
		// A server that hides its schema cannot be checked; writes will
		// tell.
		return caps, nil
	}
	s := parseSchema(entry.GetAttributeValues("attributeTypes"), entry.GetAttributeValues("objectClasses"), entry.GetAttributeValues("dITContentRules"))
	if err := d.checkSchema(s); err != nil {
		return caps, err
	}
	return caps, nil
}

func (d *Directory) checkSchema(s *schema) error {
	for _, oc := range d.objectClasses {
		if s.classes[strings.ToLower(oc)] == nil {
			return failure.Errorf(v1alpha1.ReasonSchemaMismatch, "spec.ldap.objectClasses: %q is not an object class of the server's schema", oc)
		}
	}
	allowed := s.allowed(d.objectClasses)
	check := func(field, name, hint string) error {
		if name == "" {
			return nil
		}
		base := strings.ToLower(strings.SplitN(name, ";", 2)[0])
		if !s.attributes[base] {
			return failure.Errorf(v1alpha1.ReasonSchemaMismatch, "%s %q is not an attribute type of the server's schema%s", field, name, hint)
		}
		if allowed != nil && !allowed[base] {
			return failure.Errorf(v1alpha1.ReasonSchemaMismatch, "%s %q is not allowed by the object classes %s%s", field, name, strings.Join(d.objectClasses, ", "), hint)
		}
		return nil
	}
	const markerHint = `; use an attribute the object classes allow, such as "businessCategory" or "description"`
	if err := check("managedUsers.markerAttribute", d.markerAttr, markerHint); err != nil {
		return err
	}
	if err := check("identityAttribute", d.identityAttr, ""); err != nil {
		return err
	}
	if err := check("spec.ldap.rdnAttribute", d.rdnAttr, ""); err != nil {
		return err
	}
	return check("spec.ldap.disable.attribute", d.disableAttr, "")
}

func searchBase(c *ldap.Conn, dn, filter string, attrs []string) (*ldap.Entry, error) {
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 30, false, filter, attrs, nil))
	if err != nil {
		return nil, err
	}
	if len(res.Entries) == 0 {
		return nil, nil
	}
	return res.Entries[0], nil
}

// schema is what Check needs of a subschema subentry: the attribute type
// names (aliases included) and, per object class, its superclasses and
// the attributes it requires or allows. Names are lower case.
//
// A DIT content rule (RFC 4512 4.1.6) adds auxiliary classes, and their
// attributes, to the entries of a structural class: Active Directory
// publishes its systemAuxiliaryClass and auxiliaryClass this way (user
// gets securityPrincipal's sAMAccountName).
type schema struct {
	attributes map[string]bool
	classes    map[string]*objectClass
	// contentRules are keyed by the structural class's name; sup holds
	// the auxiliary classes.
	contentRules map[string]*objectClass
}

type objectClass struct {
	sup   []string
	attrs []string // MUST and MAY
}

func parseSchema(attributeTypes, objectClasses, contentRules []string) *schema {
	s := &schema{attributes: map[string]bool{}, classes: map[string]*objectClass{}, contentRules: map[string]*objectClass{}}
	for _, def := range attributeTypes {
		f := parseDefinition(def)
		for _, n := range f["NAME"] {
			s.attributes[n] = true
		}
	}
	for _, def := range objectClasses {
		f := parseDefinition(def)
		oc := &objectClass{sup: f["SUP"], attrs: append(f["MUST"], f["MAY"]...)}
		for _, n := range f["NAME"] {
			s.classes[n] = oc
		}
	}
	for _, def := range contentRules {
		f := parseDefinition(def)
		cr := &objectClass{sup: f["AUX"], attrs: append(f["MUST"], f["MAY"]...)}
		for _, n := range f["NAME"] {
			s.contentRules[n] = cr
		}
	}
	// Attributes may be named by alias in object classes; map every alias
	// of a type to all its names so that "surname" and "sn" agree.
	aliases := map[string][]string{}
	for _, def := range attributeTypes {
		names := parseDefinition(def)["NAME"]
		for _, n := range names {
			aliases[n] = names
		}
	}
	for _, oc := range append(values(s.classes), values(s.contentRules)...) {
		var expanded []string
		for _, a := range oc.attrs {
			expanded = append(expanded, a)
			expanded = append(expanded, aliases[a]...)
		}
		oc.attrs = expanded
	}
	return s
}

// allowed returns the attributes the classes and their superclasses
// require or allow, or nil when any attribute is allowed
// (extensibleObject).
func (s *schema) allowed(classes []string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]bool{}
	var walk func(name string) bool
	walk = func(name string) bool {
		name = strings.ToLower(name)
		if name == "extensibleobject" {
			return false
		}
		if seen[name] {
			return true
		}
		seen[name] = true
		oc := s.classes[name]
		if oc == nil {
			return true
		}
		for _, a := range oc.attrs {
			out[a] = true
		}
		for _, sup := range oc.sup {
			if !walk(sup) {
				return false
			}
		}
		if cr := s.contentRules[name]; cr != nil {
			for _, a := range cr.attrs {
				out[a] = true
			}
			for _, aux := range cr.sup {
				if !walk(aux) {
					return false
				}
			}
		}
		return true
	}
	for _, c := range classes {
		if !walk(c) {
			return nil
		}
	}
	return out
}

func values(m map[string]*objectClass) []*objectClass {
	out := make([]*objectClass, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// parseDefinition reads the NAME, SUP, AUX, MUST and MAY fields of an RFC 4512
// definition such as "( 2.5.4.4 NAME ( 'sn' 'surname' ) SUP name )". The
// values are lower case.
func parseDefinition(def string) map[string][]string {
	toks := tokenize(def)
	out := map[string][]string{}
	for i := 0; i < len(toks); i++ {
		key := toks[i]
		switch key {
		case "NAME", "SUP", "AUX", "MUST", "MAY":
		default:
			continue
		}
		if i+1 >= len(toks) {
			break
		}
		if toks[i+1] != "(" {
			out[key] = append(out[key], strings.ToLower(strings.Trim(toks[i+1], "'")))
			i++
			continue
		}
		for i += 2; i < len(toks) && toks[i] != ")"; i++ {
			if toks[i] != "$" {
				out[key] = append(out[key], strings.ToLower(strings.Trim(toks[i], "'")))
			}
		}
	}
	return out
}

// tokenize splits a definition into parentheses, dollars, quoted strings
// (quotes kept) and words.
func tokenize(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '(' || c == ')' || c == '$':
			toks = append(toks, string(c))
			i++
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return append(toks, s[i:])
			}
			toks = append(toks, s[i:i+j+2])
			i += j + 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n()$'", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}
