// Package demo runs the product on one machine with no cluster and no
// server: an embedded control plane (etcd and kube-apiserver), the
// manager with the in-process executor, and a directory in an SQLite
// file. It imports a generated HR export and shows the import move
// through its phases, as `kubectl get userimports` would.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/controllers"
	"github.com/userimport/user-import-operator/internal/csvsafe"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/worker"
)

// Options configure a demo run.
type Options struct {
	// WorkDir holds the kubeconfig, the SQLite file and the sample files.
	WorkDir string
	// Assets is the directory with etcd and kube-apiserver.
	Assets string
	// Rows is the number of users in the generated export.
	Rows int
	// ExitAfterImport ends the demo once the first import is final,
	// instead of running until interrupted.
	ExitAfterImport bool
	// Out receives what the demo shows.
	Out io.Writer
}

const (
	namespace     = "default"
	directoryName = "demo-directory"
	importName    = "hr-initial-import"
	table         = "users"
	// membershipTable holds the groups: one row per user and group.
	membershipTable = "memberships"
)

// Run runs the demo until ctx ends, or until the first import is final
// with ExitAfterImport. Every process it starts is stopped before it
// returns.
func Run(ctx context.Context, o Options) (err error) {
	if o.Rows <= 0 {
		o.Rows = 1000
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return err
	}
	work, err := filepath.Abs(o.WorkDir)
	if err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }

	start := time.Now()
	say("starting a control plane (etcd, kube-apiserver from %s)…", o.Assets)
	env, err := testenv.New(o.Assets)
	if err != nil {
		return err
	}
	defer func() {
		if serr := env.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping the control plane: %w", serr)
		}
	}()
	say("control plane up in %.1fs; CRDs installed", time.Since(start).Seconds())

	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		return err
	}

	mgr, err := ctrl.NewManager(env.Config, testenv.ManagerOptions())
	if err != nil {
		return err
	}
	if err := controllers.Setup(mgr, controllers.Options{
		Executor: controllers.ExecutorInProcess,
		Run:      worker.RunInProcess,
		// Everything the demo runs listens on this machine's loopback.
		AllowedHosts:           testenv.Loopback(),
		PollInterval:           time.Second,
		DirectoryRetryInterval: 2 * time.Second,
	}); err != nil {
		return err
	}
	stopMgr := testenv.RunManager(ctx, mgr)
	defer func() {
		if merr := stopMgr(); merr != nil && err == nil {
			err = fmt.Errorf("manager: %w", merr)
		}
	}()
	say("manager running with the in-process executor")

	c := env.Client
	dbPath := filepath.Join(work, "users.db")
	if err := setUp(ctx, c, dbPath, o.Rows); err != nil {
		return err
	}
	say("created UserDirectory %s (SQLite %s) and UserImport %s of %d generated users", directoryName, dbPath, importName, o.Rows)
	if err := writeDeltaSample(filepath.Join(work, "delta-import.yaml"), o.Rows); err != nil {
		return err
	}
	say("")

	phase, err := watchImport(ctx, c, o.Out, types.NamespacedName{Namespace: namespace, Name: importName})
	if err != nil {
		return err
	}
	say("")
	if err := showDirectory(ctx, o.Out, dbPath); err != nil {
		return err
	}
	say("")
	if err := showGroups(ctx, o.Out, dbPath); err != nil {
		return err
	}
	say("")
	if err := showCodes(ctx, c, o.Out, dbPath); err != nil {
		return err
	}
	say("")
	if o.ExitAfterImport {
		say("Without --exit-after-import the control plane keeps running, and in another terminal:")
	} else {
		say("The control plane keeps running. In another terminal:")
	}
	say("  kubectl --kubeconfig %s get userimports -w", kubeconfig)
	say("  kubectl --kubeconfig %s apply -f %s", kubeconfig, filepath.Join(work, "delta-import.yaml"))
	say("  kubectl --kubeconfig %s get usersync", kubeconfig)
	say("  kubectl --kubeconfig %s get secret %s-codes-0 -o jsonpath='{.data.codes\\.csv}' | base64 -d | head", kubeconfig, importName)
	if o.ExitAfterImport {
		if phase != v1alpha1.PhaseCompleted {
			return fmt.Errorf("import %s ended %s", importName, phase)
		}
		return nil
	}
	say("Press Ctrl-C to stop; every process started here is stopped with it.")
	<-ctx.Done()
	return nil
}

