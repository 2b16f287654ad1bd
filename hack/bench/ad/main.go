// Command ad benchmarks an import into Active Directory (a Samba AD DC):
// 10,000 new users imported through the engine with the short AD spec
// (each enabled, with an unusable random password), against 8 parallel
// `ldapadd -c` processes over LDAPS loading the same entries (DN,
// attributes, marker, password and userAccountControl) into a fresh DC;
// then the same import again, which must write nothing. The last line
// printed is
//
//	BENCH ad users=… import_s=… ldapadd8_s=… ratio=… noop_s=… noop_writes=…
//
// ratio is ldapadd8_s/import_s: above 1 the engine is faster. The loads
// take turns over -rounds rounds, each on fresh DCs, and each figure is
// its best round's.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	ldapdir "github.com/userimport/user-import-operator/internal/directory/ldap"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/mapping"
	"github.com/userimport/user-import-operator/internal/testpeer/samba"
)

const (
	markerAttr  = "businessCategory"
	markerValue = "user-import-operator"
)

func main() {
	users := flag.Int("users", 10_000, "users to import")
	conc := flag.Int("concurrency", 8, "the directory's concurrency setting (and the engine's batches in flight)")
	batch := flag.Int("batch", 100, "changes per batch")
	rounds := flag.Int("rounds", 2, "rounds of the two loads; each figure is its best round's")
	flag.Parse()
	if err := run(*users, *conc, *batch, max(*rounds, 1)); err != nil {
		fmt.Fprintln(os.Stderr, "bench ad:", err)
		os.Exit(1)
	}
}

// mappingSpec maps the HR export onto an AD user. The employee id names
// the account (sAMAccountName) and, with the name, the entry: two people
// of one name are two entries.
func mappingSpec() []v1alpha1.AttributeMapping {
	return []v1alpha1.AttributeMapping{
		{Attribute: "sAMAccountName", Column: "employee_id", Identity: true, Required: true},
		{Attribute: "cn", Template: "{{.last_name}}, {{.first_name}} ({{.employee_id}})"},
		{Attribute: "mail", Column: "email", Transforms: []v1alpha1.Transform{{Type: "Lower"}}, Check: "Email"},
		{Attribute: "givenName", Column: "first_name"},
		{Attribute: "sn", Column: "last_name", Required: true},
		{Attribute: "displayName", Template: "{{.first_name}} {{.last_name}}"},
		{Attribute: "department", Column: "department"},
		{Attribute: "title", Column: "title"},
		{Attribute: "l", Column: "location"},
	}
}

func run(users, conc, batch, rounds int) error {
	tmp, path, sum, cleanup, err := benchio.TempCSV("uio-bench-ad-", "users.csv", users)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "bench ad: %d users, concurrency %d, batches of %d, %d rounds, load %s\n", users, conc, batch, rounds, benchio.Load1())
	importS, ldapaddS := math.Inf(1), math.Inf(1)
	var noopS float64
	var noop engine.Result
	for round := range rounds {
		s, n, err := importRound(ctx, tmp, path, sum, users, conc, batch, round == rounds-1)
		if err != nil {
			return err
		}
		importS = min(importS, s)
		if round == rounds-1 {
			noopS, noop = n.secs, n.res
		}
		s, err = ldapadd(ctx, tmp, users, 8)
		if err != nil {
			return err
		}
		ldapaddS = min(ldapaddS, s)
	}
	fmt.Printf("BENCH ad users=%d import_s=%.2f ldapadd8_s=%.2f ratio=%.2f noop_s=%.2f noop_writes=%d concurrency=%d rounds=%d load1=%s\n",
		users, importS, ldapaddS, ldapaddS/importS, noopS, benchio.Writes(noop.Counts), conc, rounds, benchio.Load1())
	return nil
}

type noopRun struct {
	secs float64
	res  engine.Result
}

