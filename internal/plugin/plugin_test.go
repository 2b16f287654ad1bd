package plugin

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/controllers"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/scheme"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/worker"
)

// The plugin runs against a real API server and manager, whose imports
// run in the manager's process into an SQLite file.

type env struct {
	t *testing.T
	e *testenv.Env
	c client.Client
	// ns is the test's own namespace: the tests share one API server.
	ns     string
	dbPath string
	out    bytes.Buffer
}

func start(t *testing.T) *env {
	e := testenv.SharedEnv(t)
	v := &env{t: t, e: e, c: e.Client, dbPath: filepath.Join(t.TempDir(), "users.db")}
	ctx := context.Background()
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	if err := v.c.Create(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	v.ns = namespace.Name
	// The manager watches the test's namespace alone: the API server is
	// shared with other tests (and, under `make test`, other packages).
	opts := testenv.ManagerOptions()
	opts.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{v.ns: {}}}
	mgr, err := ctrl.NewManager(e.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.Setup(mgr, controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorInProcess, Run: worker.RunInProcess,
		PollInterval: 200 * time.Millisecond, DirectoryRetryInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	stop := testenv.RunManager(context.Background(), mgr)
	t.Cleanup(func() { _ = stop() })
	// The next test's manager finds nothing of this one to reconcile
	// (envtest deletes no namespace's objects).
	t.Cleanup(func() {
		for _, o := range []client.Object{&v1alpha1.ImportSchedule{}, &v1alpha1.UserImport{}, &v1alpha1.UserDirectory{}} {
			_ = v.c.DeleteAllOf(context.Background(), o, client.InNamespace(v.ns))
		}
	})
	if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverSQLite, v.dbPath, sqldir.TableSpec{
		Table: "users", IdentityColumn: "user_name", Columns: []string{"title", "code", "userImportManagedBy"},
	}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", v.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Twenty managed users; the file below updates, keeps and drops some.
	for i := range 20 {
		if _, err := db.Exec(`INSERT INTO users (user_name, title, active, userImportManagedBy) VALUES (?, 'Clerk', 1, 'user-import-operator')`, fmt.Sprintf("u%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: "dsn"}, StringData: map[string]string{"dsn": v.dbPath}},
		&v1alpha1.UserDirectory{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: "db"}, Spec: v1alpha1.UserDirectorySpec{
			IdentityAttribute: "user_name",
			SQL:               &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite, DSN: v1alpha1.SecretKeyRef{Name: "dsn", Key: "dsn"}, Table: "users"},
			RecoveryCodes:     &v1alpha1.DirectoryRecoveryCodes{Attribute: "code", MemoryKiB: 64, Iterations: 1},
		}},
	} {
		if err := v.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// file keeps u00-u09 (u00-u02 with a new title), drops u10-u19, adds two
// users, one of them named like a formula, and has two bad rows.
func file() string {
	var b strings.Builder
	b.WriteString("user,title\n")
	for i := range 10 {
		title := "Clerk"
		if i < 3 {
			title = "Lead"
		}
		fmt.Fprintf(&b, "u%02d,%s\n", i, title)
	}
	b.WriteString("new-1,Clerk\n\"=HYPERLINK(\"\"http://x\"\")\",Clerk\n,Clerk\nbad,Clerk,extra\n")
	return b.String()
}

func (v *env) newImport(name string, action v1alpha1.ImportAction) *v1alpha1.UserImport {
	return v.newImportWith(name, action, nil)
}

func (v *env) newImportWith(name string, action v1alpha1.ImportAction, edit func(*v1alpha1.UserImportSpec)) *v1alpha1.UserImport {
	v.t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: name}, Data: map[string]string{"users.csv": file()}}
	if err := v.c.Create(ctx, cm); err != nil {
		v.t.Fatal(err)
	}
	imp := &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: name}, Spec: v1alpha1.UserImportSpec{
		DirectoryRef: v1alpha1.LocalObjectReference{Name: "db"},
		Source:       v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: name, Key: "users.csv"}},
		Mode:         v1alpha1.ModeFull, MissingUsers: v1alpha1.MissingDeactivate,
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: "user_name", Column: "user", Identity: true, Required: true},
			{Attribute: "title", Column: "title"},
		},
		Action: action,
	}}
	if edit != nil {
		edit(&imp.Spec)
	}
	if err := v.c.Create(ctx, imp); err != nil {
		v.t.Fatal(err)
	}
	return imp
}

