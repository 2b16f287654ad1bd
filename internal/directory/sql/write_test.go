package sql

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

func TestReplayedCreateIsHarmless(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		batch := []directory.Change{create("erin"), create("frank")}
		mustOK(t, mustApply(t, d, batch...))
		// The user deactivated meanwhile, then the batch replayed after a
		// checkpoint: no duplicate, no error, the row as the batch says.
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "erin", ID: "erin"}))
		mustOK(t, mustApply(t, d, batch...))
		if n := e.count(t); n != 2 {
			t.Fatalf("rows after replay = %d, want 2", n)
		}
		erin, _ := lookup(t, d, "erin")
		if !erin.Active || !reflect.DeepEqual(erin.Attributes, person("erin")) {
			t.Fatalf("erin after replay: %+v", erin)
		}
	})
}

func TestRoundTripIsStable(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		written := map[string]directory.Attributes{
			"gustav": {"userName": {"gustav"}, "mail": {"g@example.com"}, "givenName": {"Gustav Ölund"},
				"familyName": {"O'Brien \"Quote\""}, "groups": {"a", "b", "c"}, "managedBy": {marker}},
			"hanna": {"userName": {"hanna"}, "givenName": {"  spaced  "}, "managedBy": {marker}},
			"ines":  {"userName": {"ines"}, "mail": {"ines@example.com"}, "groups": {"solo"}, "managedBy": {marker}},
		}
		var batch []directory.Change
		for id, a := range written {
			batch = append(batch, directory.Change{Op: directory.OpCreate, Identity: id, Attributes: a})
		}
		mustOK(t, mustApply(t, d, batch...))
		for round := 0; round < 2; round++ {
			seen := 0
			err := d.List(context.Background(), attrNames, func(u directory.User) error {
				seen++
				if !reflect.DeepEqual(u.Attributes, written[u.Identity]) {
					t.Errorf("%s read back as %v, written as %v", u.Identity, u.Attributes, written[u.Identity])
				}
				// Writing back what was read changes nothing.
				_, err := d.Apply(context.Background(), []directory.Change{{Op: directory.OpUpdate, Identity: u.Identity, ID: u.ID, Attributes: u.Attributes}})
				return err
			})
			if err != nil || seen != len(written) {
				t.Fatalf("List: %v, %d users", err, seen)
			}
		}
	})
}

func TestConstraintViolationFailsOnlyThatRow(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		mustOK(t, mustApply(t, d, create("jan")))

		dupMail := create("kim")
		dupMail.Attributes["mail"] = []string{"secret-value@example.com"}
		mustOK(t, mustApply(t, d, dupMail))

		clash := create("lea")
		clash.Attributes["mail"] = []string{"secret-value@example.com"} // taken by kim
		batch := []directory.Change{
			create("mia"),
			{Op: directory.OpUpdate, Identity: "jan", ID: "jan", Attributes: directory.Attributes{"givenName": {"Jan 2"}}},
			clash,
			{Op: directory.OpUpdate, Identity: "jan", ID: "jan", Attributes: directory.Attributes{"mail": {"secret-value@example.com"}}},
			create("noah"),
			{Op: directory.OpDeactivate, Identity: "kim", ID: "kim"},
		}
		res := mustApply(t, d, batch...)
		for i, r := range res {
			wantFail := i == 2 || i == 3
			if wantFail != (r.Err != nil) {
				t.Fatalf("change %d: err %v; want failure %v", i, r.Err, wantFail)
			}
			if !wantFail {
				continue
			}
			if !directory.IsChangeError(r.Err) {
				t.Fatalf("change %d: %T %v; want a *directory.RowError", i, r.Err, r.Err)
			}
			if !strings.Contains(r.Err.Error(), "mail") || strings.Contains(r.Err.Error(), "secret-value") {
				t.Fatalf("change %d: row error %q must name mail and not show the value", i, r.Err)
			}
		}
		for _, id := range []string{"mia", "noah"} {
			if _, ok := lookup(t, d, id); !ok {
				t.Fatalf("%s from the same batch was not created", id)
			}
		}
		if _, ok := lookup(t, d, "lea"); ok {
			t.Fatal("the clashing row was written")
		}
		jan, _ := lookup(t, d, "jan")
		if jan.Attributes["givenName"][0] != "Jan 2" || jan.Attributes["mail"][0] != "jan@example.com" {
			t.Fatalf("jan = %v; want givenName updated, mail unchanged", jan.Attributes)
		}
		if kim, _ := lookup(t, d, "kim"); kim.Active {
			t.Fatal("kim's deactivation after the failed rows was lost")
		}
	})
}

