//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

// podsAddress is the address inside the cluster's network namespace that
// pods reach (the second address of its lo): the API server listens on
// it, so it is the host of the kubeconfig's server URL. Test servers that
// worker pods must reach listen there too.
func podsAddress() string {
	u, err := url.Parse(restConfig.Host)
	Expect(err).NotTo(HaveOccurred())
	host := u.Hostname()
	ip := net.ParseIP(host)
	Expect(ip).NotTo(BeNil(), "the API server's address %q is an IP address (hack/cluster binds it to UIO_E2E_ADDR)", host)
	Expect(ip.IsLoopback()).To(BeFalse(), "pods cannot reach the loopback address %s", host)
	return host
}

// startPostgres starts a PostgreSQL server on the address pods reach and
// stops it when the calling container ends.
func startPostgres() *postgres.Server {
	pg, err := postgres.StartProcessWith(postgres.Options{Host: podsAddress()})
	Expect(err).NotTo(HaveOccurred(), "starting PostgreSQL (%s)", postgres.InstallHint)
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() {
			fmt.Fprintf(GinkgoWriter, "PostgreSQL log:\n%s\n", tail(pg.Log(), 8192))
		}
		Expect(pg.Stop()).To(Succeed())
	})
	return pg
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// The columns of the CSV files and tables of these tests: a subset of
// hrgen's, so that 10,000 rows fit in a ConfigMap.
var csvColumns = []string{"employee_id", "email", "first_name", "last_name", "department"}

var csvIndex = []int{hrgen.ColEmployeeID, hrgen.ColEmail, hrgen.ColFirstName, hrgen.ColLastName, hrgen.ColDepartment}

// markerColumn is the SQL provider's default marker column.
const markerColumn = "userImportManagedBy"

// csvSeed makes the rows of every file of this suite.
const csvSeed = 20260501

// person is one row of a test file, in csvColumns order.
type person []string

func (p person) id() string { return p[0] }

// people returns rows from..from+n-1 of the suite's data set.
func people(from, n int) []person {
	out := make([]person, n)
	for i := range out {
		row := hrgen.Row(csvSeed, from+i)
		p := make(person, len(csvIndex))
		for j, c := range csvIndex {
			p[j] = row[c]
		}
		out[i] = p
	}
	return out
}

// rowValues collects every value that the suite put into a CSV file, so
// that the log scan can look for them.
var rowValues = struct {
	sync.Mutex
	set map[string]struct{}
}{set: map[string]struct{}{}}

// csvFile renders rows with a header and records their values.
func csvFile(rows []person) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	Expect(w.Write(csvColumns)).To(Succeed())
	rowValues.Lock()
	defer rowValues.Unlock()
	for _, r := range rows {
		Expect(w.Write(r)).To(Succeed())
		for _, v := range r {
			rowValues.set[v] = struct{}{}
		}
	}
	w.Flush()
	Expect(w.Error()).NotTo(HaveOccurred())
	return b.Bytes()
}

// sqlTable is a users table in the test's PostgreSQL database.
type sqlTable struct {
	pg   *postgres.Server
	name string
}

// newTable creates a users table with csvColumns, the marker column and
// the active column.
func newTable(ctx context.Context, pg *postgres.Server, name string) *sqlTable {
	Expect(sqldir.CreateTable(ctx, uiov1.SQLDriverPostgres, pg.DSN, sqldir.TableSpec{
		Table:          name,
		IdentityColumn: "employee_id",
		Columns:        append(append([]string{}, csvColumns...), markerColumn),
	})).To(Succeed())
	return &sqlTable{pg: pg, name: name}
}

func (t *sqlTable) conn(ctx context.Context) *pgx.Conn {
	c, err := pgx.Connect(ctx, t.pg.DSN)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx context.Context) { _ = c.Close(ctx) })
	return c
}

func (t *sqlTable) exec(ctx context.Context, sql string, args ...any) {
	c, err := pgx.Connect(ctx, t.pg.DSN)
	Expect(err).NotTo(HaveOccurred())
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql, args...)
	Expect(err).NotTo(HaveOccurred(), sql)
}

