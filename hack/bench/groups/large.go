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
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

// The large run: a file of a million users imported in full mode, each
// user in two groups and with a manager, against the same users without
// groups and managers, into SQLite and into the PostgreSQL server of the
// test peers. Each import runs in a process of its own, under the memory
// limit a worker derives from its Job's default limit, so that its peak
// RSS is its own:
//
//	BENCH groups users=1000000 groups=… with_s=… without_s=… overhead=… peak_rss_mib=… rerun_s=… rerun_peak_rss_mib=… pg_with_s=… pg_without_s=… pg_overhead=… pg_peak_rss_mib=… pg_without_cpu_s=… pg_without_server_cpu_s=… pg_memberships_copy_s=… pg_memberships_copy_server_cpu_s=…
//
// The keys without a prefix are SQLite's; peak_rss_mib is the import
// with groups and managers, rerun_* the same import again, unchanged.
// pg_memberships_copy_s is the floor of what groups add to an import into
// PostgreSQL: its memberships written with COPY and nothing else (see
// membershipsCopy). The *_cpu_s keys are the CPU of the import without
// groups (its process, and the server's) and of that COPY (the
// server's): what the machine's cores must do at the least.

// sqlColumns are the users table's columns besides the identity.
var sqlColumns = []string{"mail", "givenName", "sn", "cn", "ou", "title", "l", "departmentNumber", "manager", "mark"}

