package sql

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/leakcheck"
	"github.com/userimport/user-import-operator/internal/testpeer/tcpproxy"
)

// Connections to PostgreSQL dropped under every kind of request give
// errors that quote no identity or value.
func TestConnectionResetsGiveErrorsWithoutValues(t *testing.T) {
	e := newEnv(t, v1alpha1.SQLDriverPostgres)
	direct := e.open(t, e.spec(), defaultOpts())
	var ids, values []string
	for i := range 30 {
		id := fmt.Sprintf("leak.person%03d", i)
		ids = append(ids, id)
		values = append(values, id, id+"@example.com", "Given "+id)
		mustOK(t, mustApply(t, direct, create(id)))
	}
	cfg, err := pgx.ParseConfig(e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := tcpproxy.Start(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	host, port, _ := net.SplitHostPort(p.Addr)
	proxied := fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=disable", cfg.User, cfg.Password, host, port, cfg.Database)
	d, err := New(context.Background(), e.spec(), defaultOpts(), secretsWith(proxied))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	if _, err := d.Lookup(ctx, ids[:1], attrNames); err != nil {
		t.Fatal(err)
	}
	values = append(values, "leak.new", "leak.new@example.com", "Changed "+ids[0])
	calls := map[string]func() error{
		"lookup": func() error { _, err := d.Lookup(ctx, ids, attrNames); return err },
		"list": func() error {
			return d.List(ctx, attrNames, func(directory.User) error { return nil })
		},
		"create": func() error {
			res, err := d.Apply(ctx, []directory.Change{create("leak.new")})
			return leakcheck.FirstError(res, err)
		},
		"update": func() error {
			u, _ := lookup(t, direct, ids[0])
			res, err := d.Apply(ctx, []directory.Change{{Op: directory.OpUpdate, Identity: ids[0], ID: u.ID,
				Attributes: directory.Attributes{"givenName": {"Changed " + ids[0]}}}})
			return leakcheck.FirstError(res, err)
		},
	}
	leakcheck.EachFails(t, func() func() { p.Down(); return p.Up }, calls, values)
}