// slowAndCounted makes every row written to the table take perRow (so
// that an import is still running when the test interrupts it), and
// records every row actually inserted in <table>_inserts: an upsert that
// hits an existing row fires the update triggers, not AFTER INSERT, so the
// inserts table counts creates exactly.
func (t *sqlTable) slowAndCounted(ctx context.Context, perRow time.Duration) {
	q := pgx.Identifier{t.name}.Sanitize()
	ins := pgx.Identifier{t.name + "_inserts"}.Sanitize()
	t.exec(ctx, `CREATE OR REPLACE FUNCTION e2e_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(TG_ARGV[0]::float8); RETURN NEW; END $$`)
	t.exec(ctx, `CREATE OR REPLACE FUNCTION e2e_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN EXECUTE format('INSERT INTO %I VALUES ($1)', TG_TABLE_NAME || '_inserts') USING NEW.employee_id; RETURN NULL; END $$`)
	t.exec(ctx, "CREATE TABLE "+ins+" (employee_id text NOT NULL)")
	t.exec(ctx, fmt.Sprintf("CREATE TRIGGER e2e_slow BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION e2e_slow('%f')", q, perRow.Seconds()))
	t.exec(ctx, "CREATE TRIGGER e2e_count AFTER INSERT ON "+q+" FOR EACH ROW EXECUTE FUNCTION e2e_count_insert()")
}

// inserts returns the number of rows inserted, and of distinct identities
// among them.
func (t *sqlTable) inserts(ctx context.Context) (total, distinct int64) {
	c := t.conn(ctx)
	Expect(c.QueryRow(ctx, "SELECT count(*), count(DISTINCT employee_id) FROM "+pgx.Identifier{t.name + "_inserts"}.Sanitize()).
		Scan(&total, &distinct)).To(Succeed())
	return total, distinct
}

// insertUsers writes rows directly, as users that existed before any
// import; managed says whether they carry the marker.
func (t *sqlTable) insertUsers(ctx context.Context, rows []person, managed bool) {
	c := t.conn(ctx)
	var marker any
	if managed {
		marker = "user-import-operator"
	}
	b := &pgx.Batch{}
	for _, r := range rows {
		b.Queue(fmt.Sprintf(`INSERT INTO %s (employee_id, email, first_name, last_name, department, %s) VALUES ($1, $2, $3, $4, $5, $6)`,
			pgx.Identifier{t.name}.Sanitize(), pgx.Identifier{markerColumn}.Sanitize()),
			r[0], r[1], r[2], r[3], r[4], marker)
	}
	Expect(c.SendBatch(ctx, b).Close()).To(Succeed())
}

// dbUser is a row of a users table.
type dbUser struct {
	Row     person
	Active  bool
	Managed bool
}

// users reads the whole table, by identity.
func (t *sqlTable) users(ctx context.Context) map[string]dbUser {
	c := t.conn(ctx)
	rows, err := c.Query(ctx, fmt.Sprintf(`SELECT employee_id, coalesce(email, ''), coalesce(first_name, ''), coalesce(last_name, ''),
		coalesce(department, ''), active, coalesce(%s, '') FROM %s`, pgx.Identifier{markerColumn}.Sanitize(), pgx.Identifier{t.name}.Sanitize()))
	Expect(err).NotTo(HaveOccurred())
	defer rows.Close()
	out := map[string]dbUser{}
	for rows.Next() {
		p := make(person, 5)
		var active bool
		var marker string
		Expect(rows.Scan(&p[0], &p[1], &p[2], &p[3], &p[4], &active, &marker)).To(Succeed())
		Expect(out).NotTo(HaveKey(p[0]), "one row per identity")
		out[p[0]] = dbUser{Row: p, Active: active, Managed: marker == "user-import-operator"}
	}
	Expect(rows.Err()).NotTo(HaveOccurred())
	return out
}

