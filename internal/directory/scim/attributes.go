package scim

import (
	"fmt"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

const (
	coreUserSchema  = "urn:ietf:params:scim:schemas:core:2.0:User"
	enterpriseURN   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	patchOpSchema   = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	bulkRequestURN  = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
	enterprisePrefx = enterpriseURN + ":"
)

type kind int

const (
	kindCore       kind = iota // top-level string
	kindName                   // sub-attribute of name
	kindMulti                  // work emails or phoneNumbers
	kindEnterprise             // string of the enterprise extension
	kindManager                // enterprise manager.value
)

// attribute describes how one name of the vocabulary maps to SCIM JSON.
type attribute struct {
	name string
	kind kind
	key  string // JSON key in its parent object
}

var coreAttributes = []string{"userName", "externalId", "displayName", "nickName", "title",
	"userType", "preferredLanguage", "locale", "timezone"}

var enterpriseAttributes = []string{"employeeNumber", "costCenter", "organization", "division", "department"}

// lookupAttribute returns how name maps to SCIM, or false when it is not in
// the vocabulary.
func lookupAttribute(name string) (attribute, bool) {
	for _, a := range coreAttributes {
		if name == a {
			return attribute{name: name, kind: kindCore, key: a}, true
		}
	}
	if sub, ok := strings.CutPrefix(name, "name."); ok {
		switch sub {
		case "givenName", "familyName", "middleName", "formatted":
			return attribute{name: name, kind: kindName, key: sub}, true
		}
	}
	if name == "password" {
		// Write-only: sent with creates and updates, never read back.
		return attribute{name: name, kind: kindCore, key: name}, true
	}
	if name == "emails" || name == "phoneNumbers" {
		return attribute{name: name, kind: kindMulti, key: name}, true
	}
	if sub, ok := strings.CutPrefix(name, enterprisePrefx); ok {
		if sub == "manager" {
			return attribute{name: name, kind: kindManager, key: "manager"}, true
		}
		for _, a := range enterpriseAttributes {
			if sub == a {
				return attribute{name: name, kind: kindEnterprise, key: a}, true
			}
		}
	}
	return attribute{}, false
}

// ValidateAttributes returns an error naming the first attribute that is
// not in the provider's vocabulary (see the package documentation). The
// engine calls it before an import starts.
func ValidateAttributes(names []string) error {
	for _, n := range names {
		if _, ok := lookupAttribute(n); !ok {
			return failure.Errorf(v1alpha1.ReasonInvalidConfig,
				"attribute %q is not a SCIM attribute this provider knows (see the SCIM attribute vocabulary)", n)
		}
	}
	return nil
}

// ValidateAttributes is the method form of the package function.
func (d *Directory) ValidateAttributes(names []string) error { return ValidateAttributes(names) }

func (a attribute) multiValued() bool { return a.kind == kindMulti }

// path is the SCIM attribute path of a in PATCH operations.
func (a attribute) path() string {
	switch a.kind {
	case kindName:
		return "name." + a.key
	case kindEnterprise, kindManager:
		return enterprisePrefx + a.key
	}
	return a.key
}

// value is the JSON value written for values (not empty).
func (a attribute) value(values []string) any {
	switch a.kind {
	case kindMulti:
		out := make([]any, len(values))
		for i, v := range values {
			out[i] = map[string]any{"value": v, "type": "work", "primary": i == 0}
		}
		return out
	case kindManager:
		return map[string]any{"value": values[0]}
	}
	return values[0]
}

// checkValues refuses more than one value for a single-valued attribute.
func (a attribute) checkValues(values []string) error {
	if !a.multiValued() && len(values) > 1 {
		return &directory.ChangeError{Msg: fmt.Sprintf("%s: takes one value, got %d", a.name, len(values))}
	}
	return nil
}

// parent returns the object that holds a in res, creating it when create
// is true; nil when absent.
func (a attribute) parent(res map[string]any, create bool) map[string]any {
	var key string
	switch a.kind {
	case kindName:
		key = "name"
	case kindEnterprise, kindManager:
		key = enterpriseURN
	default:
		return res
	}
	m, ok := res[key].(map[string]any)
	if !ok && create {
		m = map[string]any{}
		res[key] = m
	}
	return m
}

// set writes values into res (removes the attribute when values is empty).
func (a attribute) set(res map[string]any, values []string) {
	p := a.parent(res, len(values) > 0)
	if p == nil {
		return
	}
	if len(values) == 0 {
		delete(p, a.key)
		return
	}
	p[a.key] = a.value(values)
	if a.kind == kindEnterprise || a.kind == kindManager {
		addSchema(res, enterpriseURN)
	}
}

// get reads the values of a from res, in the form set takes them.
func (a attribute) get(res map[string]any) []string {
	p := a.parent(res, false)
	if p == nil {
		return nil
	}
	switch a.kind {
	case kindMulti:
		items, _ := p[a.key].([]any)
		var primary, rest []string
		for _, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				continue
			}
			if t, _ := m["type"].(string); t != "" && !strings.EqualFold(t, "work") {
				continue
			}
			v, _ := m["value"].(string)
			if v == "" {
				continue
			}
			if b, _ := m["primary"].(bool); b && primary == nil {
				primary = []string{v}
			} else {
				rest = append(rest, v)
			}
		}
		return append(primary, rest...)
	case kindManager:
		m, _ := p[a.key].(map[string]any)
		if v, _ := m["value"].(string); v != "" {
			return []string{v}
		}
		return nil
	}
	switch v := p[a.key].(type) {
	case string:
		if v != "" {
			return []string{v}
		}
	case bool:
		return []string{fmt.Sprint(v)}
	case float64:
		return []string{fmt.Sprint(v)}
	}
	return nil
}

