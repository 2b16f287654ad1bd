// Command groups benchmarks groups and managers: 50,000 new users
// imported through the engine into a fresh slapd, each a member of two of
// 540 groups (its cost center, and its department and title) and with a
// reference to its manager, against the same users imported without
// groups and managers, in the same run. The two imports take turns over
// -rounds rounds on fresh servers and each keeps its fastest. The last
// line printed is
//
//	BENCH groups users=… groups=… with_s=… without_s=… overhead=… rerun_s=…
//
// where overhead is with_s / without_s, and rerun_s the time of the same
// import with groups and managers again, which changes nothing. Then
// comes the large run (large.go), whose line is the last.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	ldapdir "github.com/userimport/user-import-operator/internal/directory/ldap"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

func main() {
	users := flag.Int("users", 50_000, "users to import into slapd (0: none)")
	conc := flag.Int("concurrency", 8, "the directory's concurrency setting (and the engine's batches in flight)")
	batch := flag.Int("batch", 100, "changes per batch")
	rounds := flag.Int("rounds", 2, "rounds of the two imports; each keeps its fastest")
	large := flag.Int("large", 1_000_000, "users of the large run into SQLite and PostgreSQL (0: none)")
	child := flag.Bool("child", false, "run one import of the large run")
	file := flag.String("file", "", "CSV file (child)")
	sum := flag.String("sum", "", "the file's sha256 (child)")
	driver := flag.String("driver", "sqlite", "SQL driver (child)")
	db := flag.String("db", "", "SQLite file or PostgreSQL DSN (child)")
	table := flag.String("table", "", "users table (child)")
	members := flag.String("members", "", "membership table (child)")
	relations := flag.Bool("relations", false, "map groups and managers (child)")
	rerun := flag.Bool("rerun", false, "the import runs again, unchanged (child)")
	only := flag.String("driver-only", "", "the large run imports into this SQL driver only (sqlite or postgres), and prints no BENCH line")
	cpu := flag.String("cpuprofile", "", "write a CPU profile of each import of the large run to this path plus .true or .false")
	heap := flag.String("heapprofile", "", "write a heap profile of each import of the large run at its peak to this path plus .true or .false (with groups or not)")
	flag.Parse()
	var err error
	switch {
	case *child:
		err = largeChild(*file, *sum, v1alpha1.SQLDriver(*driver), *db, *table, *members, *heap, *cpu, *large, *relations, *rerun)
	default:
		if *users > 0 {
			err = run(*users, *conc, *batch, *rounds)
		}
		if err == nil && *large > 0 {
			err = largeRun(*large, *heap, *cpu, v1alpha1.SQLDriver(*only))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench groups:", err)
		os.Exit(1)
	}
}

// userMapping maps the HR export onto inetOrgPerson; the identity is the
// e-mail address, which the export's manager column holds.
func userMapping() []v1alpha1.AttributeMapping {
	return []v1alpha1.AttributeMapping{
		{Attribute: "uid", Column: "email", Identity: true, Required: true},
		{Attribute: "mail", Column: "email", Check: "Email"},
		{Attribute: "givenName", Column: "first_name"},
		{Attribute: "sn", Column: "last_name", Required: true},
		{Attribute: "cn", Template: "{{.first_name}} {{.last_name}}"},
		{Attribute: "ou", Column: "department"},
		{Attribute: "title", Column: "title"},
		{Attribute: "l", Column: "location"},
		{Attribute: "departmentNumber", Column: "cost_center"},
	}
}

// relationMapping adds the groups (440 cost centers, 10 departments by
// 10 titles) and the manager.
func relationMapping() []v1alpha1.AttributeMapping {
	return append(userMapping(),
		v1alpha1.AttributeMapping{Attribute: "groups", Template: "{{.cost_center}}|{{.department}} {{.title}}", Split: "|", Target: v1alpha1.TargetGroups},
		v1alpha1.AttributeMapping{Attribute: "manager", Column: "manager_email", Target: v1alpha1.TargetManager})
}

func run(users, conc, batch, rounds int) error {
	_, path, sum, cleanup, err := benchio.TempCSV("uio-bench-groups-", "users.csv", users)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "bench groups: %d users, concurrency %d, batches of %d, %d rounds, load %s\n", users, conc, batch, rounds, benchio.Load1())
	withS, withoutS, rerunS := math.Inf(1), math.Inf(1), math.Inf(1)
	var groups int64
	for range rounds {
		s, _, _, err := importRound(ctx, path, sum, users, conc, batch, false)
		if err != nil {
			return fmt.Errorf("without groups: %w", err)
		}
		withoutS = min(withoutS, s)
		s, again, res, err := importRound(ctx, path, sum, users, conc, batch, true)
		if err != nil {
			return fmt.Errorf("with groups: %w", err)
		}
		withS, rerunS = min(withS, s), min(rerunS, again)
		groups = res.Counts.Groups.GroupsCreated
	}
	fmt.Printf("BENCH groups users=%d groups=%d with_s=%.2f without_s=%.2f overhead=%.2f rerun_s=%.2f concurrency=%d rounds=%d load1=%s\n",
		users, groups, withS, withoutS, withS/withoutS, rerunS, conc, rounds, benchio.Load1())
	return nil
}

