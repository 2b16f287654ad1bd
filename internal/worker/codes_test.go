package worker

import (
	"bytes"
	"context"
	stdsql "database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/executor"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/recoverycode"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/source"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

// withCodes adds a hash column to the fixture's table and asks the
// import for codes by policy, hashed with a cheap argon2id.
func (f *fixture) withCodes(t *testing.T, policy v1alpha1.RecoveryCodePolicy) {
	t.Helper()
	db, err := stdsql.Open("sqlite", f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, col := range []string{"code", "code_expires"} {
		if _, err := db.Exec("ALTER TABLE users ADD COLUMN " + col + " TEXT"); err != nil {
			t.Fatal(err)
		}
	}
	f.dirSpec.RecoveryCodes = &v1alpha1.DirectoryRecoveryCodes{Attribute: "code", ExpiresAttribute: "code_expires", MemoryKiB: 64, Iterations: 1}
	imp := f.get(t)
	imp.Spec.RecoveryCodes = v1alpha1.RecoveryCodes{Generate: policy, ExpiresAfter: &metav1.Duration{Duration: 30 * 24 * time.Hour}}
	if err := f.c.Update(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
	// The controller sets the start before the import's first worker.
	imp = f.get(t)
	start := metav1.NewTime(time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC))
	imp.Status.StartTime = &start
	if err := f.c.Status().Update(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) runCodes(ctx context.Context, t *testing.T, stage Stage, sink Sink, wrap func(directory.Directory) directory.Directory) (Result, error) {
	t.Helper()
	imp := f.get(t)
	return Run(ctx, Config{
		Stage:     stage,
		Import:    imp,
		Directory: f.dirSpec,
		Secrets:   f.secrets,
		Source:    source.Options{Dir: t.TempDir(), MountedFile: f.csvPath},
		Open: func(ctx context.Context, spec v1alpha1.UserDirectorySpec, secrets keyread.KeyReader) (directory.Directory, error) {
			d, err := open.Directory(ctx, spec, secrets)
			if err != nil || wrap == nil {
				return d, err
			}
			return wrap(d), nil
		},
		Sink:             sink,
		Codes:            vaultFor(t, f.c, imp, stage),
		ProgressInterval: time.Millisecond,
	})
}

// codesOf reads the import's codes Secrets, named in its status: identity
// to code, failing on an identity listed twice or a Secret over 1 MiB.
func (f *fixture) codesOf(t *testing.T) map[string]string {
	t.Helper()
	st := f.get(t).Status.RecoveryCodes
	if st == nil {
		t.Fatal("no status.recoveryCodes")
	}
	codes := map[string]string{}
	for _, name := range st.Secrets {
		var s corev1.Secret
		if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: f.key.Namespace, Name: name}, &s); err != nil {
			t.Fatal(err)
		}
		if n := s.Size(); n >= 1<<20 {
			t.Fatalf("Secret %s has %d bytes", name, n)
		}
		if !metav1.IsControlledBy(&s, f.get(t)) {
			t.Fatalf("Secret %s is not owned by the import", name)
		}
		recs, err := csv.NewReader(bytes.NewReader(s.Data[runcontract.CodesKey])).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 || strings.Join(recs[0], ",") != "identity,code,expires" {
			t.Fatalf("Secret %s: header %v", name, recs)
		}
		for _, r := range recs[1:] {
			if _, dup := codes[r[0]]; dup {
				t.Fatalf("%s has two codes", r[0])
			}
			if r[2] != "2026-12-29T08:00:00Z" {
				t.Fatalf("expires %q", r[2])
			}
			codes[r[0]] = r[1]
		}
	}
	if int64(len(codes)) != st.Issued {
		t.Fatalf("status says %d codes, the Secrets hold %d", st.Issued, len(codes))
	}
	return codes
}

// hashes reads the stored hashes by identity.
func (f *fixture) hashes(t *testing.T) map[string]string {
	t.Helper()
	db, err := stdsql.Open("sqlite", f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT email, COALESCE(code, '') FROM users")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, h string
		if err := rows.Scan(&id, &h); err != nil {
			t.Fatal(err)
		}
		out[id] = h
	}
	return out
}

// checkCodes verifies that every user holds exactly the code the Secrets
// list for it.
func checkCodes(t *testing.T, codes, hashes map[string]string, users int) {
	t.Helper()
	if len(codes) != users || len(hashes) != users {
		t.Fatalf("%d codes in the Secrets, %d users; want %d of each", len(codes), len(hashes), users)
	}
	for id, code := range codes {
		ok, err := recoverycode.Verify(hashes[id], code)
		if err != nil || !ok {
			t.Fatalf("the code of %s in the Secrets does not verify against the directory (%v)", id, err)
		}
	}
}

// A preview counts the codes and makes none; the import keeps them in
// Secrets it owns, and nowhere else: not in status, the report Secret,
// Events or the log.
func TestRecoveryCodesGoToSecretsOnly(t *testing.T) {
	_, c := testenv.Shared(t)
	f := newFixture(t, c, "codes")
	writeCSV(t, f.csvPath, 120)
	f.withCodes(t, v1alpha1.CodesForNewUsers)

	var log bytes.Buffer
	if _, err := f.runCodes(context.Background(), t, runcontract.StagePreview, Tee(f.sink(), &ConsoleSink{Out: &log}), nil); err != nil {
		t.Fatal(err)
	}
	if p := f.get(t).Status.Preview; p == nil || p.RecoveryCodes != 120 {
		t.Fatalf("preview %+v, want 120 codes planned", p)
	}
	var secrets corev1.SecretList
	if err := c.List(context.Background(), &secrets); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if strings.HasPrefix(s.Name, "codes-codes") {
			t.Fatalf("the preview made Secret %s", s.Name)
		}
	}

	if _, err := f.runCodes(context.Background(), t, runcontract.StageImport, Tee(f.sink(), &ConsoleSink{Out: &log}), nil); err != nil {
		t.Fatal(err)
	}
	codes := f.codesOf(t)
	checkCodes(t, codes, f.hashes(t), 120)

	imp := f.get(t)
	status, _ := json.Marshal(imp.Status)
	var report corev1.Secret
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: "codes-report"}, &report); err != nil {
		t.Fatal(err)
	}
	var events corev1.EventList
	_ = c.List(context.Background(), &events)
	eventsJSON, _ := json.Marshal(events.Items)
	places := map[string]string{"status": string(status), "the log": log.String(), "Events": string(eventsJSON)}
	for k, v := range report.Data {
		places["report key "+k] = string(v)
	}
	for id, code := range codes {
		for where, text := range places {
			if strings.Contains(text, code) || strings.Contains(text, strings.ReplaceAll(code, "-", "")) {
				t.Fatalf("the code of %s is in %s", id, where)
			}
		}
	}
}

