// Command codes benchmarks recovery codes: 50,000 new users imported into
// a fresh slapd with generate: ForNewUsers — each code derived, hashed
// with the default scheme ({SSHA512}) and recorded in the import's
// Secrets on a real API server before its batch is written — against the
// same import without codes, in the same run. The last line printed is
//
//	BENCH codes users=… with_s=… without_s=… overhead=…
//
// overhead is with_s/without_s. The two imports take turns over -rounds
// rounds, each on a fresh server; each figure is its best round's.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	ldapdir "github.com/userimport/user-import-operator/internal/directory/ldap"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/recoverycode"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
	"github.com/userimport/user-import-operator/internal/worker"
)

func main() {
	users := flag.Int("users", 50_000, "users to import")
	conc := flag.Int("concurrency", 8, "the directory's concurrency setting")
	batch := flag.Int("batch", 100, "changes per batch")
	rounds := flag.Int("rounds", 2, "rounds of the two imports; each figure is its best round's")
	flag.Parse()
	if err := run(*users, *conc, *batch, max(*rounds, 1)); err != nil {
		fmt.Fprintln(os.Stderr, "bench codes:", err)
		os.Exit(1)
	}
}

func run(users, conc, batch, rounds int) error {
	_, path, sum, cleanup, err := benchio.TempCSV("uio-bench-codes-", "users.csv", users)
	if err != nil {
		return err
	}
	defer cleanup()
	env, err := testenv.New("")
	if err != nil {
		return err
	}
	defer env.Stop()
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "bench codes: %d users, concurrency %d, batches of %d, %d rounds, load %s\n", users, conc, batch, rounds, benchio.Load1())

	withS, withoutS := math.Inf(1), math.Inf(1)
	var secrets int
	for round := range rounds {
		s, _, err := importRound(ctx, env, path, sum, users, conc, batch, false, round)
		if err != nil {
			return err
		}
		withoutS = min(withoutS, s)
		s, n, err := importRound(ctx, env, path, sum, users, conc, batch, true, round)
		if err != nil {
			return err
		}
		withS, secrets = min(withS, s), n
	}
	fmt.Printf("BENCH codes users=%d with_s=%.2f without_s=%.2f overhead=%.2f secrets=%d scheme=SSHA512 concurrency=%d rounds=%d load1=%s\n",
		users, withS, withoutS, withS/withoutS, secrets, conc, rounds, benchio.Load1())
	return nil
}

// importRound imports the file into a fresh slapd, with codes kept in the
// Secrets of a new UserImport or without codes, and returns the seconds
// and the number of codes Secrets.
func importRound(ctx context.Context, env *testenv.Env, path, sum string, users, conc, batch int, codes bool, round int) (float64, int, error) {
	s, err := slapd.StartProcess(slapd.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer s.Stop()
	opts := directory.Options{IdentityAttribute: "uid", ManagedOnly: true, MarkerAttribute: "businessCategory", MarkerValue: "user-import-operator", Concurrency: conc}
	spec := &v1alpha1.LDAPDirectory{URL: s.URL, BindDN: s.BindDN, BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"}, UsersBaseDN: s.PeopleDN, PageSize: 1000}
	d, err := ldapdir.New(ctx, spec, opts, func(context.Context, string, string) ([]byte, error) { return []byte(s.BindPassword), nil })
	if err != nil {
		return 0, 0, err
	}
	defer d.Close()
	cfg := engine.Config{
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: "uid", Column: "employee_id", Identity: true, Required: true},
			{Attribute: "mail", Column: "email", Check: "Email"},
			{Attribute: "givenName", Column: "first_name"},
			{Attribute: "sn", Column: "last_name", Required: true},
			{Attribute: "cn", Template: "{{.first_name}} {{.last_name}}"},
			{Attribute: "title", Column: "title"},
		},
		Mode: v1alpha1.ModeFull, MissingUsers: v1alpha1.MissingIgnore, Directory: opts,
		BatchSize: batch, Concurrency: conc, ProgressInterval: time.Second,
	}
	var store worker.CodeStore
	var vault *worker.SecretVault
	if codes {
		imp := &v1alpha1.UserImport{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("bench-%d", round)},
			Spec: v1alpha1.UserImportSpec{
				DirectoryRef: v1alpha1.LocalObjectReference{Name: "ldap"},
				Source:       v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "hr", Key: "users.csv"}},
				Mapping:      cfg.Mapping,
			},
		}
		if err := env.Client.Create(ctx, imp); err != nil {
			return 0, 0, err
		}
		vault = &worker.SecretVault{Client: env.Client, Import: imp}
		cc, err := worker.CodeStorage(v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesForNewUsers},
			v1alpha1.UserDirectorySpec{LDAP: spec, RecoveryCodes: &v1alpha1.DirectoryRecoveryCodes{}}, "ldap")
		if err != nil {
			return 0, 0, err
		}
		cfg.Codes = cc
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	rep := &benchio.Reporter{Name: "import"}
	start := time.Now()
	if codes {
		// The key and the store are part of what an import with codes does.
		key, err := vault.Key(ctx)
		if err != nil {
			return 0, 0, err
		}
		if cfg.Codes.Generator, err = recoverycode.NewGenerator(key); err != nil {
			return 0, 0, err
		}
		if store, err = vault.Open(ctx, time.Time{}); err != nil {
			return 0, 0, err
		}
		cfg.Codes.Recorder = store
	}
	res, err := engine.Run(ctx, engine.Input{File: f, SHA256: sum}, d, cfg, false, rep)
	if err == nil && store != nil {
		err = store.Close(ctx, true)
	}
	secs := time.Since(start).Seconds()
	if err != nil {
		return 0, 0, err
	}
	if res.Counts.Created != int64(users) || rep.Errors > 0 {
		return 0, 0, fmt.Errorf("%d created, %d row errors (%s), want %d created", res.Counts.Created, rep.Errors, rep.FirstErrors(), users)
	}
	n := 0
	if codes {
		var imp v1alpha1.UserImport
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(vault.Import), &imp); err != nil {
			return 0, 0, err
		}
		st := imp.Status.RecoveryCodes
		if res.Counts.Codes != int64(users) || st == nil || st.Issued != int64(users) {
			return 0, 0, fmt.Errorf("%d codes given, status %+v; want %d", res.Counts.Codes, st, users)
		}
		n = len(st.Secrets)
	}
	label := "without codes"
	if codes {
		label = "with codes"
	}
	fmt.Fprintf(os.Stderr, "round %d %s: %.2f s (%.0f users/s)\n", round, label, secs, float64(users)/secs)
	return secs, n, nil
}