// Consecutive creates go in one statement; a row the database refuses
// among them fails alone, and the same identity twice in one batch is
// written twice, the second winning, as one statement per row would.
func TestMultiRowCreatesFailOnlyTheBadRow(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		taken := create("kim")
		taken.Attributes["mail"] = []string{"taken@example.com"}
		mustOK(t, mustApply(t, d, taken))

		var batch []directory.Change
		for i := range 50 {
			batch = append(batch, create(fmt.Sprintf("u%02d", i)))
		}
		batch[20].Attributes["mail"] = []string{"taken@example.com"}
		res := mustApply(t, d, batch...)
		for i, r := range res {
			if (i == 20) != (r.Err != nil) {
				t.Fatalf("create %d: err %v", i, r.Err)
			}
		}
		for i := range 50 {
			if _, ok := lookup(t, d, fmt.Sprintf("u%02d", i)); ok == (i == 20) {
				t.Fatalf("u%02d written %v", i, ok)
			}
		}

		again := create("twice")
		again.Attributes["givenName"] = []string{"Second"}
		mustOK(t, mustApply(t, d, create("a1"), create("twice"), again, create("a2")))
		u, ok := lookup(t, d, "twice")
		if !ok || u.Attributes["givenName"][0] != "Second" {
			t.Fatalf("twice = %v, %v; want the second create's values", u.Attributes, ok)
		}
	})
}

func TestConcurrentApply(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		const workers, batches, size = 8, 10, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*batches)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for b := 0; b < batches; b++ {
					var batch []directory.Change
					for i := 0; i < size; i++ {
						batch = append(batch, create(fmt.Sprintf("w%d-b%d-u%d", w, b, i)))
					}
					// Every worker also updates the same shared users.
					res, err := d.Apply(context.Background(), batch)
					if err == nil {
						for _, r := range res {
							if r.Err != nil {
								err = r.Err
							}
						}
					}
					if err != nil {
						errs <- err
						return
					}
					if _, err := d.Lookup(context.Background(), []string{batch[0].Identity}, attrNames); err != nil {
						errs <- err
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent Apply: %v", err)
		}
		if n := e.count(t); n != workers*batches*size {
			t.Fatalf("rows = %d, want %d", n, workers*batches*size)
		}
	})
}

func TestBulkCreate100k(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		opts := defaultOpts()
		d := e.open(t, e.spec(), opts)
		const total, batchSize = 100_000, 500
		batches := make(chan []directory.Change)
		go func() {
			defer close(batches)
			for start := 0; start < total; start += batchSize {
				b := make([]directory.Change, 0, batchSize)
				for i := start; i < start+batchSize; i++ {
					b = append(b, create(fmt.Sprintf("user%06d", i)))
				}
				batches <- b
			}
		}()
		began := time.Now()
		var wg sync.WaitGroup
		var failed atomic.Int64
		for w := 0; w < opts.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					res, err := d.Apply(context.Background(), b)
					if err != nil {
						t.Errorf("Apply: %v", err)
						failed.Add(int64(len(b)))
						continue
					}
					for _, r := range res {
						if r.Err != nil {
							failed.Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(began)
		if failed.Load() != 0 {
			t.Fatalf("%d creates failed", failed.Load())
		}
		t.Logf("%s: created %d users in batches of %d with %d workers in %v: %.0f rows/s",
			e.driver, total, batchSize, opts.Concurrency, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())

		began = time.Now()
		n := 0
		if err := d.List(context.Background(), attrNames, func(u directory.User) error {
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: listed %d users in %v", e.driver, n, time.Since(began).Round(time.Millisecond))
		if n != total || e.count(t) != total {
			t.Fatalf("listed %d, table holds %d; want %d", n, e.count(t), total)
		}
	})
}

func TestNonTextColumns(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		e.exec(t, "ALTER TABLE "+e.table+` ADD COLUMN "employeeNumber" INTEGER`)
		d := e.open(t, e.spec(), defaultOpts())
		c := create("olga")
		c.Attributes["employeeNumber"] = []string{"4711"}
		bad := create("paul")
		bad.Attributes["employeeNumber"] = []string{"not-a-number"}
		res := mustApply(t, d, c, bad)
		if res[0].Err != nil {
			t.Fatalf("integer column: %v", res[0].Err)
		}
		m, err := d.Lookup(context.Background(), []string{"olga"}, []string{"employeeNumber"})
		if err != nil {
			t.Fatal(err)
		}
		if got := m["olga"].Attributes["employeeNumber"]; !reflect.DeepEqual(got, []string{"4711"}) {
			t.Fatalf("employeeNumber read back as %v", got)
		}
		if e.driver == v1alpha1.SQLDriverPostgres {
			// SQLite stores what it is given; PostgreSQL refuses it, for
			// this row alone and without quoting it.
			if !directory.IsChangeError(res[1].Err) || strings.Contains(res[1].Err.Error(), "not-a-number") {
				t.Fatalf("a non-number in an integer column: %v; want a row error without the value", res[1].Err)
			}
		}
	})
}

