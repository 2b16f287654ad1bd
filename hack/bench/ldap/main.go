// Command ldap benchmarks an import into OpenLDAP: 50,000 new users
// imported through the engine into a fresh slapd on loopback, against
// `ldapadd -c` loading the same entries as LDIF into a fresh database,
// over one connection and as 8 parallel processes on 8 slices, in the
// same run; then the same import again, which must write nothing. The
// last line printed is
//
//	BENCH ldap users=… import_s=… ldapadd_s=… ldapadd8_s=… ratio_seq=… ratio_par=… noop_s=… noop_writes=…
//
// ratio_seq is ldapadd_s/import_s and ratio_par ldapadd8_s/import_s:
// above 1 the engine is faster. The loads take turns over -rounds rounds
// and each figure is its best round's.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	ldapdir "github.com/userimport/user-import-operator/internal/directory/ldap"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/mapping"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

const (
	markerAttr  = "businessCategory"
	markerValue = "user-import-operator"
)

// objectClasses are the provider's default object classes.
var objectClasses = []string{"inetOrgPerson", "organizationalPerson", "person", "top"}

// profile is where -cpuprofile writes the first import's CPU profile;
// managedOnly is the directory's scope.
var (
	profile     string
	managedOnly bool
)

func main() {
	users := flag.Int("users", 50_000, "users to import")
	conc := flag.Int("concurrency", 8, "the directory's concurrency setting (and the engine's batches in flight)")
	batch := flag.Int("batch", 100, "changes per batch")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the first import")
	rounds := flag.Int("rounds", 3, "rounds of the three loads; each figure is its best round's")
	scope := flag.String("scope", "Managed", "the directory's managed-users scope: Managed (creates are looked up first, batch by batch) or All")
	flag.Parse()
	profile = *cpuprofile
	if *scope != "All" && *scope != "Managed" {
		fmt.Fprintln(os.Stderr, "bench ldap: -scope is All or Managed")
		os.Exit(2)
	}
	managedOnly = *scope == "Managed"
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench ldap: -rounds is at least 1")
		os.Exit(2)
	}
	if err := run(*users, *conc, *batch, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench ldap:", err)
		os.Exit(1)
	}
}

// mappingSpec maps the HR export onto inetOrgPerson.
func mappingSpec() []v1alpha1.AttributeMapping {
	return []v1alpha1.AttributeMapping{
		{Attribute: "uid", Column: "employee_id", Identity: true, Required: true},
		{Attribute: "mail", Column: "email", Transforms: []v1alpha1.Transform{{Type: "Lower"}}, Check: "Email"},
		{Attribute: "givenName", Column: "first_name"},
		{Attribute: "sn", Column: "last_name", Required: true},
		{Attribute: "cn", Template: "{{.first_name}} {{.last_name}}"},
		{Attribute: "ou", Column: "department"},
		{Attribute: "title", Column: "title"},
		{Attribute: "l", Column: "location"},
		{Attribute: "departmentNumber", Column: "cost_center"},
	}
}

func run(users, conc, batch, rounds int) error {
	_, path, sum, cleanup, err := benchio.TempCSV("uio-bench-ldap-", "users.csv", users)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "bench ldap: %d users, concurrency %d, batches of %d, %d rounds, load %s\n", users, conc, batch, rounds, benchio.Load1())

	// The three loads take turns, each round on fresh servers, and each
	// figure is its best round's: on a shared machine the speed of the
	// same work drifts by a quarter from minute to minute.
	importS, ldapaddS, ldapadd8S := math.Inf(1), math.Inf(1), math.Inf(1)
	var noopS float64
	var noop engine.Result
	for round := range rounds {
		s, n, err := importRound(ctx, path, sum, users, conc, batch, round == 0, round == rounds-1)
		if err != nil {
			return err
		}
		importS = min(importS, s)
		if round == rounds-1 {
			noopS, noop = n.secs, n.res
		}
		s, err = ldapadd(ctx, users, 1)
		if err != nil {
			return err
		}
		ldapaddS = min(ldapaddS, s)
		s, err = ldapadd(ctx, users, 8)
		if err != nil {
			return err
		}
		ldapadd8S = min(ldapadd8S, s)
	}
	fmt.Printf("BENCH ldap users=%d import_s=%.2f ldapadd_s=%.2f ldapadd8_s=%.2f ratio_seq=%.2f ratio_par=%.2f noop_s=%.2f noop_writes=%d concurrency=%d managed_only=%v rounds=%d load1=%s\n",
		users, importS, ldapaddS, ldapadd8S, ldapaddS/importS, ldapadd8S/importS, noopS, benchio.Writes(noop.Counts), conc, managedOnly, rounds, benchio.Load1())
	return nil
}

// noopRun is the time and result of an unchanged re-run.
type noopRun struct {
	secs float64
	res  engine.Result
}