func (v *env) get(name string) *v1alpha1.UserImport {
	v.t.Helper()
	var imp v1alpha1.UserImport
	if err := v.c.Get(context.Background(), types.NamespacedName{Namespace: v.ns, Name: name}, &imp); err != nil {
		v.t.Fatal(err)
	}
	return &imp
}

func (v *env) waitPhase(name string, phase v1alpha1.ImportPhase) *v1alpha1.UserImport {
	v.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var imp v1alpha1.UserImport
		if err := v.c.Get(context.Background(), types.NamespacedName{Namespace: v.ns, Name: name}, &imp); err != nil {
			v.t.Fatal(err)
		}
		if imp.Status.Phase == phase {
			return &imp
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("UserImport %s is %s, want %s: %+v", name, imp.Status.Phase, phase, imp.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (v *env) plugin(in string) *Plugin {
	v.out.Reset()
	return &Plugin{Client: v.c, Namespace: v.ns, In: strings.NewReader(in), Out: &v.out}
}

// report shows a preview's creates, updates, deactivations and errors,
// filtered by action, as a table, CSV with formula cells escaped, or
// JSON; approve sets exactly the count the preview reported, and the
// import then deactivates that many users.
func TestReportAndApprove(t *testing.T) {
	v := start(t)
	ctx := context.Background()
	v.newImport("hr", v1alpha1.ActionImport)
	imp := v.waitPhase("hr", v1alpha1.PhasePreviewReady)
	if pv := imp.Status.Preview; pv == nil || pv.Counts.Deactivated != 10 {
		t.Fatalf("preview %+v, want 10 deactivations stopped by the safety threshold", imp.Status.Preview)
	}

	if err := v.plugin("").Report(ctx, "hr", "", "table"); err != nil {
		t.Fatal(err)
	}
	table := v.out.String()
	for _, want := range []string{"LINE", "u00", "create", "update", "deactivate", "error", "u10", "17 rows planned by the preview"} {
		if !strings.Contains(table, want) {
			t.Fatalf("the table lacks %q:\n%s", want, table)
		}
	}
	if err := v.plugin("").Report(ctx, "hr", "error", "json"); err != nil {
		t.Fatal(err)
	}
	var rows []Row
	if err := json.Unmarshal(v.out.Bytes(), &rows); err != nil || len(rows) != 2 || rows[0].Line != 14 || rows[1].Line != 15 {
		t.Fatalf("errors as JSON: %v %s", err, v.out.String())
	}
	if err := v.plugin("").Report(ctx, "hr", "create", "csv"); err != nil {
		t.Fatal(err)
	}
	if got := v.out.String(); got != "line,identity,action,error\n12,new-1,create,\n13,\"'=HYPERLINK(\"\"http://x\"\")\",create,\n" {
		t.Fatalf("creates as CSV:\n%s", got)
	}

	if err := v.plugin("n\n").Approve(ctx, "hr", false); err == nil || !IsRefusal(err) {
		t.Fatalf("answering n approved: %v", err)
	}
	if err := v.plugin("y\n").Approve(ctx, "hr", false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.out.String(), "would deactivate 10 and delete 0 of 20 managed users") {
		t.Fatalf("approve did not show the count:\n%s", v.out.String())
	}
	done := v.waitPhase("hr", v1alpha1.PhaseCompleted)
	if a := done.Spec.Safety.ApprovedDeprovisions; a == nil || *a != 10 {
		t.Fatalf("approvedDeprovisions %v, want 10", a)
	}
	if c := done.Status.Progress; c == nil || c.Deactivated != 10 || c.Created != 2 || c.Updated != 3 {
		t.Fatalf("the import did %+v, want 10 deactivated, 2 created, 3 updated", done.Status.Progress)
	}
	if err := v.plugin("").Report(ctx, "hr", "deactivate", "table"); err != nil || !strings.Contains(v.out.String(), "10 rows of the import") {
		t.Fatalf("report after the import: %v\n%s", err, v.out.String())
	}

	if err := v.plugin("").Status(ctx, "hr"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UserImport " + v.ns + "/hr: Completed", "created 2, updated 3", "Ready:", "yes"} {
		if !strings.Contains(v.out.String(), want) {
			t.Fatalf("status lacks %q:\n%s", want, v.out.String())
		}
	}
}

// import and cancel move an import on; every verb refuses what makes no
// sense, names a missing object, and says which permission is missing.
func TestVerbsAndRefusals(t *testing.T) {
	v := start(t)
	ctx := context.Background()
	v.newImport("draft", v1alpha1.ActionDraft)
	v.waitPhase("draft", v1alpha1.PhaseDraft)

	refusals := []struct {
		name string
		run  func(*Plugin) error
		want string
	}{
		{"approve a draft", func(p *Plugin) error { return p.Approve(ctx, "draft", true) }, `UserImport "draft" is Draft: approve needs a preview`},
		{"report a draft", func(p *Plugin) error { return p.Report(ctx, "draft", "", "table") }, `UserImport "draft" has no report yet (it is Draft)`},
		{"codes of an import without codes", func(p *Plugin) error { return p.Codes(ctx, "draft", false, "") }, "gives no recovery codes"},
		{"a missing import", func(p *Plugin) error { return p.Status(ctx, "nope") }, `UserImport "nope" not found in namespace "` + v.ns + `"`},
		{"a missing schedule", func(p *Plugin) error { return p.RunNow(ctx, "nope", "now") }, `ImportSchedule "nope" not found in namespace "` + v.ns + `"`},
		{"a bad action", func(p *Plugin) error { return p.Report(ctx, "draft", "explode", "table") }, `--action "explode"`},
	}
	for _, r := range refusals {
		err := r.run(v.plugin(""))
		if err == nil || !IsRefusal(err) || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: got %v, want a refusal with %q", r.name, err, r.want)
		}
	}

	if err := v.plugin("").Import(ctx, "draft", false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.out.String(), "action Import (it was Draft)") {
		t.Fatalf("import said:\n%s", v.out.String())
	}
	// 10 deactivations of 20 exceed the default 10 %: it stops for approval.
	v.waitPhase("draft", v1alpha1.PhasePreviewReady)
	if err := v.plugin("").Status(ctx, "draft"); err != nil || !strings.Contains(v.out.String(), "next      kubectl usersync approve draft") {
		t.Fatalf("status of a safety stop: %v\n%s", err, v.out.String())
	}
	if err := v.plugin("").Cancel(ctx, "draft"); err != nil {
		t.Fatal(err)
	}
	v.waitPhase("draft", v1alpha1.PhaseCancelled)
	for _, run := range []func(*Plugin) error{
		func(p *Plugin) error { return p.Import(ctx, "draft", false) },
		func(p *Plugin) error { return p.Cancel(ctx, "draft") },
	} {
		if err := run(v.plugin("")); err == nil || !strings.Contains(err.Error(), "is Cancelled, a final phase") {
			t.Errorf("a verb on a cancelled import: %v", err)
		}
	}

	// A user who may read imports but not Secrets is told so.
	cfg, err := v.e.UserConfig(ctx, v.ns, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: "viewer"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"userimports"}, Verbs: []string{"get"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: "viewer"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "viewer"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: v.ns, Name: "viewer"}}},
	} {
		if err := v.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	vc, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	p := &Plugin{Client: vc, Namespace: v.ns, Out: &v.out}
	if err := p.Report(ctx, "draft", "", "table"); err == nil || !strings.Contains(err.Error(), `you may not get secrets in namespace "`+v.ns+`"`) {
		t.Errorf("report without access to Secrets: %v", err)
	}
	if err := p.Cancel(ctx, "draft"); err == nil || !strings.Contains(err.Error(), "a final phase") {
		t.Errorf("cancel as viewer: %v", err)
	}
	v.newImport("other", v1alpha1.ActionDraft)
	v.waitPhase("other", v1alpha1.PhaseDraft)
	if err := p.Import(ctx, "other", false); err == nil || !strings.Contains(err.Error(), `you may not patch userimports in namespace "`+v.ns+`"`) {
		t.Errorf("import without patch: %v", err)
	}
}