// spec.execution.rateLimit paces the statements sent: with 40 a second,
// 40 rows more than the first burst take a second.
func TestRateLimit(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		opts := defaultOpts()
		opts.RateLimit = 40
		d := e.open(t, e.spec(), opts)
		batch := func(from int) []directory.Change {
			var b []directory.Change
			for i := from; i < from+40; i++ {
				b = append(b, create(fmt.Sprintf("r%03d", i)))
			}
			return b
		}
		mustOK(t, mustApply(t, d, batch(0)...)) // the burst
		start := time.Now()
		mustOK(t, mustApply(t, d, batch(40)...))
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("40 rows past the burst took %v at 40 a second", took)
		}
		if n := e.count(t); n != 80 {
			t.Errorf("rows = %d, want 80", n)
		}
	})
}

// A status column in place of the boolean active column: creates and
// reactivations write the active value, deactivations the inactive one,
// and only the inactive value reads as deactivated.
func TestStatusColumn(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		e.exec(t, "ALTER TABLE "+e.table+" ADD COLUMN employment TEXT")
		spec := e.spec()
		spec.StatusColumn = &v1alpha1.SQLStatusColumn{Name: "employment", ActiveValue: "employed", InactiveValue: "left"}
		d := e.open(t, spec, defaultOpts())
		status := func(id string) any {
			t.Helper()
			q := "SELECT employment FROM " + e.table + " WHERE id_col = ?"
			if e.driver == v1alpha1.SQLDriverPostgres {
				q = strings.Replace(q, "?", "$1", 1)
			}
			var v stdsql.NullString
			if err := e.raw.QueryRow(q, id).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if !v.Valid {
				return nil
			}
			return v.String
		}

		mustOK(t, mustApply(t, d, create("alice"), create("bob")))
		if s := status("alice"); s != "employed" {
			t.Fatalf("status after create = %v, want employed", s)
		}
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "alice", ID: "alice"}))
		if s := status("alice"); s != "left" {
			t.Fatalf("status after deactivate = %v, want left", s)
		}
		if alice, _ := lookup(t, d, "alice"); alice.Active {
			t.Fatal("alice reads active with status left")
		}
		if bob, _ := lookup(t, d, "bob"); !bob.Active {
			t.Fatal("bob reads deactivated")
		}
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "alice", ID: "alice", Reactivate: true,
			Attributes: directory.Attributes{"givenName": {"Alicia"}}}))
		if s := status("alice"); s != "employed" {
			t.Fatalf("status after reactivate = %v, want employed", s)
		}
		// A replayed create of a deactivated user makes it active again,
		// as with the boolean column.
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "bob", ID: "bob"}))
		mustOK(t, mustApply(t, d, create("bob")))
		if s := status("bob"); s != "employed" {
			t.Fatalf("status after a create of a deactivated user = %v, want employed", s)
		}
		// Rows written by others: no status, or another one, read active.
		e.exec(t, "INSERT INTO "+e.table+` (id_col, "managedBy", employment) VALUES ('carol', ?, NULL), ('dave', ?, 'on leave')`, marker, marker)
		for _, id := range []string{"carol", "dave"} {
			if u, ok := lookup(t, d, id); !ok || !u.Active {
				t.Fatalf("%s with status %v reads deactivated", id, status(id))
			}
		}
		var inactive []string
		if err := d.List(context.Background(), attrNames, func(u directory.User) error {
			if !u.Active {
				inactive = append(inactive, u.Identity)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(inactive) != 0 {
			t.Fatalf("List reads %v as deactivated", inactive)
		}

		// A missing status column is named by Check.
		spec.StatusColumn = &v1alpha1.SQLStatusColumn{Name: "contract", ActiveValue: "a", InactiveValue: "b"}
		nd, err := New(context.Background(), spec, defaultOpts(), secretsWith(e.dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer nd.Close()
		if _, err := nd.Check(context.Background()); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSchemaMismatch ||
			!strings.Contains(err.Error(), "contract") || !strings.Contains(err.Error(), "status column") {
			t.Fatalf("Check without the status column: %v", err)
		}
	})
}

// TestMixedBatchInOneGo writes a batch of every kind of change, with
// values COPY's text format must escape, and checks each result and row:
// on PostgreSQL it goes through COPY and the set-based statements.
func TestMixedBatchInOneGo(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		for _, id := range []string{"ana", "ben", "cleo", "dan", "eve"} {
			mustOK(t, mustApply(t, d, create(id)))
		}
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "eve", ID: "eve"}))

		odd := directory.Attributes{"userName": {"fay"}, "givenName": {"tab\there, back\\slash, cr\rlf, \\N"},
			"familyName": {`\.`}, "groups": {"one\\", "two\t"}, "managedBy": {marker}}
		short := directory.Attributes{"userName": {"gil"}, "mail": {"gil@example.com"}, "managedBy": {marker}}
		batch := []directory.Change{
			{Op: directory.OpCreate, Identity: "fay", Attributes: odd},
			{Op: directory.OpUpdate, Identity: "ana", ID: "ana", Attributes: directory.Attributes{"givenName": {"Ana 2"}, "groups": nil}},
			{Op: directory.OpCreate, Identity: "gil", Attributes: short},
			{Op: directory.OpUpdate, Identity: "ben", ID: "ben", Attributes: directory.Attributes{"userName": {"benjamin"}}},
			{Op: directory.OpDeactivate, Identity: "cleo", ID: "cleo"},
			{Op: directory.OpDelete, Identity: "dan", ID: "dan"},
			{Op: directory.OpUpdate, Identity: "eve", ID: "eve", Reactivate: true},
			{Op: directory.OpUpdate, Identity: "zoe", ID: "zoe", Attributes: directory.Attributes{"givenName": {"Zoe"}}},
		}
		res := mustApply(t, d, batch...)
		wantIDs := []string{"fay", "ana", "gil", "benjamin", "cleo", "dan", "eve", ""}
		for i, r := range res {
			if i == len(res)-1 {
				if r.Err == nil || !strings.Contains(r.Err.Error(), "no such user") {
					t.Errorf("update of a missing user: %v, want no such user", r.Err)
				}
				continue
			}
			if r.Err != nil || r.ID != wantIDs[i] {
				t.Errorf("change %d (%s %s): ID %q, err %v; want ID %q", i, batch[i].Op, batch[i].Identity, r.ID, r.Err, wantIDs[i])
			}
		}

		users := map[string]directory.User{}
		err := d.List(context.Background(), attrNames, func(u directory.User) error {
			users[u.Identity] = u
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if u := users["fay"]; !u.Active || !reflect.DeepEqual(u.Attributes, odd) {
			t.Errorf("fay read back as %+v, written as %v", u, odd)
		}
		if u := users["gil"]; !reflect.DeepEqual(u.Attributes, short) {
			t.Errorf("gil read back as %v, written as %v", u.Attributes, short)
		}
		ana := person("ana")
		ana["givenName"] = []string{"Ana 2"}
		delete(ana, "groups")
		if u := users["ana"]; !reflect.DeepEqual(u.Attributes, ana) {
			t.Errorf("ana after the update: %v, want %v", u.Attributes, ana)
		}
		if _, ok := users["ben"]; ok {
			t.Error("ben is still there after the rename")
		}
		if u, ok := users["benjamin"]; !ok || u.Attributes["mail"][0] != "ben@example.com" {
			t.Errorf("benjamin after the rename: %+v", u)
		}
		if users["cleo"].Active || !users["eve"].Active {
			t.Errorf("cleo active %v (want false), eve active %v (want true)", users["cleo"].Active, users["eve"].Active)
		}
		if _, ok := users["dan"]; ok {
			t.Error("dan is still there after the delete")
		}
		if len(users) != 6 {
			t.Errorf("%d users, want 6", len(users))
		}
	})
}

