package worker

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/samba"
)

// An import into Active Directory with the short directory spec an AD
// administrator writes: users created enabled, each signing in with its
// recovery code, AD security groups with their members, a name too long
// for sAMAccountName refused at its line, and an unchanged re-run that
// writes nothing.
func TestActiveDirectoryImportWithGroupsAndCodes(t *testing.T) {
	// A server and names of its own: it runs beside the other long tests.
	t.Parallel()
	_, c := testenv.Shared(t)
	ctx := context.Background()
	dc := samba.Start(t)
	f := newFixture(t, c, "ad-import")
	// 1,000 in every run; UIO_AD_USERS=10000 for the size (Samba
	// writes 15 to 35 users a second).
	users := 1000
	if n, err := strconv.Atoi(os.Getenv("UIO_AD_USERS")); err == nil && n > 0 {
		users = n
	}
	var b strings.Builder
	b.WriteString("login,first_name,last_name,department\n")
	for i := range users {
		fmt.Fprintf(&b, "p%05d,First%05d,Last%05d,Dept%d\n", i, i, i, i%7)
	}
	b.WriteString("a-login-far-too-long-for-ad,Long,Name,Dept1\n")
	if err := os.WriteFile(f.csvPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	f.secrets = dc.Secrets()
	f.dirSpec = v1alpha1.UserDirectorySpec{
		IdentityAttribute: "sAMAccountName",
		RecoveryCodes:     &v1alpha1.DirectoryRecoveryCodes{Attribute: "unicodePwd"},
		LDAP:              dc.Spec(),
		Execution:         v1alpha1.ExecutionSettings{BatchSize: 100, Concurrency: 4},
	}
	imp := f.get(t)
	imp.Spec.Mapping = []v1alpha1.AttributeMapping{
		{Attribute: "sAMAccountName", Column: "login", Identity: true},
		{Attribute: "cn", Template: "{{.first_name}} {{.last_name}}"},
		{Attribute: "givenName", Column: "first_name"},
		{Attribute: "sn", Column: "last_name"},
		{Attribute: "userPrincipalName", Template: "{{.login}}@ad.example.com"},
		{Attribute: "groups", Template: "staff-{{.department}}", Target: v1alpha1.TargetGroups},
	}
	imp.Spec.RecoveryCodes = v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesForNewUsers}
	if err := c.Update(ctx, imp); err != nil {
		t.Fatal(err)
	}

	out, err := f.runCodes(ctx, t, runcontract.StageImport, f.sink(), nil)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	var report corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "ad-import-report"}, &report); err != nil {
		t.Fatal(err)
	}
	if n := out.Result.Counts; n.Created != int64(users) || n.Failed != 1 || n.Groups.GroupsCreated != 7 {
		t.Fatalf("counts %+v, want %d created, 1 failed, 7 groups; errors:\n%s", n, users, report.Data[runcontract.ReportErrorsKey])
	}
	if errs := string(report.Data[runcontract.ReportErrorsKey]); !strings.Contains(errs, "sAMAccountName: longer than 20 characters") {
		t.Fatalf("errors.csv: %s", errs)
	}

	codes := map[string]string{}
	for _, name := range f.get(t).Status.RecoveryCodes.Secrets {
		var sec corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: name}, &sec); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(sec.Data[runcontract.CodesKey])).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs[1:] {
			codes[r[0]] = r[1]
		}
	}
	if len(codes) != users {
		t.Fatalf("%d codes, want %d", len(codes), users)
	}
	conn, err := dc.Conn()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, sam := range []string{"p00000", "p00499", "p00999"} {
		res, err := conn.Search(ldap.NewSearchRequest(dc.StaffDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			"(sAMAccountName="+sam+")", []string{"userAccountControl", "memberOf"}, nil))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("%s: %v, %d entries", sam, err, len(res.Entries))
		}
		e := res.Entries[0]
		if e.GetAttributeValue("userAccountControl") != "512" {
			t.Errorf("%s: userAccountControl %s, want 512 (enabled)", sam, e.GetAttributeValue("userAccountControl"))
		}
		if len(e.GetAttributeValues("memberOf")) != 1 {
			t.Errorf("%s: member of %v, want one staff group", sam, e.GetAttributeValues("memberOf"))
		}
		if err := dc.CanSignIn(e.DN, codes[sam]); err != nil {
			t.Errorf("%s cannot sign in with its recovery code: %v", sam, err)
		}
	}
	res, err := conn.Search(ldap.NewSearchRequest(dc.GroupsDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=group)(cn=staff-*))", []string{"groupType", "sAMAccountName", "member"}, nil))
	if err != nil || len(res.Entries) != 7 {
		t.Fatalf("groups: %v, %d", err, len(res.Entries))
	}
	members := 0
	for _, e := range res.Entries {
		if e.GetAttributeValue("groupType") != "-2147483646" {
			t.Errorf("%s: groupType %s", e.DN, e.GetAttributeValue("groupType"))
		}
		members += len(e.GetAttributeValues("member"))
	}
	if members != users {
		t.Fatalf("the groups hold %d members, want %d", members, users)
	}

	// The same file again, as the next scheduled import.
	g := newFixture(t, c, "ad-import-again")
	g.csvPath, g.secrets, g.dirSpec = f.csvPath, f.secrets, f.dirSpec
	next := g.get(t)
	next.Spec.Mapping, next.Spec.RecoveryCodes = imp.Spec.Mapping, imp.Spec.RecoveryCodes
	if err := c.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	again, err := g.runCodes(ctx, t, runcontract.StageImport, g.sink(), nil)
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if n := again.Result.Counts; n.Created+n.Updated+n.Deactivated+n.Deleted != 0 || n.Unchanged != int64(users) ||
		n.Groups.MembershipsAdded+n.Groups.MembershipsRemoved+n.Groups.GroupsCreated != 0 {
		t.Fatalf("the unchanged re-run planned writes: %+v", n)
	}

	// p00001 marries (a new cn: the entry is renamed), p00002 moves to
	// another department, p00003 leaves (a full import disables it).
	csvText := strings.Replace(b.String(), "p00001,First00001,Last00001,Dept1", "p00001,First00001,Married00001,Dept1", 1)
	csvText = strings.Replace(csvText, "p00002,First00002,Last00002,Dept2", "p00002,First00002,Last00002,Dept5", 1)
	csvText = strings.Replace(csvText, "p00003,First00003,Last00003,Dept3\n", "", 1)
	if err := os.WriteFile(f.csvPath, []byte(csvText), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newFixture(t, c, "ad-import-changes")
	h.csvPath, h.secrets, h.dirSpec = f.csvPath, f.secrets, f.dirSpec
	changes := h.get(t)
	changes.Spec.Mapping, changes.Spec.RecoveryCodes = imp.Spec.Mapping, imp.Spec.RecoveryCodes
	changes.Spec.MissingUsers = v1alpha1.MissingDeactivate
	changes.Spec.Safety.ApprovedDeprovisions = ptr.To[int32](1)
	if err := c.Update(ctx, changes); err != nil {
		t.Fatal(err)
	}
	third, err := h.runCodes(ctx, t, runcontract.StageImport, h.sink(), nil)
	if err != nil {
		t.Fatalf("the import of the changes: %v", err)
	}
	// The department is no attribute of the user: p00002 changes only
	// in its groups. (The renamed user's memberships are planned from its
	// old DN to its new one; AD has moved them already, and the replayed
	// changes find nothing to do.)
	if n := third.Result.Counts; n.Updated != 1 || n.Deactivated != 1 || n.Failed != 1 {
		t.Fatalf("the import of the changes: %+v, want 1 updated, 1 deactivated, 1 failed", n)
	}
	entry := func(sam string) *ldap.Entry {
		res, err := conn.Search(ldap.NewSearchRequest(dc.StaffDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			"(sAMAccountName="+sam+")", []string{"cn", "sn", "userAccountControl", "memberOf"}, nil))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("%s: %v", sam, err)
		}
		return res.Entries[0]
	}
	if e := entry("p00001"); !strings.HasPrefix(e.DN, "CN=First00001 Married00001,") || e.GetAttributeValue("sn") != "Married00001" ||
		len(e.GetAttributeValues("memberOf")) != 1 || !strings.HasPrefix(e.GetAttributeValues("memberOf")[0], "CN=staff-Dept1,") {
		t.Fatalf("the renamed user: %s sn %s member of %v", e.DN, e.GetAttributeValue("sn"), e.GetAttributeValues("memberOf"))
	}
	if e := entry("p00002"); len(e.GetAttributeValues("memberOf")) != 1 || !strings.HasPrefix(e.GetAttributeValues("memberOf")[0], "CN=staff-Dept5,") {
		t.Fatalf("the user who moved: member of %v", e.GetAttributeValues("memberOf"))
	}
	if e := entry("p00003"); e.GetAttributeValue("userAccountControl") != "514" {
		t.Fatalf("the user who left: userAccountControl %s, want 514 (disabled)", e.GetAttributeValue("userAccountControl"))
	}
}