// status of a running import draws its progress and estimates the time
// left from the rate.
func TestStatusWhileImporting(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	imp := &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: "people", Name: "hr"},
		Spec: v1alpha1.UserImportSpec{DirectoryRef: v1alpha1.LocalObjectReference{Name: "corp"}, Mode: v1alpha1.ModeFull, Action: v1alpha1.ActionImport}}
	imp.Status.Phase = v1alpha1.PhaseImporting
	imp.Status.Source = &v1alpha1.SourceStatus{Rows: 100000}
	imp.Status.StartTime = &metav1.Time{Time: now.Add(-10 * time.Second)}
	imp.Status.Progress = &v1alpha1.ProgressStatus{RowsProcessed: 40000, Percent: 40, RowsPerSecond: 4000,
		UpdateTime: &metav1.Time{Time: now.Add(-2 * time.Second)}, ChangeCounts: v1alpha1.ChangeCounts{Created: 39990, Failed: 10}}
	var b bytes.Buffer
	writeStatus(&b, imp, now)
	want := "  progress  [############------------------]  40%  40000 of 100000 rows, 4000 rows/s, ETA 15s (reported 2s ago)\n"
	if !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "created 39990") {
		t.Fatalf("status:\n%s\nwant the line\n%s", b.String(), want)
	}
}

