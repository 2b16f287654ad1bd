package invite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
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
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

var (
	pgShared postgres.Shared
	pgTables atomic.Int64
)

func TestMain(m *testing.M) { pgShared.Main(m) }

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
	spec := &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverPostgres, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: table, Insecure: true}
	secrets := func(context.Context, string, string) ([]byte, error) { return []byte(dsn), nil }
	d, err := sqldir.New(context.Background(), spec, dirOptions, secrets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

var dirOptions = directory.Options{IdentityAttribute: "uid", ManagedOnly: true, MarkerAttribute: "mark", MarkerValue: "uio", Concurrency: 2, MaxRetries: 3}

func relayOf(s *mailpit.Server, password string) (*v1alpha1.MailRelay, keyread.KeyReader) {
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
		return nil, keyread.NotFound("Secret %s has no key %s", name, key)
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

// stopAtCheckpoint stops a run once it reported n checkpoints.
type stopAtCheckpoint struct {
	engine.Reporter
	n    int
	stop context.CancelFunc
}

func (s *stopAtCheckpoint) Progress(p engine.Progress) {
	s.Reporter.Progress(p)
	if p.ResumePoint != nil {
		if s.n--; s.n == 0 {
			s.stop()
		}
	}
}

// stopAfterSends stops a run once it sent n invitations.
type stopAfterSends struct {
	engine.Inviter
	n    int
	stop context.CancelFunc
}

func (s *stopAfterSends) Send(ctx context.Context, inv engine.Invitee) error {
	err := s.Inviter.Send(ctx, inv)
	if s.n--; s.n == 0 {
		s.stop()
	}
	return err
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
		ctx, cancel := context.WithCancel(context.Background())
		rec := &checkpoints{}
		var report engine.Reporter = rec
		cfg.Invite.Inviter = m
		switch {
		case interruptions < 4:
			// The first stops fall among the writes (40 batches), counted
			// in checkpoints rather than in time, so that a fast machine
			// stops as often as a slow one.
			report = &stopAtCheckpoint{Reporter: rec, n: 1 + r.IntN(8), stop: cancel}
		case interruptions < 12:
			// Later ones among the invitations.
			cfg.Invite.Inviter = &stopAfterSends{Inviter: m, n: 1 + r.IntN(200), stop: cancel}
		}
		res, err := engine.Run(ctx, input(content, cp), dir, cfg, false, report)
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

// seedPending writes users straight into the table: uid, mail, state,
// invited, active, all managed.
func seedPending(t *testing.T, dsn, table string, rows [][5]any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	b := &pgx.Batch{}
	for _, r := range rows {
		b.Queue("INSERT INTO "+table+" (uid, mail, given, state, invited, active, mark) VALUES ($1, $2, 'G', $3, $4, $5, 'uio')", r[0], r[1], r[2], r[3], r[4])
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
}

// Pending users are invited once per resendAfter; active users never;
// users the file does not list are left alone.
func TestPendingUsersHonourResendAfter(t *testing.T) {
	relay := mailpit.Start(t)
	dsn, table := usersTable(t)
	now := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	var rows [][5]any
	want := map[string]bool{}
	var file []string
	add := func(i int, state string, invited any, active, invite bool) {
		uid, addr := fmt.Sprintf("p%03d", i), fmt.Sprintf("pending%03d@example.com", i)
		rows = append(rows, [5]any{uid, addr, state, invited, active})
		file = append(file, uid+","+addr+",G")
		if invite {
			want[addr] = true
		}
	}
	i := 0
	for range 30 { // never invited
		add(i, "pending", nil, true, true)
		i++
	}
	for range 25 { // invited a day ago: too recent
		add(i, "pending", now.Add(-24*time.Hour).Format(time.RFC3339), true, false)
		i++
	}
	for range 20 { // invited ten days ago
		add(i, "pending", now.Add(-240*time.Hour).Format(time.RFC3339), true, true)
		i++
	}
	for range 5 { // just under resendAfter, and exactly at it
		add(i, "pending", now.Add(-168*time.Hour+time.Minute).Format(time.RFC3339), true, false)
		i++
	}
	add(i, "pending", now.Add(-168*time.Hour).Format(time.RFC3339), true, true)
	i++
	for range 9 { // owed since a failed import
		add(i, "pending", engine.InvitationDue, true, true)
		i++
	}
	for range 10 { // active users, long ago or never invited
		add(i, "active", nil, true, false)
		i++
	}
	seedPending(t, dsn, table, rows)
	// Pending users the file does not list, one of them deactivated (a
	// delta file that lists a deactivated user reactivates it).
	seedPending(t, dsn, table, [][5]any{{"absent1", "absent1@example.com", "pending", nil, true}, {"absent2", "absent2@example.com", "pending", nil, false}})
	content := "id,mail,given\n" + strings.Join(file, "\n") + "\n"

	cfg := config(engine.InviteConfig{PendingUsers: true, AddressAttribute: "mail", InvitedAttribute: "invited",
		PendingAttribute: "state", PendingValue: "pending", ResendAfter: 7 * 24 * time.Hour, Now: func() time.Time { return now }})
	m, sender := mailer(t, relay, mailpit.Password)
	defer sender.Close()
	cfg.Invite.Inviter = m

	// The preview counts and sends nothing.
	res, err := engine.Run(context.Background(), input(content, nil), openSQL(t, dsn, table), cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Invitations.PendingUsers != int64(len(want)) || res.Invitations.Sent != 0 || len(addressesOf(t, relay)) != 0 {
		t.Fatalf("preview: %+v, want %d pending and nothing sent", res.Invitations, len(want))
	}

	res, err = engine.Run(context.Background(), input(content, nil), openSQL(t, dsn, table), cfg, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := addressesOf(t, relay)
	for a := range want {
		if got[a] != 1 {
			t.Errorf("%s: %d invitations, want 1", a, got[a])
		}
	}
	for a, k := range got {
		if !want[a] {
			t.Errorf("%s: %d invitations, want none", a, k)
		}
	}
	if res.Invitations.Sent != int64(len(want)) || res.Invitations.PendingUsers != int64(len(want)) {
		t.Fatalf("counts %+v, want %d sent", res.Invitations, len(want))
	}

	// At once again: everyone was invited within resendAfter.
	res, err = engine.Run(context.Background(), input(content, nil), openSQL(t, dsn, table), cfg, false, nil)
	if err != nil || res.Invitations.Sent != 0 {
		t.Fatalf("a second run sent %d (%v)", res.Invitations.Sent, err)
	}
	// Eight days later the pending users are invited again.
	later := now.Add(8 * 24 * time.Hour)
	cfg.Invite.Now = func() time.Time { return later }
	res, err = engine.Run(context.Background(), input(content, nil), openSQL(t, dsn, table), cfg, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wantAgain := int64(30 + 25 + 20 + 5 + 1 + 9); res.Invitations.Sent != wantAgain {
		t.Fatalf("eight days later %d sent, want %d", res.Invitations.Sent, wantAgain)
	}
}

// A relay that is down, or that refuses the password, does not undo or
// fail the writes: the import completes, counts its invitations as
// failed, names the relay's reason, and the next import invites the users
// it missed. Neither error quotes an address.
func TestRelayFailuresLeaveUsersWrittenAndOwed(t *testing.T) {
	relay := mailpit.Start(t)
	for _, tc := range []struct {
		name   string
		break_ func(*Mailer)
		reason string
	}{
		{"down", func(m *Mailer) {
			spec, secrets := relayOf(relay, mailpit.Password)
			spec.Port = int32(closedPort(t))
			m.Sender = mail.NewSender(spec, secrets, 2*time.Second)
			m.Sender.Retries, m.Sender.Backoff = 1, 10*time.Millisecond
		}, v1alpha1.ReasonMailUnreachable},
		{"wrong password", func(m *Mailer) {
			spec, secrets := relayOf(relay, "not-the-password")
			m.Sender = mail.NewSender(spec, secrets, 2*time.Second)
		}, v1alpha1.ReasonMailAuthenticationFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn, table := usersTable(t)
			const n = 120
			content := csvOf(n, func(i int) string {
				if i%10 == 0 {
					return ""
				}
				return fmt.Sprintf("%s-%03d@example.com", strings.ReplaceAll(tc.name, " ", ""), i)
			})
			cfg := config(engine.InviteConfig{NewUsers: true, AddressAttribute: "mail", InvitedAttribute: "invited"})
			m, _ := mailer(t, relay, mailpit.Password)
			tc.break_(m)
			cfg.Invite.Inviter = m
			before := len(addressesOf(t, relay))
			res, err := engine.Run(context.Background(), input(content, nil), openSQL(t, dsn, table), cfg, false, nil)
			if err != nil {
				t.Fatalf("the import failed: %v", err)
			}
			inv := res.Invitations
			if res.Counts.Created != n || inv.Sent != 0 || inv.Failed != n-n/10 || inv.NoAddress != n/10 || inv.RelayError == nil {
				t.Fatalf("counts %+v, invitations %+v", res.Counts, inv)
			}
			if got := failure.ReasonOf(inv.RelayError, v1alpha1.ReasonMailUnreachable); got != tc.reason {
				t.Fatalf("reason %s, want %s (%v)", got, tc.reason, inv.RelayError)
			}
			if strings.Contains(inv.RelayError.Error(), "@example.com") {
				t.Fatalf("the error quotes an address: %v", inv.RelayError)
			}
			// The next import, with the relay back, invites them.
			good, sender := mailer(t, relay, mailpit.Password)
			defer sender.Close()
			cfg.Invite.Inviter = good
			res, err = engine.Run(context.Background(), input(content, nil), openSQL(t, dsn, table), cfg, false, nil)
			if err != nil || res.Invitations.Sent != n-n/10 || res.Counts.Created != 0 {
				t.Fatalf("the next import: %+v %+v (%v)", res.Counts, res.Invitations, err)
			}
			if got := len(addressesOf(t, relay)) - before; got != n-n/10 {
				t.Fatalf("%d addresses invited, want %d", got, n-n/10)
			}
		})
	}
}

func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}
