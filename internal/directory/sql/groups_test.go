package sql

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// A membership the database refuses is a change error that names the
// column and the rule, never the group's name or the member.
func TestRefusedMembershipQuotesNoValue(t *testing.T) {
	e := newEnv(t, v1alpha1.SQLDriverPostgres)
	members := e.table + "_members"
	e.exec(t, fmt.Sprintf(`CREATE TABLE %s (user_identity TEXT NOT NULL, group_name INTEGER NOT NULL, managed_by TEXT)`, members))
	spec := e.spec()
	spec.Groups = &v1alpha1.SQLGroups{Table: members}
	d := e.open(t, spec, directory.Options{IdentityAttribute: "userName", MarkerAttribute: "managedBy", MarkerValue: marker})
	_, err := d.ApplyGroup(context.Background(), directory.GroupChange{Name: "Secret-Department", Add: []string{"jane.doe@corp.example"}})
	if !directory.IsChangeError(err) {
		t.Fatalf("want a change error, got %v", err)
	}
	if msg := err.Error(); strings.Contains(msg, "Secret-Department") || strings.Contains(msg, "jane.doe") {
		t.Fatalf("the error quotes a value: %s", msg)
	}
}