// status names the file an import read in place, and what became of it.
func TestStatusOfAFileReadInPlace(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	imp := &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: "people", Name: "nightly"},
		Spec: v1alpha1.UserImportSpec{DirectoryRef: v1alpha1.LocalObjectReference{Name: "corp"}, Mode: v1alpha1.ModeDelta,
			Source: v1alpha1.ImportSource{AfterImport: &v1alpha1.AfterImport{Action: v1alpha1.AfterImportMove, To: "archive/"}}}}
	imp.Status.Phase = v1alpha1.PhaseCompleted
	mod := metav1.NewTime(now.Add(-3 * time.Hour))
	imp.Status.Source = &v1alpha1.SourceStatus{Name: "out/employees_20261129.csv", Size: 1234, ModTime: &mod,
		AfterImport: &v1alpha1.AfterImportStatus{Result: v1alpha1.AfterImportMoved, To: "archive/employees_20261129.csv"}}
	var b bytes.Buffer
	writeStatus(&b, imp, now)
	want := "  source    out/employees_20261129.csv, 1234 bytes, modified 2026-11-29T09:00:00Z; moved to archive/employees_20261129.csv\n"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("status:\n%s\nwant the line\n%s", b.String(), want)
	}
	imp.Status.Source.AfterImport = &v1alpha1.AfterImportStatus{Result: v1alpha1.AfterImportFailed, Message: "source.sftp: 10.0.0.5:22 refused the credentials"}
	b.Reset()
	writeStatus(&b, imp, now)
	if !strings.Contains(b.String(), "; move failed: source.sftp: 10.0.0.5:22 refused the credentials\n") {
		t.Fatalf("status:\n%s", b.String())
	}
}

