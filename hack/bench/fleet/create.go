package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
)

func (f *fleet) create(ctx context.Context) error {
	n := *namespaces
	// Namespaces and directories.
	err := parallel(n, func(i int) error {
		ns := nsName(i)
		if err := f.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
		return f.directory(ctx, i)
	})
	if err != nil {
		return fmt.Errorf("directories: %w", err)
	}
	say("%d namespaces and directories", n)

	// Schedules: half cron, half on change. Namespace 0 holds the ones on
	// one shared ConfigMap; the black-holed namespaces' watch their SFTP
	// server; the rest go round the healthy namespaces.
	onChange, cron := *schedules/2, *schedules-*schedules/2
	type plan struct {
		ns       int
		name, cm string
		sftp     bool
	}
	var plans []plan
	for k := range *shared {
		plans = append(plans, plan{ns: 0, name: fmt.Sprintf("shared-%03d", k), cm: "shared"})
	}
	perHung := 5
	for i := n - *hung; i < n; i++ {
		for k := range perHung {
			plans = append(plans, plan{ns: i, name: fmt.Sprintf("sftp-%d", k), sftp: true})
		}
	}
	healthy := n - *hung - 1
	for k := 0; len(plans) < onChange; k++ {
		i := 1 + k%healthy
		plans = append(plans, plan{ns: i, name: fmt.Sprintf("change-%d", k/healthy), cm: fmt.Sprintf("export-%d", k/healthy)})
	}
	cms := map[string]*watchedCM{}
	for _, p := range plans {
		if p.sftp {
			continue
		}
		key := nsName(p.ns) + "/" + p.cm
		w := cms[key]
		if w == nil {
			w = &watchedCM{namespace: nsName(p.ns), name: p.cm}
			cms[key] = w
		}
		w.schedules = append(w.schedules, p.name)
	}
	for _, w := range cms {
		f.cms = append(f.cms, *w)
	}
	slices.SortFunc(f.cms, func(a, b watchedCM) int { return strings.Compare(a.namespace+a.name, b.namespace+b.name) })
	err = parallel(len(f.cms), func(k int) error {
		w := f.cms[k]
		return f.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: w.namespace, Name: w.name},
			Data: map[string]string{"users.csv": fmt.Sprintf("email\n%s.%s@fleet.example\n", w.namespace, w.name)}})
	})
	if err != nil {
		return fmt.Errorf("configmaps: %w", err)
	}
	// The burst's imports and the cron schedules read export-0 of every
	// healthy namespace, watched or not.
	var unwatched []string
	for i := 1; i <= healthy; i++ {
		if cms[nsName(i)+"/export-0"] == nil {
			unwatched = append(unwatched, nsName(i))
		}
	}
	err = parallel(len(unwatched), func(k int) error {
		return f.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: unwatched[k], Name: "export-0"},
			Data: map[string]string{"users.csv": fmt.Sprintf("email\n%s.export-0@fleet.example\n", unwatched[k])}})
	})
	if err != nil {
		return fmt.Errorf("configmaps: %w", err)
	}
	err = parallel(len(plans), func(k int) error {
		p := plans[k]
		src := v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: p.cm, Key: "users.csv"}}
		if p.sftp {
			src = v1alpha1.ImportSource{SFTP: &v1alpha1.SFTPSource{Host: "127.0.0.1", Port: f.hole,
				FileSelector:                    v1alpha1.FileSelector{Path: fmt.Sprintf("exports/%s.csv", p.name)},
				Credentials:                     v1alpha1.LocalObjectReference{Name: "sftp"},
				InsecureSkipHostKeyVerification: true}}
		}
		return f.c.Create(ctx, &v1alpha1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: nsName(p.ns), Name: p.name},
			Spec: v1alpha1.ImportScheduleSpec{
				Triggers: &v1alpha1.ScheduleTriggers{OnChange: true, PollSeconds: ptr.To[int32](poll), DebounceSeconds: ptr.To[int32](debounce)},
				Template: v1alpha1.UserImportTemplate{Spec: importSpec(src)},
			}})
	})
	if err != nil {
		return fmt.Errorf("schedules on change: %w", err)
	}
	for _, p := range plans {
		if !p.sftp {
			f.onChangeHealthy++
		}
	}
	// Daily cron schedules, none due within the next two hours.
	now := time.Now().UTC()
	err = parallel(cron, func(k int) error {
		i := 1 + k%(n-1)
		cronAt := now.Add(2*time.Hour + time.Duration(k%600)*time.Minute)
		return f.c.Create(ctx, &v1alpha1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: nsName(i), Name: fmt.Sprintf("nightly-%d", k/(n-1))},
			Spec: v1alpha1.ImportScheduleSpec{
				Schedule: fmt.Sprintf("%d %d * * *", cronAt.Minute(), cronAt.Hour()),
				Template: v1alpha1.UserImportTemplate{Spec: importSpec(v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "export-0", Key: "users.csv"}})},
			}})
	})
	if err != nil {
		return fmt.Errorf("cron schedules: %w", err)
	}
	f.schedules = len(plans) + cron
	say("%d schedules", f.schedules)

	// Finished imports, as a worker leaves them.
	per := *history / n
	err = parallel(per*n, func(k int) error {
		i := k % n
		spec := importSpec(v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "export-0", Key: "users.csv"}})
		if isHung(i) {
			spec.Report = v1alpha1.ReportMail{Recipients: []string{"hr@fleet.example"}}
		}
		imp := &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: nsName(i), Name: fmt.Sprintf("done-%d", k/n)}, Spec: spec}
		if err := f.c.Create(ctx, imp); err != nil {
			return err
		}
		imp.Status.Phase = v1alpha1.PhaseCompleted
		imp.Status.Progress = &v1alpha1.ProgressStatus{Percent: 100, RowsTotal: 1, RowsProcessed: 1, ChangeCounts: v1alpha1.ChangeCounts{Created: 1}}
		return f.c.Status().Update(ctx, imp)
	})
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	f.history = per * n
	return nil
}