// expectUsers checks that the table holds exactly want, active and
// managed.
func (t *sqlTable) expectUsers(ctx context.Context, want []person) {
	got := t.users(ctx)
	Expect(got).To(HaveLen(len(want)), "rows in table %s", t.name)
	bad := 0
	for _, w := range want {
		u, ok := got[w.id()]
		if !ok || !u.Active || !u.Managed || !equalRows(u.Row, w) {
			// Identities only: the values are personal data, even here.
			if bad < 5 {
				fmt.Fprintf(GinkgoWriter, "row %s: present %v, active %v, managed %v, values equal %v\n", w.id(), ok, u.Active, u.Managed, ok && equalRows(u.Row, w))
			}
			bad++
		}
	}
	Expect(bad).To(BeZero(), "users in table %s that differ from their CSV row", t.name)
}

func equalRows(a, b person) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sqlDirectory creates a UserDirectory for table, with the DSN in a Secret,
// and returns it once Ready. dsn overrides the server's DSN (a wrong
// password, say) and then readiness is not awaited.
func sqlDirectory(ctx context.Context, name string, t *sqlTable, dsn string, exec uiov1.ExecutionSettings) *uiov1.UserDirectory {
	wait := dsn == ""
	if dsn == "" {
		dsn = t.pg.DSN
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name + "-dsn"},
		StringData: map[string]string{"dsn": dsn},
	}
	Expect(k8s.Create(ctx, secret)).To(Succeed())
	dir := &uiov1.UserDirectory{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
		Spec: uiov1.UserDirectorySpec{
			SQL: &uiov1.SQLDirectory{
				Driver: uiov1.SQLDriverPostgres,
				DSN:    uiov1.SecretKeyRef{Name: secret.Name, Key: "dsn"},
				Table:  t.name,
				// The test server speaks without TLS.
				Insecure: true,
			},
			IdentityAttribute: "employee_id",
			Execution:         exec,
		},
	}
	Expect(k8s.Create(ctx, dir)).To(Succeed())
	if wait {
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dir), dir)).To(Succeed())
			c := apimeta.FindStatusCondition(dir.Status.Conditions, uiov1.ConditionReady)
			g.Expect(c).NotTo(BeNil(), "UserDirectory %s has a Ready condition", name)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "UserDirectory %s Ready: %s: %s", name, c.Reason, c.Message)
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
	}
	return dir
}

// csvConfigMap stores data under key "users.csv".
func csvConfigMap(ctx context.Context, name string, data []byte) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
		Data:       map[string]string{"users.csv": string(data)},
	}
	Expect(k8s.Create(ctx, cm)).To(Succeed())
}

// importSpec maps the CSV columns of these tests onto the table's columns.
func importSpec(dir, configMap string, mode uiov1.ImportMode, action uiov1.ImportAction) uiov1.UserImportSpec {
	return uiov1.UserImportSpec{
		DirectoryRef: uiov1.LocalObjectReference{Name: dir},
		Source:       uiov1.ImportSource{ConfigMap: &uiov1.ConfigMapKeyRef{Name: configMap, Key: "users.csv"}},
		Format:       uiov1.CSVFormat{Delimiter: ","},
		Mapping: []uiov1.AttributeMapping{
			{Attribute: "employee_id", Column: "employee_id", Identity: true, Required: true},
			{Attribute: "email", Column: "email", Check: "Email", Transforms: []uiov1.Transform{{Type: "Trim"}, {Type: "Lower"}}},
			{Attribute: "first_name", Column: "first_name", Required: true},
			{Attribute: "last_name", Column: "last_name", Required: true},
			{Attribute: "department", Column: "department"},
		},
		Mode:   mode,
		Action: action,
	}
}

func newImport(ctx context.Context, name string, spec uiov1.UserImportSpec) *uiov1.UserImport {
	imp := &uiov1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name}, Spec: spec}
	Expect(k8s.Create(ctx, imp)).To(Succeed())
	return imp
}

