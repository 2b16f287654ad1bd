package worker

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testenv"
)

// gunzipCSV reads a compressed report CSV: its records after the header.
func gunzipCSV(t *testing.T, key string, z []byte) [][]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("%s: %d records, %v", key, len(recs), err)
	}
	return recs[1:]
}

// Beyond the changes the plain outcome lists, the report holds every
// row's outcome and every group change, compressed; a smaller run after
// it leaves no compressed key of the larger one behind.
func TestReportListsEveryChangeCompressed(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	f := newFixture(t, c, "hr-complete")
	groups := &v1alpha1.SQLGroups{Table: "memberships"}
	if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverSQLite, f.dbPath, sqldir.TableSpec{Table: "users", IdentityColumn: "email", Groups: groups}); err != nil {
		t.Fatal(err)
	}
	f.dirSpec.SQL.Groups = groups
	f.dirSpec.Execution.BatchSize = 500
	const users, bad = 12000, 20
	var b strings.Builder
	b.WriteString("email,first_name,last_name,department\n")
	for i := range users + bad {
		email := fmt.Sprintf("person%05d@corp.example", i)
		if i >= users {
			email = fmt.Sprintf("not-an-address-%d", i)
		}
		fmt.Fprintf(&b, "%s,F%d,L%d,Department-%d\n", email, i, i, i%25)
	}
	if err := os.WriteFile(f.csvPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	imp := f.get(t)
	imp.Spec.Mode = v1alpha1.ModeDelta
	imp.Spec.Mapping = append(imp.Spec.Mapping, v1alpha1.AttributeMapping{Attribute: "groups", Column: "department", Target: v1alpha1.TargetGroups})
	if err := c.Update(ctx, imp); err != nil {
		t.Fatal(err)
	}
	report := func() map[string][]byte {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "hr-complete-report"}, &s); err != nil {
			t.Fatal(err)
		}
		return s.Data
	}

	for _, stage := range []Stage{runcontract.StagePreview, runcontract.StageImport} {
		if _, err := f.run(ctx, t, stage, f.sink()); err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		data := report()
		if _, ok := data[runcontract.ReportOutcomeKey]; ok {
			t.Fatalf("%s: the report has the plain %s beside the complete one", stage, runcontract.ReportOutcomeKey)
		}
		actions := map[string]int{}
		lines := map[string]bool{}
		for _, r := range gunzipCSV(t, runcontract.ReportOutcomeGzipKey, data[runcontract.ReportOutcomeGzipKey]) {
			if lines[r[0]] {
				t.Fatalf("%s: line %s is listed twice", stage, r[0])
			}
			lines[r[0]] = true
			actions[r[2]]++
		}
		if actions["create"] != users || actions["error"] != bad || len(lines) != users+bad {
			t.Fatalf("%s: outcome.csv.gz lists %v in %d lines, want %d creates and %d errors", stage, actions, len(lines), users, bad)
		}
		if _, ok := data[runcontract.ReportGroupsKey]; ok {
			t.Fatalf("%s: the report has the plain %s beside the complete one", stage, runcontract.ReportGroupsKey)
		}
		changes := map[string]int{}
		for _, r := range gunzipCSV(t, runcontract.ReportGroupsGzipKey, data[runcontract.ReportGroupsGzipKey]) {
			changes[r[3]]++
		}
		if changes["create group"] != 25 || changes["add member"] != users {
			t.Fatalf("%s: groups.csv.gz lists %v, want 25 groups created and %d members added", stage, changes, users)
		}
	}

	// A small run: the plain files, and nothing of the large one.
	writeCSV(t, f.csvPath, 30)
	imp = f.get(t)
	imp.Spec.Mapping = imp.Spec.Mapping[:len(imp.Spec.Mapping)-1]
	if err := c.Update(ctx, imp); err != nil {
		t.Fatal(err)
	}
	if _, err := f.run(ctx, t, runcontract.StagePreview, f.sink()); err != nil {
		t.Fatal(err)
	}
	data := report()
	for _, k := range []string{runcontract.ReportOutcomeGzipKey, runcontract.ReportGroupsGzipKey} {
		if _, ok := data[k]; ok {
			t.Fatalf("the small run's report still has the large run's %s", k)
		}
	}
	if !bytes.HasPrefix(data[runcontract.ReportOutcomeKey], []byte("line,identity,action,error\n")) {
		t.Fatalf("outcome.csv: %.200s", data[runcontract.ReportOutcomeKey])
	}
}
