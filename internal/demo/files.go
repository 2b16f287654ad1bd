package demo

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, also used by the SQL provider
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/csvsafe"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/recoverycode"
)

// showDirectory prints how many users the SQLite file holds and a few of
// them. The users are generated, so printing them is harmless.
func showDirectory(ctx context.Context, out io.Writer, dbPath string) error {
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	var total, active int
	if err := db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN active THEN 1 ELSE 0 END), 0) FROM `+table).Scan(&total, &active); err != nil {
		return fmt.Errorf("reading %s: %w", dbPath, err)
	}
	fmt.Fprintf(out, "the directory (%s, table %s) holds %d users, %d active; the first five:\n", dbPath, table, total, active)
	rows, err := db.QueryContext(ctx, `SELECT user_name, given_name, family_name, department, title FROM `+table+` ORDER BY user_name LIMIT 5`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var user, given, family, dept, title sql.NullString
		if err := rows.Scan(&user, &given, &family, &dept, &title); err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-36s %-12s %-12s %-18s %s\n", user.String, given.String, family.String, dept.String, title.String)
	}
	return rows.Err()
}

// showGroups prints the largest groups and a user with their manager.
func showGroups(ctx context.Context, out io.Writer, dbPath string) error {
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	var groups, members, managed int
	if err := db.QueryRowContext(ctx, `SELECT count(DISTINCT group_name), count(*) FROM `+membershipTable).Scan(&groups, &members); err != nil {
		return fmt.Errorf("reading %s: %w", membershipTable, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE manager IS NOT NULL`).Scan(&managed); err != nil {
		return err
	}
	fmt.Fprintf(out, "groups: %d, with %d memberships (table %s); %d users refer to their manager (column manager). The largest:\n", groups, members, membershipTable, managed)
	rows, err := db.QueryContext(ctx, `SELECT group_name, count(*) FROM `+membershipTable+` GROUP BY group_name ORDER BY count(*) DESC, group_name LIMIT 3`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-24s %d members\n", name, n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var user, manager string
	err = db.QueryRowContext(ctx, `SELECT user_name, manager FROM `+table+` WHERE manager IS NOT NULL ORDER BY user_name LIMIT 1`).Scan(&user, &manager)
	if err == nil {
		fmt.Fprintf(out, "  %s reports to %s\n", user, manager)
	}
	return nil
}

// showCodes tells where the import's recovery codes are, and checks the
// first user's code from its Secret against the hash the directory holds,
// showing the code masked.
func showCodes(ctx context.Context, c client.Client, out io.Writer, dbPath string) error {
	var imp v1alpha1.UserImport
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: importName}, &imp); err != nil {
		return err
	}
	st := imp.Status.RecoveryCodes
	if st == nil || len(st.Secrets) == 0 {
		return fmt.Errorf("import %s gave no recovery codes", importName)
	}
	fmt.Fprintf(out, "recovery codes: %d, in Secret %v (identity,code,expires), hashed with argon2id in column recovery_code\n", st.Issued, st.Secrets)
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: st.Secrets[0]}, &s); err != nil {
		return err
	}
	recs, err := csv.NewReader(bytes.NewReader(s.Data["codes.csv"])).ReadAll()
	if err != nil || len(recs) < 2 {
		return fmt.Errorf("Secret %s holds no codes (%v)", st.Secrets[0], err)
	}
	user, code := recs[1][0], recs[1][1]
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	var hash string
	if err := db.QueryRowContext(ctx, `SELECT recovery_code FROM `+table+` WHERE user_name = ?`, user).Scan(&hash); err != nil {
		return err
	}
	ok, err := recoverycode.Verify(hash, code)
	if err != nil || !ok {
		return fmt.Errorf("the code of %s does not verify against its hash (%v)", user, err)
	}
	fmt.Fprintf(out, "  %s: code %s…%s verifies against its hash; a wrong one does not: %v\n", user, code[:2], code[len(code)-2:], !mustVerify(hash, code+"X"))
	return nil
}

func mustVerify(hash, code string) bool {
	ok, _ := recoverycode.Verify(hash, code)
	return ok
}

// writeDeltaSample writes a ConfigMap and a Delta UserImport that change
// the titles of ten users and add five: apply it to watch a second import
// queue behind the first and run.
func writeDeltaSample(path string, rows int) error {
	var data bytes.Buffer
	cw := csvsafe.NewWriter(&data)
	_ = cw.Write(hrgen.Header)
	titleCol, deptCol := indexOf(hrgen.Header, "title"), indexOf(hrgen.Header, "department")
	for i := 0; i < 10 && i < rows; i++ {
		r := hrgen.Row(1, i)
		r[titleCol] = "Principal " + r[titleCol]
		if i == 0 {
			// A mover: leaves the group of the old department for the new.
			r[deptCol] = "Platform"
		}
		_ = cw.Write(r)
	}
	for i := rows; i < rows+5; i++ {
		_ = cw.Write(hrgen.Row(1, i))
	}
	_ = cw.Flush()

	var b strings.Builder
	b.WriteString(`# A delta import: ten users change title, one of them moves to the
# department Platform (and its group dept-Platform), five join.
# kubectl --kubeconfig kubeconfig apply -f delta-import.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: hr-delta
  namespace: default
data:
  employees.csv: |
`)
	for _, line := range strings.SplitAfter(strings.TrimRight(data.String(), "\n"), "\n") {
		b.WriteString("    " + line)
	}
	b.WriteString(`
---
apiVersion: userimport.dev/v1alpha1
kind: UserImport
metadata:
  name: hr-delta-import
  namespace: default
spec:
  directoryRef:
    name: demo-directory
  source:
    configMap:
      name: hr-delta
      key: employees.csv
  mode: Delta
  mapping:
  - {attribute: user_name, column: email, identity: true, check: Email, transforms: [{type: Trim}, {type: Lower}]}
  - {attribute: email, column: email, check: Email, transforms: [{type: Trim}, {type: Lower}]}
  - {attribute: given_name, column: first_name, required: true}
  - {attribute: family_name, column: last_name, required: true}
  - {attribute: department, column: department}
  - {attribute: title, column: title}
  - {attribute: location, column: location}
  - {attribute: groups, template: "dept-{{.department}};site-{{.location}}", split: ";", target: Groups}
  - {attribute: manager, column: manager_email, transforms: [{type: Trim}, {type: Lower}], target: Manager}
`)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	panic("demo: no column " + s)
}