// codes prints the codes of an import that gave some, as one CSV; run-now
// starts a schedule's import.
func TestCodesAndRunNow(t *testing.T) {
	v := start(t)
	ctx := context.Background()
	imp := v.newImportWith("coded", v1alpha1.ActionImport, func(s *v1alpha1.UserImportSpec) {
		s.Mode, s.MissingUsers = v1alpha1.ModeDelta, v1alpha1.MissingIgnore
		s.RecoveryCodes = v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesForNewUsers}
	})
	v.waitPhase("coded", v1alpha1.PhaseCompleted)
	if err := v.plugin("").Codes(ctx, "coded", false, ""); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(v.out.String()), "\n")
	if len(lines) != 3 || lines[0] != "identity,code,expires" || !strings.HasPrefix(lines[1], "new-1,") || !strings.HasPrefix(lines[2], "\"'=HYPERLINK(") {
		t.Fatalf("codes:\n%s", v.out.String())
	}
	printed := v.out.String()
	// To a terminal, codes need --show; a file gets mode 0600.
	term := v.plugin("")
	term.Terminal = true
	if err := term.Codes(ctx, "coded", false, ""); !IsRefusal(err) || !strings.Contains(err.Error(), "--show") || v.out.Len() != 0 {
		t.Fatalf("codes to a terminal without --show: %v, printed %q", err, v.out.String())
	}
	if err := term.Codes(ctx, "coded", true, ""); err != nil || v.out.String() != printed {
		t.Fatalf("codes with --show: %v\n%s", err, v.out.String())
	}
	path := filepath.Join(t.TempDir(), "codes.csv")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	v.out.Reset()
	if err := term.Codes(ctx, "coded", false, path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the codes file: %v, mode %v", err, fi.Mode())
	}
	if b, _ := os.ReadFile(path); string(b) != printed || strings.Contains(v.out.String(), "new-1") {
		t.Fatalf("the codes file holds\n%s\nand the terminal got\n%s", b, v.out.String())
	}

	sched := &v1alpha1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: "nightly"}, Spec: v1alpha1.ImportScheduleSpec{
		Schedule: "0 3 * * *", Template: v1alpha1.UserImportTemplate{Spec: imp.Spec}}}
	sched.Spec.Template.Spec.RecoveryCodes = v1alpha1.RecoveryCodes{}
	if err := v.c.Create(ctx, sched); err != nil {
		t.Fatal(err)
	}
	if err := v.plugin("").RunNow(ctx, "nightly", "2026-11-29T12:00:00Z"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var l v1alpha1.UserImportList
		if err := v.c.List(ctx, &l, client.InNamespace(v.ns), client.MatchingLabels{v1alpha1.ScheduleLabel: "nightly"}); err != nil {
			t.Fatal(err)
		}
		if len(l.Items) == 1 && strings.HasPrefix(l.Items[0].Name, "nightly-now-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run-now made no import: %d", len(l.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// import asks before an import whose preview plans deprovisions, and
// writes only on yes (or with --yes).
func TestImportAsksBeforeDeprovisions(t *testing.T) {
	v := start(t)
	ctx := context.Background()
	v.newImport("ask", v1alpha1.ActionPreview)
	v.waitPhase("ask", v1alpha1.PhasePreviewReady)
	if err := v.plugin("n\n").Import(ctx, "ask", false); !IsRefusal(err) || !strings.Contains(v.out.String(), "deactivate 10 and delete 0 users") {
		t.Fatalf("answering n: %v\n%s", err, v.out.String())
	}
	if imp := v.get("ask"); imp.Spec.Action != v1alpha1.ActionPreview {
		t.Fatalf("answering n set action %s", imp.Spec.Action)
	}
	if err := v.plugin("").Import(ctx, "ask", true); err != nil {
		t.Fatal(err)
	}
	if imp := v.get("ask"); imp.Spec.Action != v1alpha1.ActionImport {
		t.Fatalf("with --yes, action %s", imp.Spec.Action)
	}
}

// Control characters from files and servers never reach the terminal
// as such.
func TestOutputEscapesControlCharacters(t *testing.T) {
	var b strings.Builder
	p := &Plugin{Out: &b}
	fmt.Fprintf(p.out(), "ann\x1b]0;owned\x07 bob\r\u009b31m\tok\n")
	if got, want := b.String(), "ann\\x1b]0;owned\\x07 bob\\x0d\\u{9b}31m\tok\n"; got != want {
		t.Fatalf("printed %q, want %q", got, want)
	}
}
