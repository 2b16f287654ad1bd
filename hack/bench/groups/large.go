package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/memlimit"
)

// The large run: a file of a million users imported into SQLite in full
// mode, each user in two groups and with a manager, against the same
// users without groups and managers. Each import runs in a process of
// its own, under the memory limit a worker derives from its Job's
// default limit, so that its peak RSS is its own:
//
//	BENCH groups users=1000000 groups=… with_s=… without_s=… overhead=… peak_rss_mib=…
//
// peak_rss_mib is the import with groups and managers.

// sqlColumns are the users table's columns besides the identity.
var sqlColumns = []string{"mail", "givenName", "sn", "cn", "ou", "title", "l", "departmentNumber", "manager", "mark"}

// largeRun imports the file twice, each into a fresh database, and
// prints the BENCH line.
func largeRun(users int, heap, cpu string) error {
	tmp, err := os.MkdirTemp("", "uio-bench-groups-large-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	path, sum, err := benchio.WriteCSV(tmp, "users.csv", users)
	if err != nil {
		return err
	}
	run := func(relations bool) (map[string]string, error) {
		heap, cpu := heap, cpu
		if heap != "" {
			heap = fmt.Sprintf("%s.%v", heap, relations)
		}
		if cpu != "" {
			cpu = fmt.Sprintf("%s.%v", cpu, relations)
		}
		db := filepath.Join(tmp, fmt.Sprintf("users-%v.db", relations))
		err := sqldir.CreateTable(context.Background(), v1alpha1.SQLDriverSQLite, db, sqldir.TableSpec{
			Table: "users", IdentityColumn: "uid", Columns: sqlColumns, Groups: &v1alpha1.SQLGroups{Table: "memberships"}})
		if err != nil {
			return nil, err
		}
		args := []string{"-child", "-heapprofile", heap, "-cpuprofile", cpu, "-file", path, "-sum", sum, "-db", db, "-relations=" + strconv.FormatBool(relations), "-large", strconv.Itoa(users)}
		res, err := benchio.Child(args, nil)
		if err == nil {
			fmt.Fprintf(os.Stderr, "large import (groups and managers %v): %v\n", relations, res)
		}
		return res, err
	}
	without, err := run(false)
	if err != nil {
		return fmt.Errorf("large run without groups: %w", err)
	}
	with, err := run(true)
	if err != nil {
		return fmt.Errorf("large run with groups: %w", err)
	}
	fmt.Printf("BENCH groups users=%d groups=%s with_s=%s without_s=%s overhead=%.2f peak_rss_mib=%s without_peak_rss_mib=%s load1=%s\n",
		users, with["groups"], with["seconds"], without["seconds"], benchio.Num(with, "seconds")/benchio.Num(without, "seconds"),
		with["peak_rss_mib"], without["peak_rss_mib"], benchio.Load1())
	return nil
}

// largeChild is one import of the large run, in the child process.
func largeChild(path, sum, db, heap, cpu string, users int, relations bool) error {
	limits := jobs.DefaultResources().Limits
	memlimit.Set(limits.Memory().Value())
	if heap != "" {
		defer benchio.HeapAtPeak(heap)()
	}
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	opts := directory.Options{IdentityAttribute: "uid", ManagedOnly: true, MarkerAttribute: "mark", MarkerValue: "user-import-operator", Concurrency: 4}
	spec := &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: "users",
		Groups: &v1alpha1.SQLGroups{Table: "memberships"}, Insecure: true}
	d, err := sqldir.New(ctx, spec, opts, func(context.Context, string, string) ([]byte, error) { return []byte(db), nil })
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := engine.Config{
		Mapping: userMapping(), Mode: v1alpha1.ModeFull, MissingUsers: v1alpha1.MissingIgnore,
		Directory: opts, BatchSize: 1000, Concurrency: 4, ProgressInterval: time.Second, CreateGroups: true,
	}
	if relations {
		cfg.Mapping = relationMapping()
	}
	secs, res, err := benchio.Import(ctx, path, sum, d, cfg)
	if err != nil {
		return err
	}
	g := res.Counts.Groups
	if res.Counts.Created != int64(users) || res.Counts.Failed != 0 {
		return fmt.Errorf("%d created, %d failed", res.Counts.Created, res.Counts.Failed)
	}
	if relations && (g.MembershipsAdded != 2*res.Counts.Created || g.ManagersSet+g.ManagersMissing == 0) {
		return fmt.Errorf("groups and managers: %+v", g)
	}
	fmt.Printf("RESULT seconds=%.2f peak_rss_mib=%d groups=%d memberships=%d managers=%d\n", secs, benchio.PeakRSS(0)>>20, g.GroupsCreated, g.MembershipsAdded, g.ManagersSet)
	return nil
}