// importRound imports the file through the engine into a fresh server,
// profiling the first round when asked, and when rerun is set imports
// the unchanged file again, which must write nothing.
func importRound(ctx context.Context, path, sum string, users, conc, batch int, first, rerun bool) (float64, noopRun, error) {
	imp, err := slapd.StartProcess(slapd.Options{})
	if err != nil {
		return 0, noopRun{}, err
	}
	defer imp.Stop()
	dir, cfg, err := open(ctx, imp, conc, batch)
	if err != nil {
		return 0, noopRun{}, err
	}
	defer dir.Close()
	if profile != "" && first {
		f, err := os.Create(profile)
		if err != nil {
			return 0, noopRun{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, noopRun{}, err
		}
	}
	slapdCPU0, selfCPU0 := benchio.ProcessCPU(imp.PID()), benchio.SelfCPU()
	importS, res, err := benchio.Import(ctx, path, sum, dir, cfg)
	pprof.StopCPUProfile()
	slapdCPU, selfCPU := benchio.ProcessCPU(imp.PID())-slapdCPU0, benchio.SelfCPU()-selfCPU0
	if err != nil {
		return 0, noopRun{}, fmt.Errorf("import: %w", err)
	}
	if res.Counts.Created != int64(users) || res.Counts.Failed != 0 {
		return 0, noopRun{}, fmt.Errorf("import: %d created, %d failed, want %d created", res.Counts.Created, res.Counts.Failed, users)
	}
	if n, err := count(imp); err != nil || n != users {
		return 0, noopRun{}, fmt.Errorf("import: %d entries under %s (%v), want %d", n, imp.PeopleDN, err, users)
	}
	fmt.Fprintf(os.Stderr, "import: %.2f s (%.0f users/s), CPU µs/user: slapd %.0f, engine %.0f\n",
		importS, float64(users)/importS, perUser(slapdCPU, users), perUser(selfCPU, users))
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

func open(ctx context.Context, s *slapd.Server, conc, batch int) (directory.Directory, engine.Config, error) {
	opts := directory.Options{
		IdentityAttribute: "uid",
		ManagedOnly:       managedOnly,
		MarkerAttribute:   markerAttr,
		MarkerValue:       markerValue,
		Concurrency:       conc,
	}
	spec := &v1alpha1.LDAPDirectory{
		URL:          s.URL,
		BindDN:       s.BindDN,
		BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"},
		UsersBaseDN:  s.PeopleDN,
		PageSize:     1000,
	}
	secrets := func(_ context.Context, name, key string) ([]byte, error) {
		if name == "ldap" && key == "password" {
			return []byte(s.BindPassword), nil
		}
		return nil, fmt.Errorf("secret %s key %s not found", name, key)
	}
	d, err := ldapdir.New(ctx, spec, opts, secrets)
	if err != nil {
		return nil, engine.Config{}, err
	}
	cfg := engine.Config{
		Mapping:          mappingSpec(),
		Mode:             v1alpha1.ModeFull,
		MissingUsers:     v1alpha1.MissingIgnore,
		Directory:        opts,
		BatchSize:        batch,
		Concurrency:      conc,
		ProgressInterval: time.Second,
	}
	return d, cfg, nil
}

// ldapadd loads the users into a fresh server with procs parallel
// `ldapadd -c` processes, each given one slice of the LDIF, and returns
// the seconds from start to the last one's end.
func ldapadd(ctx context.Context, users, procs int) (float64, error) {
	s, err := slapd.StartProcess(slapd.Options{})
	if err != nil {
		return 0, err
	}
	defer s.Stop()
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
			writeEntry(&b, s.PeopleDN, attrs)
		}
		parts[p] = b.Bytes()
	}
	slapdCPU0, selfCPU0 := benchio.ProcessCPU(s.PID()), benchio.SelfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, procs)
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = s.LDAPAdd(ctx, parts[p])
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	slapdCPU, selfCPU := benchio.ProcessCPU(s.PID())-slapdCPU0, benchio.SelfCPU()-selfCPU0
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	if n, err := count(s); err != nil || n != users {
		return 0, fmt.Errorf("ldapadd ×%d: %d entries (%v), want %d", procs, n, err, users)
	}
	fmt.Fprintf(os.Stderr, "ldapadd ×%d: %.2f s (%.0f users/s), CPU µs/user: slapd %.0f, ldapadd %.0f\n",
		procs, secs, float64(users)/secs, perUser(slapdCPU, users), perUser(selfCPU, users))
	return secs, nil
}

// writeEntry writes the entry the provider adds for attrs: the same DN,
// object classes, attributes and marker.
func writeEntry(b *bytes.Buffer, base string, attrs directory.Attributes) {
	attrs[markerAttr] = []string{markerValue}
	line(b, "dn", "uid="+ldap.EscapeDN(attrs["uid"][0])+","+base)
	for _, oc := range objectClasses {
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

// line writes one LDIF line, base64 when the value is not a SAFE-STRING
// (RFC 2849).
func line(b *bytes.Buffer, name, v string) {
	safe := utf8.ValidString(v) && v != "" && v[0] != ' ' && v[0] != ':' && v[0] != '<' && v[len(v)-1] != ' '
	for i := 0; safe && i < len(v); i++ {
		safe = v[i] > 0 && v[i] < 0x80 && v[i] != '\n' && v[i] != '\r'
	}
	if safe {
		fmt.Fprintf(b, "%s: %s\n", name, v)
		return
	}
	fmt.Fprintf(b, "%s:: %s\n", name, base64.StdEncoding.EncodeToString([]byte(v)))
}

func perUser(d time.Duration, users int) float64 { return float64(d.Microseconds()) / float64(users) }

// count is the number of entries below the users' base.
func count(s *slapd.Server) (int, error) {
	c, err := s.Dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(s.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=inetOrgPerson)", []string{"1.1"}, nil), 1000)
	if err != nil {
		return 0, err
	}
	return len(res.Entries), nil
}