// Every code verifies after a worker is killed at random points — after
// its codes were recorded and before, during or after the batch was
// written — and run again: each user has exactly one code.
func TestRecoveryCodesSurviveKilledWorkers(t *testing.T) {
	_, c := testenv.Shared(t)
	f := newFixture(t, c, "codes-killed")
	writeCSV(t, f.csvPath, 2000)
	f.withCodes(t, v1alpha1.CodesForNewUsers)
	if _, err := f.runCodes(context.Background(), t, runcontract.StagePreview, f.sink(), nil); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(14, 2000))
	kills := 0
	for attempt := 0; ; attempt++ {
		if attempt > 40 {
			t.Fatal("the import did not finish after 40 workers")
		}
		// 2,000 rows in batches of 50: 40 batches. Kill within the next few.
		killAt := int32(1 + r.IntN(4))
		mode := r.IntN(3)
		_, err := f.runCodes(context.Background(), t, runcontract.StageImport, f.sink(), func(d directory.Directory) directory.Directory {
			return &killAfter{Directory: d, at: killAt, mode: mode}
		})
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), errKilled.Error()) {
			t.Fatalf("worker %d: %v", attempt, err)
		}
		kills++
	}
	if kills < 10 {
		t.Fatalf("only %d workers were killed, want at least 10", kills)
	}
	checkCodes(t, f.codesOf(t), f.hashes(t), 2000)
	t.Logf("%d workers killed; 2000 users, each with the one code the Secrets hold", kills)
}

var errKilled = errors.New("worker killed")

// killAfter ends a worker at its at-th batch: before writing it (mode 0),
// after writing half of it (1), or after writing all of it (2) — in each
// case after the batch's codes were recorded, and without the batch
// being committed.
type killAfter struct {
	directory.Directory
	at      int32
	mode    int
	applies atomic.Int32
}