func importRound(ctx context.Context, tmp, path, sum string, users, conc, batch int, rerun bool) (float64, noopRun, error) {
	dcDir, err := os.MkdirTemp(tmp, "dc-")
	if err != nil {
		return 0, noopRun{}, err
	}
	dc, err := samba.StartProcess(dcDir)
	if err != nil {
		return 0, noopRun{}, err
	}
	defer dc.Stop()
	dir, cfg, err := open(ctx, dc, conc, batch)
	if err != nil {
		return 0, noopRun{}, err
	}
	defer dir.Close()
	importS, res, err := benchio.Import(ctx, path, sum, dir, cfg)
	if err != nil {
		return 0, noopRun{}, fmt.Errorf("import: %w", err)
	}
	if res.Counts.Created != int64(users) {
		return 0, noopRun{}, fmt.Errorf("import: %d created, %d failed, want %d created", res.Counts.Created, res.Counts.Failed, users)
	}
	if n, err := count(dc); err != nil || n != users {
		return 0, noopRun{}, fmt.Errorf("import: %d enabled users under %s (%v), want %d", n, dc.StaffDN, err, users)
	}
	fmt.Fprintf(os.Stderr, "import: %.2f s (%.0f users/s)\n", importS, float64(users)/importS)
	if !rerun {
		return importS, noopRun{}, nil
	}
	noopS, noop, err := benchio.Import(ctx, path, sum, dir, cfg)
	if err != nil {
		return 0, noopRun{}, fmt.Errorf("unchanged re-run: %w", err)
	}
	fmt.Fprintf(os.Stderr, "unchanged re-run: %.2f s, %d unchanged\n", noopS, noop.Counts.Unchanged)
	return importS, noopRun{noopS, noop}, nil
}

func open(ctx context.Context, dc *samba.DC, conc, batch int) (directory.Directory, engine.Config, error) {
	opts := directory.Options{IdentityAttribute: "sAMAccountName", ManagedOnly: true,
		MarkerAttribute: markerAttr, MarkerValue: markerValue, Concurrency: conc}
	spec := dc.Spec()
	spec.Groups = nil
	d, err := ldapdir.New(ctx, spec, opts, dc.Secrets())
	if err != nil {
		return nil, engine.Config{}, err
	}
	return d, engine.Config{Mapping: mappingSpec(), Mode: v1alpha1.ModeFull, MissingUsers: v1alpha1.MissingIgnore,
		Directory: opts, BatchSize: batch, Concurrency: conc, ProgressInterval: time.Second}, nil
}

// ldapadd loads the users into a fresh DC with procs parallel `ldapadd
// -c` processes over LDAPS, each given one slice of the LDIF, and returns
// the seconds from start to the last one's end.
func ldapadd(ctx context.Context, tmp string, users, procs int) (float64, error) {
	dcDir, err := os.MkdirTemp(tmp, "dc-")
	if err != nil {
		return 0, err
	}
	dc, err := samba.StartProcess(dcDir)
	if err != nil {
		return 0, err
	}
	defer dc.Stop()
	m, err := mapping.Compile(mappingSpec(), hrgen.Header)
	if err != nil {
		return 0, err
	}
	parts := make([][]byte, procs)
	per := (users + procs - 1) / procs
	for p := range procs {
		var b bytes.Buffer
		for i := p * per; i < min((p+1)*per, users); i++ {
			attrs, err := m.Map(hrgen.Row(benchio.Seed, i))
			if err != nil {
				return 0, err
			}
			writeEntry(&b, dc.StaffDN, attrs, i)
		}
		parts[p] = b.Bytes()
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, procs)
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = dc.LDAPAdd(ctx, parts[p])
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	if n, err := count(dc); err != nil || n != users {
		return 0, fmt.Errorf("ldapadd ×%d: %d enabled users (%v), want %d", procs, n, err, users)
	}
	fmt.Fprintf(os.Stderr, "ldapadd ×%d: %.2f s (%.0f users/s)\n", procs, secs, float64(users)/secs)
	return secs, nil
}

// writeEntry writes the entry the provider adds for attrs: the same DN,
// object classes, attributes, marker, a password and an enabled account.
func writeEntry(b *bytes.Buffer, base string, attrs directory.Attributes, i int) {
	attrs[markerAttr] = []string{markerValue}
	attrs["userAccountControl"] = []string{"512"}
	attrs["unicodePwd"] = []string{ldapdir.EncodePassword(fmt.Sprintf("Aa1!bench-password-%08d", i))}
	cn := attrs["cn"][0]
	line(b, "dn", "cn="+ldapdir.EscapeADValue(cn)+","+base)
	for _, oc := range []string{"top", "person", "organizationalPerson", "user"} {
		line(b, "objectClass", oc)
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for _, v := range attrs[n] {
			line(b, n, v)
		}
	}
	b.WriteByte('\n')
}

// line writes one LDIF line in base64: names carry commas, passwords
// binary.
func line(b *bytes.Buffer, name, v string) {
	fmt.Fprintf(b, "%s:: %s\n", name, base64.StdEncoding.EncodeToString([]byte(v)))
}

// count is the number of enabled users below the users' base.
func count(dc *samba.DC) (int, error) {
	c, err := dc.Conn()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(dc.StaffDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))", []string{"1.1"}, nil), 1000)
	if err != nil {
		return 0, err
	}
	return len(res.Entries), nil
}
