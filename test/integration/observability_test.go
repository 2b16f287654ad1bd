package integration_test

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/VictoriaMetrics/metricsql"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	_ "modernc.org/sqlite"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/controllers"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/repo"
	"github.com/userimport/user-import-operator/internal/worker"
)

// The Grafana dashboard and the Prometheus alerts in config/ are checked
// against the metrics the manager serves: every expression parses, and
// every metric it names is on the manager's real /metrics endpoint after
// a manager ran an import, a directory check and a schedule.
var _ = Describe("The dashboard and the alerts", func() {
	It("name only metrics the manager serves", func() {
		dashboardAndAlertsUseServedMetrics(GinkgoT())
	})
})

func dashboardAndAlertsUseServedMetrics(t GinkgoTInterface) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	exprs := ruleExpressions(t, filepath.Join(root, "config", "prometheus", "userimport-rules.yaml"))
	exprs = append(exprs, dashboardExpressions(t, filepath.Join(root, "config", "grafana", "userimport-dashboard.json"))...)
	names := map[string][]string{} // metric name -> expressions naming it
	for _, e := range exprs {
		parsed, err := metricsql.Parse(e)
		if err != nil {
			t.Fatalf("expression %q does not parse: %v", e, err)
		}
		metricsql.VisitAll(parsed, func(x metricsql.Expr) {
			if me, ok := x.(*metricsql.MetricExpr); ok {
				for _, lfs := range me.LabelFilterss {
					for _, lf := range lfs {
						if lf.Label == "__name__" {
							names[lf.Value] = append(names[lf.Value], e)
						}
					}
				}
			}
		})
	}
	if len(names) < 8 {
		t.Fatalf("only %d metrics named by %d expressions: %v", len(names), len(exprs), names)
	}

	served := scrape(t, runManager(t))
	for name, in := range names {
		if !served[name] {
			t.Errorf("metric %s (in %q) is not served by the manager", name, in[0])
		}
	}
	t.Logf("%d expressions name %d metrics, all served", len(exprs), len(names))
}

func ruleExpressions(t GinkgoTInterface, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert string `json:"alert"`
					Expr  string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &rule); err != nil || rule.Kind != "PrometheusRule" {
		t.Fatalf("%s: %v (kind %q)", path, err, rule.Kind)
	}
	var out []string
	alerts := map[string]bool{}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
			alerts[r.Alert] = true
		}
	}
	for _, want := range []string{"UserImportFailed", "ImportScheduleMissedRuns", "UserDirectoryNotReady", "UserImportAwaitingApproval"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
	return out
}

func dashboardExpressions(t GinkgoTInterface, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	titles := map[string]bool{}
	for _, p := range d.Panels {
		titles[p.Title] = true
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, want := range []string{"Imports by phase", "Rows per second by outcome", "Import duration", "Queue length by directory", "Directory readiness"} {
		if !titles[want] {
			t.Errorf("the dashboard has no panel %q", want)
		}
	}
	return out
}

// runManager runs a manager whose metrics listen on a free port, and
// drives it through a directory check, a completed import and a
// schedule; it returns the metrics URL.
func runManager(t GinkgoTInterface) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	opts := testenv.ManagerOptions()
	opts.Metrics = metricsserver.Options{BindAddress: addr}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.Setup(mgr, controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorInProcess, Run: worker.RunInProcess,
		PollInterval: 200 * time.Millisecond, DirectoryRetryInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	// This manager replaces the suite's until the next spec.
	stopManager()
	stop := testenv.RunManager(ctx, mgr)
	stopManager, running = func() { Expect(stop()).To(Succeed()) }, customManager
	c, ns := k8sClient, newNamespace()

	db := filepath.Join(t.TempDir(), "users.db")
	if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverSQLite, db, sqldir.TableSpec{Table: "users", IdentityColumn: "user_name", Columns: []string{"userImportManagedBy"}}); err != nil {
		t.Fatal(err)
	}
	spec := v1alpha1.UserImportSpec{
		DirectoryRef: v1alpha1.LocalObjectReference{Name: "db"},
		Source:       v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "hr", Key: "users.csv"}},
		Mapping:      []v1alpha1.AttributeMapping{{Attribute: "user_name", Column: "user", Identity: true}},
	}
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dsn"}, StringData: map[string]string{"dsn": db}},
		&v1alpha1.UserDirectory{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: v1alpha1.UserDirectorySpec{
			IdentityAttribute: "user_name",
			SQL:               &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite, DSN: v1alpha1.SecretKeyRef{Name: "dsn", Key: "dsn"}, Table: "users"}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}, Data: map[string]string{"users.csv": "user\nann\nbob\n"}},
		&v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}, Spec: spec},
		&v1alpha1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"}, Spec: v1alpha1.ImportScheduleSpec{
			Schedule: "0 3 * * *", Template: v1alpha1.UserImportTemplate{Spec: spec}}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var imp v1alpha1.UserImport
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "hr"}, &imp); err != nil {
			t.Fatal(err)
		}
		if imp.Status.Phase == v1alpha1.PhaseCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the import is %s: %+v", imp.Status.Phase, imp.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := count(t, db); n != 2 {
		t.Fatalf("%d users imported", n)
	}
	return "http://" + addr + "/metrics"
}

// scrape reads the metric names of the samples url serves.
func scrape(t GinkgoTInterface, url string) map[string]bool {
	var served map[string]bool
	deadline := time.Now().Add(30 * time.Second)
	for {
		served = map[string]bool{}
		resp, err := http.Get(url)
		if err == nil {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				name, _, _ := strings.Cut(line, "{")
				name, _, _ = strings.Cut(name, " ")
				served[name] = true
			}
			resp.Body.Close()
		}
		// The schedule and the directory are reconciled by now, or soon.
		if served["userimport_schedule_missed_runs_total"] && served["userimport_directory_ready"] && served["userimport_import_duration_seconds_bucket"] {
			return served
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s serves %d metrics, not yet the operator's (%v)", url, len(served), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func count(t GinkgoTInterface, path string) int {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