func (d *killAfter) Apply(ctx context.Context, changes []directory.Change) ([]directory.Result, error) {
	if d.applies.Add(1) < d.at {
		return d.Directory.Apply(ctx, changes)
	}
	switch d.mode {
	case 1:
		if _, err := d.Directory.Apply(ctx, changes[:len(changes)/2]); err != nil {
			return nil, err
		}
	case 2:
		if _, err := d.Directory.Apply(ctx, changes); err != nil {
			return nil, err
		}
	}
	return nil, errKilled
}

// 7,000 codes fill three Secrets, each under 1 MiB; a directory without
// spec.recoveryCodes is refused at the preview with a reason.
func TestRecoveryCodesSplitAcrossSecrets(t *testing.T) {
	_, c := testenv.Shared(t)
	f := newFixture(t, c, "codes-split")
	writeCSV(t, f.csvPath, 7000)
	f.withCodes(t, v1alpha1.CodesForNewUsers)
	spec := f.dirSpec.RecoveryCodes
	f.dirSpec.RecoveryCodes = nil
	_, err := f.runCodes(context.Background(), t, runcontract.StagePreview, f.sink(), nil)
	if !failure.IsStalled(err) || failure.ReasonOf(err, "") != v1alpha1.ReasonRecoveryCodesNotConfigured || !strings.Contains(err.Error(), "spec.recoveryCodes") {
		t.Fatalf("got %v, want RecoveryCodesNotConfigured", err)
	}
	f.dirSpec.RecoveryCodes = spec
	if _, err := f.runCodes(context.Background(), t, runcontract.StageImport, f.sink(), nil); err != nil {
		t.Fatal(err)
	}
	st := f.get(t).Status.RecoveryCodes
	want := []string{"codes-split-codes-0", "codes-split-codes-1", "codes-split-codes-2"}
	if fmt.Sprint(st.Secrets) != fmt.Sprint(want) || st.Issued != 7000 {
		t.Fatalf("status.recoveryCodes %+v, want %v and 7000", st, want)
	}
	checkCodes(t, f.codesOf(t), f.hashes(t), 7000)
}

// 50,000 new users in slapd get codes: the Secrets are split, each under
// 1 MiB, and together hold every code; every user's userPassword holds
// its code, and users bind with it.
func TestRecoveryCodesFiftyThousandLDAPUsers(t *testing.T) {
	// A server and names of its own: it runs beside the other long tests.
	t.Parallel()
	_, c := testenv.Shared(t)
	s := slapd.Start(t, slapd.Options{})
	f := newFixture(t, c, "codes-ldap")
	const users = 50_000
	writeCSV(t, f.csvPath, users)
	work := t.TempDir()
	os.MkdirAll(filepath.Join(work, "ldap"), 0o700)
	os.WriteFile(filepath.Join(work, "ldap", "password"), []byte(s.BindPassword), 0o600)
	f.secrets = keyread.MountedSecrets(work)
	f.dirSpec = v1alpha1.UserDirectorySpec{
		IdentityAttribute: "uid",
		LDAP: &v1alpha1.LDAPDirectory{URL: s.URL, BindDN: s.BindDN, BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"},
			UsersBaseDN: s.PeopleDN, PageSize: 1000},
		Execution:     v1alpha1.ExecutionSettings{BatchSize: 100, Concurrency: 8},
		RecoveryCodes: &v1alpha1.DirectoryRecoveryCodes{},
	}
	imp := f.get(t)
	imp.Spec.Mapping = []v1alpha1.AttributeMapping{
		{Attribute: "uid", Column: "email", Identity: true},
		{Attribute: "mail", Column: "email"},
		{Attribute: "sn", Column: "last_name"},
		{Attribute: "cn", Template: "{{.first_name}} {{.last_name}}"},
	}
	imp.Spec.RecoveryCodes = v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesForNewUsers}
	if err := c.Update(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
	if _, err := f.runCodes(context.Background(), t, runcontract.StageImport, f.sink(), nil); err != nil {
		t.Fatal(err)
	}
	st := f.get(t).Status.RecoveryCodes
	if st == nil || st.Issued != users || len(st.Secrets) < 2 {
		t.Fatalf("status.recoveryCodes %+v, want %d codes in several Secrets", st, users)
	}
	codes := map[string]string{}
	for _, name := range st.Secrets {
		var sec corev1.Secret
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: name}, &sec); err != nil {
			t.Fatal(err)
		}
		if n := sec.Size(); n >= 1<<20 {
			t.Fatalf("Secret %s has %d bytes", name, n)
		}
		recs, err := csv.NewReader(bytes.NewReader(sec.Data[runcontract.CodesKey])).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs[1:] {
			codes[r[0]] = r[1]
		}
	}
	if len(codes) != users {
		t.Fatalf("the Secrets hold %d codes, want %d", len(codes), users)
	}
	dir, err := open.Directory(context.Background(), f.dirSpec, f.secrets)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	n := 0
	err = dir.List(context.Background(), []string{"uid", "userPassword"}, func(u directory.User) error {
		ok, err := recoverycode.Verify(first(u.Attributes["userPassword"]), codes[u.Identity])
		if err != nil || !ok {
			return fmt.Errorf("%s: its userPassword does not hold the code of the Secrets (%v)", u.Identity, err)
		}
		if n++; n%1000 == 0 {
			conn, err := s.Dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			if err := conn.Bind(u.ID, codes[u.Identity]); err != nil {
				return fmt.Errorf("%s does not bind with its code: %v", u.Identity, err)
			}
		}
		return nil
	})
	if err != nil || n != users {
		t.Fatalf("%d users checked (%v), want %d", n, err, users)
	}
	t.Logf("%d codes in %d Secrets, each under 1 MiB; every userPassword holds its code; %d users bound with theirs", users, len(st.Secrets), users/1000)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// With invitations on, each new user's invitation carries its code, the