// largeRun imports the file four times, each into fresh tables, then once
// more into the SQLite tables filled with groups and managers, and
// prints the BENCH line.
func largeRun(users int, heap, cpu string, only v1alpha1.SQLDriver) error {
	tmp, path, sum, cleanup, err := benchio.TempCSV("uio-bench-groups-large-", "users.csv", users)
	if err != nil {
		return err
	}
	defer cleanup()
	pg, err := postgres.StartProcess()
	if err != nil {
		return fmt.Errorf("%w (%s)", err, postgres.InstallHint)
	}
	defer pg.Stop()
	server, err := benchio.Postmaster(context.Background(), pg.DSN)
	if err != nil {
		return err
	}
	n := 0
	filled := map[string]int{} // the run whose tables an import filled, by driver and relations
	run := func(driver v1alpha1.SQLDriver, relations, rerun bool) (map[string]string, error) {
		key := fmt.Sprintf("%s-%v", driver, relations)
		if rerun {
			n = filled[key]
		} else {
			n = len(filled) + 1
			filled[key] = n
		}
		profile := func(p string) string {
			if p == "" {
				return ""
			}
			return fmt.Sprintf("%s.%s.%v.%v", p, driver, relations, rerun)
		}
		dsn, table, members := filepath.Join(tmp, fmt.Sprintf("users-%d.db", n)), "users", "memberships"
		if driver == v1alpha1.SQLDriverPostgres {
			dsn, table, members = pg.DSN, fmt.Sprintf("users_%d", n), fmt.Sprintf("memberships_%d", n)
		}
		err := sqldir.CreateTable(context.Background(), driver, dsn, sqldir.TableSpec{
			Table: table, IdentityColumn: "uid", Columns: sqlColumns, Groups: &v1alpha1.SQLGroups{Table: members}})
		if err != nil {
			return nil, err
		}
		args := []string{"-child", "-heapprofile", profile(heap), "-cpuprofile", profile(cpu), "-file", path, "-sum", sum,
			"-driver", string(driver), "-db", dsn, "-table", table, "-members", members,
			"-relations=" + strconv.FormatBool(relations), "-rerun=" + strconv.FormatBool(rerun), "-large", strconv.Itoa(users)}
		before := benchio.ServerCPU(server)
		res, err := benchio.Child(args, nil)
		if err == nil && driver == v1alpha1.SQLDriverPostgres {
			// The child's backends end after it does; the server reaps
			// them within moments.
			time.Sleep(time.Second)
			res["server_cpu_s"] = fmt.Sprintf("%.2f", (benchio.ServerCPU(server) - before).Seconds())
		}
		if err == nil {
			fmt.Fprintf(os.Stderr, "large import into %s (groups and managers %v, unchanged re-run %v): %v\n", driver, relations, rerun, res)
		}
		return res, err
	}
	res := map[string]map[string]string{}
	for _, driver := range []v1alpha1.SQLDriver{v1alpha1.SQLDriverSQLite, v1alpha1.SQLDriverPostgres} {
		if only != "" && driver != only {
			continue
		}
		for _, relations := range []bool{false, true} {
			r, err := run(driver, relations, false)
			if err != nil {
				return fmt.Errorf("large run into %s, groups and managers %v: %w", driver, relations, err)
			}
			res[fmt.Sprintf("%s-%v", driver, relations)] = r
		}
	}
	var floor, floorCPU float64
	if only == "" || only == v1alpha1.SQLDriverPostgres {
		var err error
		floor, floorCPU, err = membershipsCopy(context.Background(), pg.DSN, fmt.Sprintf("memberships_%d", filled["postgres-true"]), 4)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "the memberships of the import into postgres, copied into a fresh table: %.2f s, the server's CPU %.2f s\n", floor, floorCPU)
	}
	if only != "" {
		return nil
	}
	// The same import again into the SQLite database it filled: it
	// changes nothing, and lists every group's members.
	rerun, err := run(v1alpha1.SQLDriverSQLite, true, true)
	if err != nil {
		return fmt.Errorf("unchanged re-run into SQLite: %w", err)
	}
	line := func(driver v1alpha1.SQLDriver, prefix string) string {
		with, without := res[string(driver)+"-true"], res[string(driver)+"-false"]
		return fmt.Sprintf("%swith_s=%s %swithout_s=%s %soverhead=%.2f %speak_rss_mib=%s %swithout_peak_rss_mib=%s",
			prefix, with["seconds"], prefix, without["seconds"], prefix, benchio.Num(with, "seconds")/benchio.Num(without, "seconds"),
			prefix, with["peak_rss_mib"], prefix, without["peak_rss_mib"])
	}
	fmt.Printf("BENCH groups users=%d groups=%s %s rerun_s=%s rerun_peak_rss_mib=%s %s pg_without_cpu_s=%s pg_without_server_cpu_s=%s pg_memberships_copy_s=%.2f pg_memberships_copy_server_cpu_s=%.2f load1=%s\n", users, res["sqlite-true"]["groups"],
		line(v1alpha1.SQLDriverSQLite, ""), rerun["seconds"], rerun["peak_rss_mib"], line(v1alpha1.SQLDriverPostgres, "pg_"), res["postgres-false"]["cpu_s"], res["postgres-false"]["server_cpu_s"], floor, floorCPU, benchio.Load1())
	return nil
}

// largeChild is one import of the large run, in the child process.
func largeChild(path, sum string, driver v1alpha1.SQLDriver, db, table, members, heap, cpu string, users int, relations, rerun bool) error {
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
	spec := &v1alpha1.SQLDirectory{Driver: driver, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: table,
		Groups: &v1alpha1.SQLGroups{Table: members}, Insecure: true}
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
	switch {
	case rerun && (benchio.Writes(res.Counts) != 0 || g != v1alpha1.GroupCounts{} || res.Counts.Failed != 0):
		return fmt.Errorf("the unchanged re-run wrote %+v", res.Counts)
	case rerun:
	case res.Counts.Created != int64(users) || res.Counts.Failed != 0:
		return fmt.Errorf("%d created, %d failed", res.Counts.Created, res.Counts.Failed)
	case relations && (g.MembershipsAdded != 2*res.Counts.Created || g.ManagersSet+g.ManagersMissing == 0):
		return fmt.Errorf("groups and managers: %+v", g)
	}
	fmt.Printf("RESULT seconds=%.2f cpu_s=%.2f peak_rss_mib=%d groups=%d memberships=%d managers=%d\n", secs, benchio.SelfCPU().Seconds(), benchio.PeakRSS(0)>>20, g.GroupsCreated, g.MembershipsAdded, g.ManagersSet)
	return nil
}