func importSpec(src v1alpha1.ImportSource) v1alpha1.UserImportSpec {
	return v1alpha1.UserImportSpec{
		DirectoryRef: v1alpha1.LocalObjectReference{Name: "directory"},
		Source:       src,
		Mode:         v1alpha1.ModeDelta,
		Mapping:      []v1alpha1.AttributeMapping{{Attribute: "email", Column: "email", Identity: true}},
	}
}

// directory creates namespace i's directory: an SQLite file, or the
// black holes.
func (f *fleet) directory(ctx context.Context, i int) error {
	ns := nsName(i)
	spec := v1alpha1.UserDirectorySpec{IdentityAttribute: "email"}
	if isHung(i) {
		spec.SCIM = &v1alpha1.SCIMDirectory{URL: fmt.Sprintf("http://127.0.0.1:%d/scim/v2", f.hole), Insecure: true}
		spec.Mail = &v1alpha1.MailRelay{Host: "127.0.0.1", Port: f.hole, TLS: v1alpha1.MailNoTLS, Insecure: true, From: "hr@fleet.example"}
		if err := f.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sftp"},
			StringData: map[string]string{"username": "hr", "password": "not-a-secret"}}); err != nil {
			return err
		}
	} else {
		dsn := filepath.Join(f.work, ns+".db")
		if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverSQLite, dsn, sqldir.TableSpec{Table: "users", IdentityColumn: "email",
			Columns: []string{"userImportManagedBy"}}); err != nil {
			return err
		}
		if err := f.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dsn"},
			StringData: map[string]string{"dsn": dsn}}); err != nil {
			return err
		}
		spec.SQL = &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite, DSN: v1alpha1.SecretKeyRef{Name: "dsn", Key: "dsn"}, Table: "users"}
	}
	return f.c.Create(ctx, &v1alpha1.UserDirectory{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "directory"}, Spec: spec})
}

// parallel runs fn for 0..n-1 on 32 goroutines and returns the first
// error.
func parallel(n int, fn func(int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= n || first.Load() != nil {
					return
				}
				if err := fn(k); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}