// same as the Secrets hold; the report Secret does not.
func TestRecoveryCodesGoIntoInvitations(t *testing.T) {
	_, c := testenv.Shared(t)
	srv := mailpit.Start(t)
	f := newFixture(t, c, "codes-invited")
	writeCSV(t, f.csvPath, 20)
	f.withInvitations(t, srv, mailpit.Password)
	f.withCodes(t, v1alpha1.CodesForNewUsers)
	if _, err := f.runCodes(context.Background(), t, runcontract.StageImport, f.sink(), nil); err != nil {
		t.Fatal(err)
	}
	codes := f.codesOf(t)
	msgs, err := srv.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 20 {
		t.Fatalf("%d invitations, want 20", len(msgs))
	}
	for _, m := range msgs {
		d, err := srv.Detail(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		to := m.To[0].Address
		if code := codes[to]; code == "" || !strings.Contains(d.Text, "Your recovery code, to sign in without e-mail: "+code) || !strings.Contains(d.HTML, code) {
			t.Fatalf("the invitation to %s does not carry its code", to)
		}
	}
}

// A code forgotten (its write was refused) and recorded again in the same
// run is listed once.
func TestRecoveryCodesForgottenAndRecordedAgainAreListedOnce(t *testing.T) {
	_, c := testenv.Shared(t)
	f := newFixture(t, c, "codes-again")
	ctx := context.Background()
	store, err := prepareVault(t, c, f.get(t)).Open(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ann := []engine.IssuedCode{{Identity: "ann@corp.example", Code: "K7QX2-W9RTZ-P4LM8-VB3HN"}}
	bob := []engine.IssuedCode{{Identity: "bob@corp.example", Code: "M3NP4-QR5ST-6UVW7-XYZ89"}}
	if err := store.Record(ctx, append(ann, bob...)); err != nil {
		t.Fatal(err)
	}
	store.Forget([]string{"ann@corp.example"})
	if err := store.Record(ctx, ann); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(ctx, true); err != nil {
		t.Fatal(err)
	}
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "codes-again-codes-0"}, &s); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(s.Data[runcontract.CodesKey]), "ann@corp.example"); got != 1 || len(f.get(t).Status.RecoveryCodes.Secrets) != 1 {
		t.Fatalf("ann is listed %d times; status %+v:\n%s", got, f.get(t).Status.RecoveryCodes, s.Data[runcontract.CodesKey])
	}
}

