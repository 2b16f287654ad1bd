package open

import (
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
)

// A mapping may not write what the operator writes itself: the managed
// marker (a row could exempt its user from deprovisioning), the
// invitation state or the recovery code.
func TestMappingMayNotWriteReservedAttributes(t *testing.T) {
	dir := v1alpha1.UserDirectorySpec{
		IdentityAttribute: "uid",
		LDAP:              &v1alpha1.LDAPDirectory{},
		Invitations:       &v1alpha1.DirectoryInvitations{InvitedAttribute: "employeeType", PendingAttribute: "departmentNumber"},
		RecoveryCodes:     &v1alpha1.DirectoryRecoveryCodes{ExpiresAttribute: "shadowExpire"},
	}
	imp := func(attr string) v1alpha1.UserImportSpec {
		return v1alpha1.UserImportSpec{DirectoryRef: v1alpha1.LocalObjectReference{Name: "ldap"}, Mapping: []v1alpha1.AttributeMapping{
			{Attribute: "uid", Column: "id", Identity: true}, {Attribute: attr, Column: "x"}}}
	}
	for attr, field := range map[string]string{
		"businessCategory": "markerAttribute", "BUSINESSCATEGORY": "markerAttribute",
		"employeeType": "invitedAttribute", "departmentNumber": "pendingAttribute",
		"shadowExpire": "expiresAttribute", "userPassword": "recoveryCodes",
	} {
		err := CheckReserved(imp(attr), dir)
		if err == nil || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), "spec.mapping[1]") || failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonInvalidMapping {
			t.Errorf("mapping %s: %v, want InvalidMapping naming %s", attr, err, field)
		}
	}
	if err := CheckReserved(imp("title"), dir); err != nil {
		t.Errorf("mapping title: %v", err)
	}
	// A groups entry's attribute only names it.
	g := imp("title")
	g.Mapping = append(g.Mapping, v1alpha1.AttributeMapping{Attribute: "businessCategory", Column: "dept", Target: v1alpha1.TargetGroups})
	if err := CheckReserved(g, dir); err != nil {
		t.Errorf("a groups entry: %v", err)
	}
	dir.ManagedUsers.MarkerAttribute = "description"
	if err := CheckReserved(imp("businessCategory"), dir); err != nil {
		t.Errorf("businessCategory once the marker is description: %v", err)
	}
}

// An SQL batch is one COPY: unset, it is ten times the others'.
func TestBatchSizeDefaultsByType(t *testing.T) {
	scim := v1alpha1.UserDirectorySpec{SCIM: &v1alpha1.SCIMDirectory{}}
	sql := v1alpha1.UserDirectorySpec{SQL: &v1alpha1.SQLDirectory{}}
	for _, c := range []struct {
		spec v1alpha1.UserDirectorySpec
		set  int32
		want int32
	}{{scim, 0, 100}, {sql, 0, 1000}, {sql, 50, 50}, {scim, 500, 500}} {
		c.spec.Execution.BatchSize = c.set
		if got := BatchSize(c.spec); got != c.want {
			t.Errorf("%s with batchSize %d: %d, want %d", Type(c.spec), c.set, got, c.want)
		}
	}
}