// setUp creates the table, the directory and the first import.
func setUp(ctx context.Context, c client.Client, dbPath string, rows int) error {
	_ = os.Remove(dbPath)
	if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverSQLite, dbPath, sqldir.TableSpec{
		Table: table, IdentityColumn: "user_name",
		Columns: []string{"email", "given_name", "family_name", "department", "title", "location", "manager", "recovery_code", "recovery_code_expires", "userImportManagedBy"},
		Groups:  &v1alpha1.SQLGroups{Table: membershipTable},
	}); err != nil {
		return err
	}
	var csvData bytes.Buffer
	cw := csvsafe.NewWriter(&csvData)
	_ = cw.Write(hrgen.Header)
	for i := 0; i < rows; i++ {
		_ = cw.Write(hrgen.Row(1, i))
	}
	_ = cw.Flush()

	objs := []client.Object{
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "demo-directory-dsn"},
			StringData: map[string]string{"dsn": dbPath},
		},
		&v1alpha1.UserDirectory{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: directoryName},
			Spec: v1alpha1.UserDirectorySpec{
				IdentityAttribute: "user_name",
				SQL: &v1alpha1.SQLDirectory{
					Driver: v1alpha1.SQLDriverSQLite,
					DSN:    v1alpha1.SecretKeyRef{Name: "demo-directory-dsn", Key: "dsn"},
					Table:  table,
					Groups: &v1alpha1.SQLGroups{Table: membershipTable},
				},
				// A light argon2id, so that the demo's thousand codes
				// are hashed in a few seconds; production keeps the
				// default cost.
				RecoveryCodes: &v1alpha1.DirectoryRecoveryCodes{Attribute: "recovery_code", ExpiresAttribute: "recovery_code_expires", MemoryKiB: 1024, Iterations: 1},
				// Batches of a hundred, so that the thousand users show
				// the progress move.
				Execution: v1alpha1.ExecutionSettings{BatchSize: 100},
			},
		},
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "hr-export"},
			Data:       map[string]string{"employees.csv": csvData.String()},
		},
		&v1alpha1.UserImport{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: importName},
			Spec: v1alpha1.UserImportSpec{
				DirectoryRef: v1alpha1.LocalObjectReference{Name: directoryName},
				Source:       v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "hr-export", Key: "employees.csv"}},
				Mode:         v1alpha1.ModeFull,
				MissingUsers: v1alpha1.MissingDeactivate,
				Mapping:      demoMapping(),
				RecoveryCodes: v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesForNewUsers,
					ExpiresAfter: &metav1.Duration{Duration: 30 * 24 * time.Hour}},
			},
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

func demoMapping() []v1alpha1.AttributeMapping {
	lower := []v1alpha1.Transform{{Type: "Trim"}, {Type: "Lower"}}
	return []v1alpha1.AttributeMapping{
		{Attribute: "user_name", Column: "email", Identity: true, Transforms: lower, Check: "Email"},
		{Attribute: "email", Column: "email", Transforms: lower, Check: "Email"},
		{Attribute: "given_name", Column: "first_name", Required: true},
		{Attribute: "family_name", Column: "last_name", Required: true},
		{Attribute: "department", Column: "department"},
		{Attribute: "title", Column: "title"},
		{Attribute: "location", Column: "location"},
		// Each user joins the group of its department and of its site,
		// and refers to its manager.
		{Attribute: "groups", Template: "dept-{{.department}};site-{{.location}}", Split: ";", Target: v1alpha1.TargetGroups},
		{Attribute: "manager", Column: "manager_email", Transforms: lower, Target: v1alpha1.TargetManager},
	}
}

// column prints a count as kubectl does: nothing for 0, which status
// leaves out.
func column(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

// watchImport prints the import's row of `kubectl get userimports` (the
// CRD's printer columns) each time it changes, until it is final.
func watchImport(ctx context.Context, c client.Client, out io.Writer, key types.NamespacedName) (v1alpha1.ImportPhase, error) {
	const format = "%-20s %-16s %-6s %-16s %-9s %-8s %-8s %-7s %-8s %s\n"
	fmt.Fprintf(out, format, "NAME", "DIRECTORY", "MODE", "PHASE", "PROGRESS", "CREATED", "UPDATED", "FAILED", "INVITED", "AGE")
	last := ""
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var imp v1alpha1.UserImport
		if err := c.Get(ctx, key, &imp); err != nil {
			return "", err
		}
		var p v1alpha1.ProgressStatus
		if imp.Status.Progress != nil {
			p = *imp.Status.Progress
		}
		var invited int64
		if i := imp.Status.Invitations; i != nil {
			invited = i.Sent
		}
		row := []any{imp.Name, imp.Spec.DirectoryRef.Name, imp.Spec.Mode, imp.Status.Phase,
			column(int64(p.Percent)), column(p.Created), column(p.Updated), column(p.Failed), column(invited)}
		// The age alone changing is no news.
		if line := fmt.Sprint(row...); line != last {
			age := duration.HumanDuration(time.Since(imp.CreationTimestamp.Time))
			fmt.Fprintf(out, format, append(row, age)...)
			last = line
		}
		if imp.Status.Phase.IsFinal() {
			if imp.Status.Phase != v1alpha1.PhaseCompleted {
				for _, cond := range imp.Status.Conditions {
					if cond.Type == v1alpha1.ConditionReady {
						fmt.Fprintf(out, "%s: %s\n", cond.Reason, cond.Message)
					}
				}
			}
			return imp.Status.Phase, nil
		}
		select {
		case <-ctx.Done():
			return "", errors.New("interrupted before the import ended")
		case <-tick.C:
		}
	}
}