// Codes are counted when their users are written: the Secrets may hold
// the codes of batches ahead, which status does not count, and a resumed
// import counts on from its checkpoint.
func TestRecoveryCodesAreCountedWithTheirUsers(t *testing.T) {
	_, c := testenv.Shared(t)
	f := newFixture(t, c, "codes-counted")
	ctx := context.Background()
	store, err := prepareVault(t, c, f.get(t)).Open(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var ahead []engine.IssuedCode
	for i := range 4 {
		ahead = append(ahead, engine.IssuedCode{Identity: fmt.Sprintf("u%d@corp.example", i), Code: fmt.Sprintf("K7QX2-W9RTZ-P4LM8-VB3H%d", i)})
	}
	if err := store.Record(ctx, ahead); err != nil {
		t.Fatal(err)
	}
	if st := f.get(t).Status.RecoveryCodes; st == nil || st.Issued != 0 || len(st.Secrets) != 1 {
		t.Fatalf("codes of users not written yet are counted: %+v", st)
	}
	cp := &engine.ResumePoint{Line: 2, Offset: 40, SHA256: "abc", Step: v1alpha1.StepApply,
		Counts: engine.Counts{Rows: 1, ChangeCounts: v1alpha1.ChangeCounts{Created: 1}, Codes: 1}}
	if err := f.sink().Progress(ctx, Progress{Progress: engine.Progress{Counts: cp.Counts, ResumePoint: cp}}); err != nil {
		t.Fatal(err)
	}
	imp := f.get(t)
	if st := imp.Status.RecoveryCodes; st.Issued != 1 || imp.Status.Progress.RecoveryCodes != 1 || imp.Status.Progress.Created != 1 {
		t.Fatalf("status.recoveryCodes %+v, progress %+v: want 1 code beside 1 user created", st, imp.Status.Progress)
	}
	if got := checkpointOf(imp); got == nil || got.Counts.Codes != 1 {
		t.Fatalf("a resumed import counts codes from %+v", got)
	}
}

// prepareVault makes the Secrets of imp's codes, as the controller does
// before a run, for a file of up to 60,000 rows, and returns the vault
// over them.
func prepareVault(t *testing.T, c client.Client, imp *v1alpha1.UserImport) *SecretVault {
	t.Helper()
	sized := imp.DeepCopy()
	sized.Status.Source = &v1alpha1.SourceStatus{Rows: 60000}
	if err := executor.PrepareCodes(context.Background(), c, c, sized); err != nil {
		t.Fatal(err)
	}
	return &SecretVault{Client: c, Import: imp}
}

// The worker reads no key or codes Secret its import does not control:
// a key someone else chose would let them compute every code.
func TestWorkerRefusesCodesSecretsItsImportDoesNotControl(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	f := newFixture(t, c, "codes-planted")
	imp := f.get(t)
	for _, name := range []string{jobs.CodesKeySecretName(imp), jobs.CodesSecretName(imp, 0)} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Data: map[string][]byte{runcontract.CodesKeyData: []byte("0123456789abcdef0123456789abcdef"), runcontract.CodesKey: []byte("identity,code,expires\n")}}
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	v := &SecretVault{Client: c, Import: imp}
	var notOwned *jobs.NotOwnedError
	if _, err := v.Key(ctx); !errors.As(err, &notOwned) {
		t.Fatalf("a planted key: %v, want it refused", err)
	}
	if _, err := v.Open(ctx, time.Time{}); !errors.As(err, &notOwned) {
		t.Fatalf("a planted codes Secret: %v, want it refused", err)
	}
	if err := executor.PrepareCodes(ctx, c, c, imp); !errors.As(err, &notOwned) {
		t.Fatalf("the controller's preparation over a planted key: %v, want it refused", err)
	}
}

// vaultFor is the vault of a run of stage: a preview's has no Secrets
// made for it, as the controller makes them for imports only.
func vaultFor(t *testing.T, c client.Client, imp *v1alpha1.UserImport, stage Stage) *SecretVault {
	if stage == runcontract.StagePreview {
		return &SecretVault{Client: c, Import: imp}
	}
	return prepareVault(t, c, imp)
}