// importAfterPreview sets the action of a previewed import to Import and
// waits for it to complete.
func importAfterPreview(ctx context.Context, imp *uiov1.UserImport) {
	Eventually(func() error {
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp)).To(Succeed())
		imp.Spec.Action = uiov1.ActionImport
		return k8s.Update(ctx, imp)
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	waitPhase(ctx, imp, uiov1.PhaseCompleted, 5*time.Minute)
}

// waitPhase waits until imp reaches phase; reaching another final phase
// ends the wait at once with its Ready condition.
func waitPhase(ctx context.Context, imp *uiov1.UserImport, phase uiov1.ImportPhase, timeout time.Duration) {
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp)).To(Succeed())
		if imp.Status.Phase.IsFinal() && imp.Status.Phase != phase {
			StopTrying(fmt.Sprintf("UserImport %s ended %s, not %s: %s", imp.Name, imp.Status.Phase, phase, describeConditions(imp.Status.Conditions))).Now()
		}
		g.Expect(imp.Status.Phase).To(Equal(phase), "UserImport %s: %s", imp.Name, describeConditions(imp.Status.Conditions))
	}).WithContext(ctx).WithTimeout(timeout).Should(Succeed())
}

func describeConditions(cs []metav1.Condition) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}

// importJobs lists the Jobs the operator made for import name.
func importJobs(ctx context.Context, name string) []batchv1.Job {
	var list batchv1.JobList
	Expect(k8s.List(ctx, &list, client.InNamespace(testNamespace),
		client.MatchingLabels{"app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": "user-import-operator"})).To(Succeed())
	return list.Items
}

// jobPods lists the pods of a Job, running or not.
func jobPods(ctx context.Context, jobName string) []corev1.Pod {
	var list corev1.PodList
	Expect(k8s.List(ctx, &list, client.InNamespace(testNamespace), client.MatchingLabels{"batch.kubernetes.io/job-name": jobName})).To(Succeed())
	return list.Items
}

// kubectl runs the cluster's kubectl (hack/cluster/up.sh links it next to
// the kubeconfig, in <work dir>/bin) and returns its standard output.
func kubectl(ctx context.Context, args ...string) (string, error) {
	kubeconfig := mustEnv("KUBECONFIG")
	bin := os.Getenv("KUBECTL")
	if bin == "" {
		bin = filepath.Join(filepath.Dir(kubeconfig), "bin", "kubectl")
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// kubectlTable runs `kubectl get` and returns its rows as column → value
// maps, by the header of its default (printer column) output.
func kubectlTable(ctx context.Context, args ...string) []map[string]string {
	out, err := kubectl(ctx, append([]string{"get"}, args...)...)
	Expect(err).NotTo(HaveOccurred())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	Expect(len(lines)).To(BeNumerically(">=", 2), "kubectl get printed a header and rows:\n%s", out)
	// kubectl aligns columns and prints nothing for an empty value:
	// cut each row at the header's column starts.
	var names []string
	var starts []int
	for i, r := range lines[0] {
		if r != ' ' && (i == 0 || lines[0][i-1] == ' ') {
			starts = append(starts, i)
			names = append(names, strings.Fields(lines[0][i:])[0])
		}
	}
	var rows []map[string]string
	for _, l := range lines[1:] {
		m := map[string]string{}
		for i, name := range names {
			from, to := min(starts[i], len(l)), len(l)
			if i+1 < len(starts) {
				to = min(starts[i+1], len(l))
			}
			m[name] = strings.TrimSpace(l[from:to])
		}
		rows = append(rows, m)
	}
	return rows
}

// workerServiceAccount is the ServiceAccount the worker pods of imp run
// as, read from its Job's pod template.
func workerServiceAccount(ctx context.Context, imp *uiov1.UserImport) string {
	Expect(imp.Status.JobName).NotTo(BeEmpty(), "UserImport %s names its Job", imp.Name)
	var job batchv1.Job
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: imp.Status.JobName}, &job)).To(Succeed())
	sa := job.Spec.Template.Spec.ServiceAccountName
	Expect(sa).NotTo(BeEmpty())
	Expect(sa).NotTo(Equal("default"), "the worker has a ServiceAccount of its own")
	return sa
}
