package sql

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// The listing streams every user to the worker: it scans the table in its
// own server process, even where the planner would rather hand the scan
// to parallel workers, which would only pass the rows on to it.
func TestListingScansWithoutParallelWorkers(t *testing.T) {
	e := newEnv(t, v1alpha1.SQLDriverPostgres)
	e.exec(t, "INSERT INTO "+e.table+` (id_col, mail, "givenName", "familyName", "managedBy")
		SELECT 'user' || g, 'user' || g || '@example.com', 'Given ' || g, 'Family ' || g, ? FROM generate_series(1, 100000) g`, marker)
	// Parallel plans cost nothing on these connections: the planner picks
	// one for any scan.
	u, err := url.Parse(e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("options", "-c parallel_setup_cost=0 -c parallel_tuple_cost=0 -c min_parallel_table_scan_size=0")
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	e.dsn = u.String()

	d := e.open(t, e.spec(), defaultOpts())
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var plan strings.Builder
	rows, err := conn.Query(ctx, "EXPLAIN SELECT * FROM "+e.table+` WHERE "managedBy" = $1`, marker)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if rows.Close(); !strings.Contains(plan.String(), "Parallel Seq Scan") {
		t.Fatalf("the planner does not pick a parallel scan here; the test shows nothing:\n%s", plan.String())
	}

	workers := -1
	n := 0
	err = d.ListValues(ctx, []string{"mail"}, func(*directory.User, [][]string) error {
		if n++; n == 1 {
			// The workers of a parallel scan wait for the listing to take
			// the rows they hold: they are there while it reads its first.
			err := e.raw.QueryRow(`SELECT count(*) FROM pg_stat_activity w JOIN pg_stat_activity l ON w.leader_pid = l.pid
				WHERE w.backend_type = 'parallel worker' AND l.query LIKE '%' || $1 || '%'`, e.table).Scan(&workers)
			if err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 100000 || workers != 0 {
		t.Fatalf("listed %d users with %d parallel workers, want 100000 with none", n, workers)
	}
}

// A server that speaks PostgreSQL's protocol without the setting that
// keeps the scan serial still lists every user.
func TestListingWithoutTheSerialSetting(t *testing.T) {
	defer func(s string) { serialScan = s }(serialScan)
	serialScan = "SET LOCAL no_such_setting = 0"
	e := newEnv(t, v1alpha1.SQLDriverPostgres)
	d := e.open(t, e.spec(), defaultOpts())
	mustOK(t, mustApply(t, d, create("carol"), create("dave")))
	var got []string
	if err := d.List(context.Background(), attrNames, func(u directory.User) error {
		got = append(got, u.Identity)
		return nil
	}); err != nil {
		t.Fatalf("List: %v", err)
	}
	if slices.Sort(got); !slices.Equal(got, []string{"carol", "dave"}) {
		t.Fatalf("listed %q, want carol and dave", got)
	}
}