// A file whose rows are not known yet gets codes Secrets a few at a
// time: the worker says which it uses, the controller makes the next
// ones, and the worker waits for them when it gets ahead.
func TestCodesSecretsAreMadeAheadOfTheWorker(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	f := newFixture(t, c, "codes-ahead")
	imp := f.get(t)
	if err := executor.PrepareCodes(ctx, c, c, imp); err != nil {
		t.Fatal(err)
	}
	if n := jobs.CodesSecretsFor(imp); n != jobs.CodesSecretsAhead {
		t.Fatalf("%d codes Secrets for a file of unknown size, want %d", n, jobs.CodesSecretsAhead)
	}
	// The controller's part: on each status change, make the next ones.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			_ = executor.PrepareCodes(ctx, c, c, f.get(t))
		}
	}()
	store, err := (&SecretVault{Client: c, Import: imp}).Open(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	const codes = 4*jobs.CodesPerSecret + 10
	for i := 0; i < codes; i += 500 {
		var batch []engine.IssuedCode
		for j := i; j < min(i+500, codes); j++ {
			batch = append(batch, engine.IssuedCode{Identity: fmt.Sprintf("u%05d@corp.example", j), Code: "K7QX2-W9RTZ-P4LM8-VB3HN"})
		}
		if err := store.Record(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(ctx, true); err != nil {
		t.Fatal(err)
	}
	st := f.get(t).Status.RecoveryCodes
	if st == nil || len(st.Secrets) != 5 || st.Issued != codes {
		t.Fatalf("status %+v, want 5 Secrets and %d codes", st, codes)
	}
	withCodes := f.get(t)
	withCodes.Spec.RecoveryCodes.Generate = v1alpha1.CodesForNewUsers
	if r := jobs.Role(withCodes); !strings.Contains(fmt.Sprint(r.Rules), jobs.CodesSecretName(imp, 6)) {
		t.Fatalf("the worker's Role does not name the Secrets ahead: %v", r.Rules)
	}
}

// Rotating every user's code (generate All) waits for the exact count
// its preview gave to be approved: without it the import stops before
// writing anything; with it, every user gets a new code.
func TestRotatingEveryCodeNeedsTheCountApproved(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	f := newFixture(t, c, "codes-rotate")
	writeCSV(t, f.csvPath, 40)
	f.withCodes(t, v1alpha1.CodesAll)
	imp := f.get(t)
	imp.Spec.Mode = v1alpha1.ModeDelta
	if err := c.Update(ctx, imp); err != nil {
		t.Fatal(err)
	}

	out, err := f.runCodes(ctx, t, runcontract.StageImport, f.sink(), nil)
	if err != nil || out.SafetyStop == nil || !out.SafetyStop.CodeStop || out.SafetyStop.Codes != -1 {
		t.Fatalf("an import without a preview: %+v (%v), want a stop that asks for a preview", out.SafetyStop, err)
	}
	if _, err := f.runCodes(ctx, t, runcontract.StagePreview, f.sink(), nil); err != nil {
		t.Fatal(err)
	}
	if p := f.get(t).Status.Preview; p == nil || p.RecoveryCodes != 40 {
		t.Fatalf("preview %+v, want 40 codes planned", p)
	}
	for _, approved := range []*int64{nil, ptr.To[int64](39)} {
		imp := f.get(t)
		imp.Spec.Safety.ApprovedRecoveryCodes = approved
		if err := c.Update(ctx, imp); err != nil {
			t.Fatal(err)
		}
		out, err := f.runCodes(ctx, t, runcontract.StageImport, f.sink(), nil)
		if err != nil || out.SafetyStop == nil || !out.SafetyStop.CodeStop || out.SafetyStop.Codes != 40 {
			t.Fatalf("approved %v: %+v (%v), want a stop for 40 codes", approved, out.SafetyStop, err)
		}
		if msg := out.SafetyStop.Sentence(imp.Spec); !strings.Contains(msg, "set spec.safety.approvedRecoveryCodes: 40") {
			t.Fatalf("the stop says %q", msg)
		}
		if n := f.countUsers(t); n != 0 {
			t.Fatalf("the stopped import wrote %d users", n)
		}
	}
	imp = f.get(t)
	imp.Spec.Safety.ApprovedRecoveryCodes = ptr.To[int64](40)
	if err := c.Update(ctx, imp); err != nil {
		t.Fatal(err)
	}
	if out, err := f.runCodes(ctx, t, runcontract.StageImport, f.sink(), nil); err != nil || out.SafetyStop != nil {
		t.Fatalf("the approved import: %+v (%v)", out.SafetyStop, err)
	}
	if got := len(f.codesOf(t)); got != 40 {
		t.Fatalf("%d codes given, want 40", got)
	}
}