// importRound imports the file into a fresh server, with or without
// groups and managers, and checks what it wrote; with them, it imports
// the file again, which must change nothing, and returns that time too.
func importRound(ctx context.Context, path, sum string, users, conc, batch int, relations bool) (float64, float64, engine.Result, error) {
	s, err := slapd.StartProcess(slapd.Options{})
	if err != nil {
		return 0, 0, engine.Result{}, err
	}
	defer s.Stop()
	opts := directory.Options{IdentityAttribute: "uid", ManagedOnly: true, MarkerAttribute: "businessCategory", MarkerValue: "user-import-operator", Concurrency: conc}
	spec := &v1alpha1.LDAPDirectory{
		URL: s.URL, BindDN: s.BindDN, UsersBaseDN: s.PeopleDN, PageSize: 1000,
		BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"},
		Groups:       &v1alpha1.LDAPGroups{BaseDN: s.GroupsDN},
	}
	d, err := ldapdir.New(ctx, spec, opts, func(context.Context, string, string) ([]byte, error) { return []byte(s.BindPassword), nil })
	if err != nil {
		return 0, 0, engine.Result{}, err
	}
	defer d.Close()
	cfg := engine.Config{
		Mapping: userMapping(), Mode: v1alpha1.ModeFull, MissingUsers: v1alpha1.MissingIgnore,
		Directory: opts, BatchSize: batch, Concurrency: conc, ProgressInterval: time.Second, CreateGroups: true,
	}
	if relations {
		cfg.Mapping = relationMapping()
	}
	secs, res, err := benchio.Import(ctx, path, sum, d, cfg)
	if err != nil {
		return 0, 0, res, err
	}
	if res.Counts.Created != int64(users) || res.Counts.Failed != 0 {
		return 0, 0, res, fmt.Errorf("%d created, %d failed, want %d created", res.Counts.Created, res.Counts.Failed, users)
	}
	g := res.Counts.Groups
	if relations && (g.MembershipsAdded != 2*int64(users) || g.ManagersSet != int64(users-1) || g.ManagersMissing != 0) {
		return 0, 0, res, fmt.Errorf("groups and managers: %+v", g)
	}
	fmt.Fprintf(os.Stderr, "import (groups and managers %v): %.2f s, %+v\n", relations, secs, g)
	if !relations {
		return secs, 0, res, nil
	}
	again, noop, err := benchio.Import(ctx, path, sum, d, cfg)
	if err != nil {
		return 0, 0, res, fmt.Errorf("unchanged re-run: %w", err)
	}
	if n := noop.Counts.Groups; benchio.Writes(noop.Counts) != 0 || n.GroupsCreated+n.MembershipsAdded+n.MembershipsRemoved+n.ManagersSet != 0 {
		return 0, 0, res, fmt.Errorf("unchanged re-run changed %+v", noop.Counts)
	}
	fmt.Fprintf(os.Stderr, "unchanged re-run with groups and managers: %.2f s\n", again)
	return secs, again, res, nil
}
