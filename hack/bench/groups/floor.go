package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
)

// membershipsCopy is the floor of the Groups step into PostgreSQL: the
// memberships the import wrote into table, read back and written with
// COPY into a fresh membership table of the same shape (its unique
// index on group and user included), a group per COPY on concurrency
// connections, as the step writes them. It returns the seconds the
// writes took, and the server's CPU seconds.
func membershipsCopy(ctx context.Context, dsn, from string, concurrency int) (float64, float64, error) {
	const to = "memberships_copy"
	err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverPostgres, dsn, sqldir.TableSpec{
		Table: "users_copy", IdentityColumn: "uid", Groups: &v1alpha1.SQLGroups{Table: to}})
	if err != nil {
		return 0, 0, err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	// Nothing else takes the server's CPU while the copy runs: the
	// import's table is vacuumed before, the copy's not at all.
	for _, q := range []string{"VACUUM " + pgx.Identifier{from}.Sanitize(), "ALTER TABLE " + to + " SET (autovacuum_enabled = false)"} {
		if _, err := c.Exec(ctx, q); err != nil {
			c.Close(ctx)
			return 0, 0, err
		}
	}
	// Each group's rows in COPY's text format, in the order the table
	// gives them.
	var groups [][]byte
	var buf bytes.Buffer
	_, err = c.PgConn().CopyTo(ctx, &buf, "COPY (SELECT user_identity, group_name, managed_by FROM "+pgx.Identifier{from}.Sanitize()+" ORDER BY group_name) TO STDOUT")
	c.Close(ctx)
	if err != nil {
		return 0, 0, err
	}
	last := []byte(nil)
	for line := range bytes.Lines(buf.Bytes()) {
		f := bytes.SplitN(line, []byte{'\t'}, 3)
		if len(groups) == 0 || !bytes.Equal(f[1], last) {
			groups = append(groups, nil)
			last = f[1]
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], line...)
	}
	server, err := benchio.Postmaster(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	next := make(chan []byte)
	go func() {
		defer close(next)
		for _, g := range groups {
			next <- g
		}
	}()
	before := benchio.ServerCPU(server)
	start := time.Now()
	var copied atomic.Int64
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				errs[w] = err
				for range next {
				}
				return
			}
			defer c.Close(ctx)
			for g := range next {
				if errs[w] != nil {
					continue
				}
				tag, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(g), "COPY "+to+" (user_identity, group_name, managed_by) FROM STDIN")
				copied.Add(tag.RowsAffected())
				errs[w] = err
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, 0, fmt.Errorf("copying the memberships: %w", err)
		}
	}
	secs := time.Since(start).Seconds()
	if want := int64(bytes.Count(buf.Bytes(), []byte{'\n'})); copied.Load() != want {
		return 0, 0, fmt.Errorf("copied %d memberships, want %d", copied.Load(), want)
	}
	// The backends end after their connections; the server reaps them
	// within moments.
	time.Sleep(time.Second)
	return secs, (benchio.ServerCPU(server) - before).Seconds(), nil
}