// TestBatchNamingAUserTwiceKeepsItsOrder: set-based statements cannot
// apply two changes of one user in order, so such a batch is written
// change by change.
func TestBatchNamingAUserTwiceKeepsItsOrder(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		mustOK(t, mustApply(t, d, create("hal")))
		mustOK(t, mustApply(t, d,
			directory.Change{Op: directory.OpUpdate, Identity: "hal", ID: "hal", Attributes: directory.Attributes{"givenName": {"first"}}},
			directory.Change{Op: directory.OpUpdate, Identity: "hal", ID: "hal", Attributes: directory.Attributes{"givenName": {"second"}}},
		))
		if u, _ := lookup(t, d, "hal"); u.Attributes["givenName"][0] != "second" {
			t.Fatalf("givenName = %v, want the batch's last", u.Attributes["givenName"])
		}
	})
}

// TestConcurrentCreatesWithARefusedRow: batches that arrive together may
// share a transaction; a row the database refuses in one of them fails
// that row alone, and every other row of every batch is written.
func TestConcurrentCreatesWithARefusedRow(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		mustOK(t, mustApply(t, d, create("taken")))
		const workers, batches, size = 8, 10, 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := map[string]error{}
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					var batch []directory.Change
					for i := range size {
						c := create(fmt.Sprintf("w%d-b%d-u%d", w, b, i))
						if w == 3 && i == 7 {
							c.Attributes["mail"] = []string{"taken@example.com"}
						}
						batch = append(batch, c)
					}
					res, err := d.Apply(context.Background(), batch)
					mu.Lock()
					if err != nil {
						failed["batch"] = err
					}
					for i, r := range res {
						if r.Err != nil {
							failed[batch[i].Identity] = r.Err
						}
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(failed) != batches {
			t.Fatalf("%d failures, want the %d rows that reuse a taken mail: %v", len(failed), batches, failed)
		}
		for id, err := range failed {
			if !strings.HasPrefix(id, "w3-") || !strings.HasSuffix(id, "-u7") || !strings.Contains(err.Error(), "already taken") {
				t.Errorf("%s: %v", id, err)
			}
		}
		if n, want := e.count(t), 1+workers*batches*size-batches; n != want {
			t.Fatalf("rows = %d, want %d", n, want)
		}
	})
}

// TestStagingSurvivesALostSession: behind a pooler that hands each
// transaction a server session of its own, temporary tables made by an
// earlier transaction are gone. Staged writes must not count on them.
func TestStagingSurvivesALostSession(t *testing.T) {
	e := newEnv(t, v1alpha1.SQLDriverPostgres)
	opts := defaultOpts()
	opts.Concurrency = 1
	d := e.open(t, e.spec(), opts)
	mustOK(t, mustApply(t, d, create("ida")))
	update := func(name string) directory.Change {
		return directory.Change{Op: directory.OpUpdate, Identity: "ida", ID: "ida", Attributes: directory.Attributes{"givenName": {name}}}
	}
	mustOK(t, mustApply(t, d, update("Ida 1")))
	// Every session of the pool loses its temporary tables.
	for range 4 {
		if _, err := d.write.ExecContext(context.Background(), "DISCARD TEMP"); err != nil {
			t.Fatal(err)
		}
	}
	mustOK(t, mustApply(t, d, update("Ida 2")))
	if u, _ := lookup(t, d, "ida"); u.Attributes["givenName"][0] != "Ida 2" {
		t.Fatalf("givenName = %v", u.Attributes["givenName"])
	}
}