func addSchema(res map[string]any, urn string) {
	schemas, _ := res["schemas"].([]any)
	for _, s := range schemas {
		if s == urn {
			return
		}
	}
	res["schemas"] = append(schemas, urn)
}

// newResource builds the body of a create.
func newResource(attrs directory.Attributes) (map[string]any, error) {
	res := map[string]any{"schemas": []any{coreUserSchema}, "active": true}
	for name, values := range attrs {
		a, ok := lookupAttribute(name)
		if !ok {
			return nil, unknownAttribute(name)
		}
		if err := a.checkValues(values); err != nil {
			return nil, err
		}
		a.set(res, values)
	}
	return res, nil
}

func unknownAttribute(name string) error {
	return &directory.ChangeError{Msg: fmt.Sprintf("%s: not a SCIM attribute this provider knows", name)}
}

// patchOperations builds the PATCH operations of an update: one per
// changed attribute, plus active when reactivating.
func patchOperations(attrs directory.Attributes, reactivate bool) ([]map[string]any, error) {
	ops := make([]map[string]any, 0, len(attrs)+1)
	for _, name := range sortedKeys(attrs) {
		values := attrs[name]
		a, ok := lookupAttribute(name)
		if !ok {
			return nil, unknownAttribute(name)
		}
		if err := a.checkValues(values); err != nil {
			return nil, err
		}
		if len(values) == 0 {
			ops = append(ops, map[string]any{"op": "remove", "path": a.path()})
		} else {
			ops = append(ops, map[string]any{"op": "replace", "path": a.path(), "value": a.value(values)})
		}
	}
	if reactivate {
		ops = append(ops, map[string]any{"op": "replace", "path": "active", "value": true})
	}
	return ops, nil
}

// applyToResource applies an update to a full resource, for PUT.
func applyToResource(res map[string]any, attrs directory.Attributes, active *bool) error {
	for name, values := range attrs {
		a, ok := lookupAttribute(name)
		if !ok {
			return unknownAttribute(name)
		}
		if err := a.checkValues(values); err != nil {
			return err
		}
		a.set(res, values)
	}
	if active != nil {
		res["active"] = *active
	}
	// Read-only attributes are ignored by servers on PUT, but some reject
	// them; meta is the common one.
	delete(res, "meta")
	return nil
}
