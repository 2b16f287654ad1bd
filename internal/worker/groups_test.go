package worker

import (
	"context"
	stdsql "database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testenv"
)

// Groups and managers through the worker: the preview's counts and
// report, an import stopped in its Groups step and resumed from it, and
// no group name (a row value) in the status.
func TestWorkerGroupsAndManagers(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	f := newFixture(t, c, "hr-groups")
	groups := &v1alpha1.SQLGroups{Table: "memberships"}
	// The users table exists: this adds the membership table.
	if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverSQLite, f.dbPath, sqldir.TableSpec{
		Table: "users", IdentityColumn: "email", Groups: groups,
	}); err != nil {
		t.Fatal(err)
	}
	db, err := stdsql.Open("sqlite", f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("ALTER TABLE users ADD COLUMN manager TEXT"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f.dirSpec.SQL.Groups = groups
	f.dirSpec.Execution.BatchSize = 20

	var b strings.Builder
	b.WriteString("email,first_name,last_name,department,manager\n")
	for i := range 500 {
		mgr := fmt.Sprintf("person%05d@corp.example", i-i%10)
		if i%10 == 0 {
			mgr = ""
		}
		fmt.Fprintf(&b, "person%05d@corp.example,First%d,Last%d,Department-%d,%s\n", i, i, i, i%25, mgr)
	}
	if err := os.WriteFile(f.csvPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	imp := f.get(t)
	imp.Spec.Mapping = append(imp.Spec.Mapping,
		v1alpha1.AttributeMapping{Attribute: "groups", Column: "department", Target: v1alpha1.TargetGroups},
		v1alpha1.AttributeMapping{Attribute: "manager", Column: "manager", Target: v1alpha1.TargetManager})
	if err := c.Update(ctx, imp); err != nil {
		t.Fatal(err)
	}

	if _, err := f.run(ctx, t, runcontract.StagePreview, f.sink()); err != nil {
		t.Fatalf("preview: %v", err)
	}
	want := v1alpha1.GroupCounts{GroupsCreated: 25, MembershipsAdded: 500, ManagersSet: 450}
	if p := f.get(t).Status.Preview; p == nil || p.Groups == nil || *p.Groups != want {
		t.Fatalf("preview: %+v", p)
	}
	var report corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "hr-groups-report"}, &report); err != nil {
		t.Fatal(err)
	}
	g := string(report.Data[runcontract.ReportGroupsKey])
	if !strings.HasPrefix(g, "line,identity,group,change\n") || !strings.Contains(g, ",Department-3,create group\n") ||
		!strings.Contains(g, "person00003@corp.example,Department-3,add member\n") || !strings.Contains(g, "5,person00003@corp.example,,set manager\n") {
		t.Fatalf("groups.csv:\n%.600s", g)
	}
	if s := string(report.Data[runcontract.ReportSummaryKey]); !strings.Contains(s, "groupsCreated=25\n") || !strings.Contains(s, "managersSet=450\n") {
		t.Fatalf("summary: %s", s)
	}

	// Stopped after the fifth group, then resumed from the Groups step.
	runCtx, cancel := context.WithCancel(ctx)
	_, err = f.run(runCtx, t, runcontract.StageImport, &cancelAfter{APISink: f.sink(), step: v1alpha1.StepGroups, checkpoints: 5, cancel: cancel})
	cancel()
	if err == nil {
		t.Fatal("the stopped import reported success")
	}
	if cp := f.get(t).Status.Progress.Checkpoint; cp == nil || cp.Step != v1alpha1.StepGroups {
		t.Fatalf("checkpoint %+v, want one in the Groups step", cp)
	}
	out, err := f.run(ctx, t, runcontract.StageImport, f.sink())
	if err != nil || !out.Resumed {
		t.Fatalf("resumed import: %v (resumed %v)", err, out.Resumed)
	}
	st := f.get(t).Status
	if p := st.Progress; p.Groups == nil || *p.Groups != want || p.Created != 500 || p.Checkpoint.Step != v1alpha1.StepManagers {
		t.Fatalf("progress %+v groups %+v", p, p.Groups)
	}
	dir, err := open.Directory(ctx, f.dirSpec, f.secrets)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	members := 0
	if err := dir.(directory.GroupDirectory).ListGroups(ctx, func(g directory.Group) error {
		members += len(g.Members)
		return nil
	}); err != nil || members != 500 {
		t.Fatalf("%d memberships (%v), want 500", members, err)
	}
	raw, _ := json.Marshal(st)
	if strings.Contains(string(raw), "Department-") || strings.Contains(string(raw), "person0") {
		t.Fatal("the status holds a row value")
	}
}
