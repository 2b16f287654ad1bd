package invite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/kube"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

var (
	pgShared postgres.Shared
	pgTables atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgShared.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the PostgreSQL test peer:", err)
	}
	os.Exit(code)
}

// usersTable creates a users table (uid, mail, given, mark, invited,
// state) in the package's PostgreSQL server and returns its DSN and name.
func usersTable(t *testing.T) (string, string) {
	t.Helper()
	dsn := pgShared.Get(t).DSN
	table := fmt.Sprintf("invite_%d", pgTables.Add(1))
	err := sqldir.CreateTable(context.Background(), v1alpha1.SQLDriverPostgres, dsn, sqldir.TableSpec{
		Table: table, IdentityColumn: "uid", Columns: []string{"mail", "given", "mark", "invited", "state"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return dsn, table
}

func openSQL(t *testing.T, dsn, table string) directory.Directory {
	t.Helper()
	spec := &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverPostgres, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: table}
	secrets := func(context.Context, string, string) ([]byte, error) { return []byte(dsn), nil }
	d, err := sqldir.New(context.Background(), spec, dirOptions, secrets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

var dirOptions = directory.Options{IdentityAttribute: "uid", ManagedOnly: true, MarkerAttribute: "mark", MarkerValue: "uio", Concurrency: 2, MaxRetries: 3}

func relayOf(s *mailpit.Server, password string) (*v1alpha1.MailRelay, kube.KeyReader) {
	spec := &v1alpha1.MailRelay{
		Host: s.Host, Port: int32(s.SMTPPort), TLS: v1alpha1.MailStartTLS,
		CABundle:     &v1alpha1.SecretKeyRef{Name: "relay", Key: "ca.crt"},
		AuthUsername: mailpit.User, AuthPassword: &v1alpha1.SecretKeyRef{Name: "relay", Key: "password"},
		From: "Onboarding <onboarding@example.com>",
	}
	secrets := func(_ context.Context, name, key string) ([]byte, error) {
		switch key {
		case "password":
			return []byte(password), nil
		case "ca.crt":
			return s.CAPEM, nil
		}
		return nil, kube.NotFound("Secret %s has no key %s", name, key)
	}
	return spec, secrets
}

// mailer returns an Inviter sending through s with the default templates,
// as a new worker would make it.
func mailer(t *testing.T, s *mailpit.Server, password string) (*Mailer, *mail.Sender) {
	t.Helper()
	spec, secrets := relayOf(s, password)
	tpl, err := Load(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sender := mail.NewSender(spec, secrets, 5*time.Second)
	sender.Retries, sender.Backoff = 2, 50*time.Millisecond
	return &Mailer{Templates: tpl, Sender: sender, Organization: "Example Corp", SignInURL: "https://sso.example.com", MessageIDs: "import-1"}, sender
}

func config(inv engine.InviteConfig) engine.Config {
	return engine.Config{
		Mode: v1alpha1.ModeDelta,
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: "uid", Column: "id", Identity: true, Required: true},
			{Attribute: "mail", Column: "mail"},
			{Attribute: "given", Column: "given"},
		},
		Directory:   dirOptions,
		BatchSize:   50,
		Concurrency: 2,
		Invite:      &inv,
	}
}

func csvOf(n int, address func(i int) string) string {
	var b strings.Builder
	b.WriteString("id,mail,given\n")
	for i := range n {
		fmt.Fprintf(&b, "u%05d,%s,Given%d\n", i, address(i), i)
	}
	return b.String()
}

func input(content string, cp *engine.ResumePoint) engine.Input {
	sum := sha256.Sum256([]byte(content))
	return engine.Input{File: strings.NewReader(content), SHA256: hex.EncodeToString(sum[:]), Resume: cp}
}

// checkpoints keeps the last checkpoint a run reported.
type checkpoints struct {
	mu   sync.Mutex
	last *engine.ResumePoint
	errs []engine.RowError
}

func (c *checkpoints) Progress(p engine.Progress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.ResumePoint != nil {
		c.last = p.ResumePoint
	}
}

func (c *checkpoints) RowError(e engine.RowError) {
	c.mu.Lock()
	c.errs = append(c.errs, e)
	c.mu.Unlock()
}

func addressesOf(t *testing.T, s *mailpit.Server) map[string]int {
	t.Helper()
	msgs, err := s.Messages()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range msgs {
		for _, to := range m.To {
			got[to.Address]++
		}
	}
	return got
}

// A worker stopped at random points, while it writes users and while it
// sends their invitations, and resumed each time from its last checkpoint,
// sends every invitation exactly once.
func TestInvitationsExactlyOnceAcrossInterruptions(t *testing.T) {
	const n = 2000
	relay := mailpit.Start(t)
	dsn, table := usersTable(t)
	content := csvOf(n, func(i int) string { return fmt.Sprintf("user%05d@example.com", i) })
	r := rand.New(rand.NewPCG(7, 13))
	cfg := config(engine.InviteConfig{NewUsers: true, AddressAttribute: "mail", InvitedAttribute: "invited"})

	var cp *engine.ResumePoint
	interruptions, midSending := 0, 0
	for attempt := 0; ; attempt++ {
		if attempt > 200 {
			t.Fatal("the import never completes")
		}
		dir := openSQL(t, dsn, table)
		m, sender := mailer(t, relay, mailpit.Password)
		cfg.Invite.Inviter = m
		ctx, cancel := context.WithCancel(context.Background())
		if interruptions < 12 {
			// The first stops fall among the writes, later ones among the
			// invitations.
			after := time.Duration(5+r.IntN(40+interruptions*60)) * time.Millisecond
			time.AfterFunc(after, cancel)
		}
		rec := &checkpoints{}
		res, err := engine.Run(ctx, input(content, cp), dir, cfg, false, rec)
		cancel()
		_ = sender.Close()
		_ = dir.Close()
		if err == nil {
			if res.Invitations.RelayError != nil || res.Invitations.Failed != 0 {
				t.Fatalf("invitations failed: %+v", res.Invitations)
			}
			break
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		interruptions++
		if got := len(addressesOf(t, relay)); got > 0 && got < n {
			midSending++
		}
		if rec.last != nil {
			cp = rec.last
		}
	}
	if interruptions < 10 || midSending < 3 {
		t.Fatalf("%d interruptions, %d of them while invitations were being sent: too few to prove anything", interruptions, midSending)
	}
	got := addressesOf(t, relay)
	if len(got) != n {
		t.Fatalf("%d addresses got an invitation, want %d", len(got), n)
	}
	for a, k := range got {
		if k != 1 {
			t.Fatalf("%s got %d invitations", a, k)
		}
	}
	// Every user records when it was invited.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var notStamped int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE invited IS NULL OR invited !~ '^[0-9]{4}-'").Scan(&notStamped); err != nil {
		t.Fatal(err)
	}
	if notStamped != 0 {
		t.Fatalf("%d users do not record their invitation", notStamped)
	}
	t.Logf("%d interruptions, %d while sending", interruptions, midSending)
}
