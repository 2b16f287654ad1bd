package ldap

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/leakcheck"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
	"github.com/userimport/user-import-operator/internal/testpeer/tcpproxy"
)

// Connections dropped under every kind of request give errors that quote
// no identity or value.
func TestConnectionResetsGiveErrorsWithoutValues(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	direct := newDir(t, s, baseSpec(s), baseOpts())
	var ids, values []string
	for i := range 30 {
		uid := fmt.Sprintf("leakperson%03d", i)
		ids = append(ids, uid)
		a := commonAttributes(uid)
		values = append(values, uid, a["mail"][0], a["cn"][0])
		mustApply(t, direct, create(uid, a))
	}
	p := tcpproxy.Start(t, strings.TrimPrefix(s.URL, "ldap://"))
	spec := baseSpec(s)
	spec.URL = "ldap://" + p.Addr
	opts := baseOpts()
	opts.MaxRetries = 1
	d := newDir(t, s, spec, opts)
	ctx := context.Background()
	if _, err := d.Lookup(ctx, ids[:1], []string{"mail"}); err != nil {
		t.Fatal(err)
	}
	newUser := commonAttributes("leaknew")
	values = append(values, "leaknew", newUser["mail"][0])
	calls := map[string]func() error{
		"lookup": func() error { _, err := d.Lookup(ctx, ids, []string{"mail", "cn"}); return err },
		"list": func() error {
			return d.List(ctx, []string{"mail", "cn"}, func(directory.User) error { return nil })
		},
		"create": func() error {
			res, err := d.Apply(ctx, []directory.Change{create("leaknew", newUser)})
			return leakcheck.FirstError(res, err)
		},
		"update": func() error {
			res, err := d.Apply(ctx, []directory.Change{{Op: directory.OpUpdate, Identity: ids[0],
				ID: "uid=" + ids[0] + "," + s.PeopleDN, Attributes: directory.Attributes{"title": {"Changed title"}}}})
			return leakcheck.FirstError(res, err)
		},
	}
	leakcheck.EachFails(t, func() func() { p.Down(); return p.Up }, calls, values)
}
