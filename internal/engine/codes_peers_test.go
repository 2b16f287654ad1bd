package engine

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/recoverycode"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

// memoryCodes keeps the codes a run records in memory: the engine's side
// of what the worker keeps in Secrets.
type memoryCodes struct {
	mu    sync.Mutex
	codes map[string]string
}

func newMemoryCodes() *memoryCodes { return &memoryCodes{codes: map[string]string{}} }

func (m *memoryCodes) Record(_ context.Context, codes []IssuedCode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range codes {
		m.codes[c.Identity] = c.Code
	}
	return nil
}

func (m *memoryCodes) Forget(ids []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.codes, id)
	}
}

func (m *memoryCodes) Code(id string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.codes[id]
	return c, ok
}

// codePeer is a real directory that stores codes, and how to prove that a
// user's code works there: a bind to slapd, the SCIM server's own check of
// the password it holds, bcrypt over the PostgreSQL column.
type codePeer struct {
	name     string
	identity string
	mailAttr string
	marker   string
	storage  CodeConfig
	// signIn tells whether user id signs in with code.
	signIn func(t *testing.T, id, code string) bool
	dir    directory.Directory
	// whereMissing is false where the directory cannot tell which users
	// hold a code (SCIM without an expiry attribute).
	whereMissing bool
}

func codePeers(t *testing.T) []codePeer {
	ldapSrv, ldapDir, _ := startLDAPServer(t, nil)
	ssha, _ := recoverycode.NewHasher(v1alpha1.SchemeSSHA512, true, recoverycode.Costs{})
	scimSrv, scimDir, _ := startSCIMServer(t, nil)
	plain, _ := recoverycode.NewHasher(v1alpha1.SchemePlain, false, recoverycode.Costs{})
	dsn, table, pgDir, _ := startPostgresTable(t, nil)
	bc, _ := recoverycode.NewHasher(v1alpha1.SchemeBcrypt, false, recoverycode.Costs{BcryptCost: int32(bcrypt.MinCost)})
	return []codePeer{
		{name: "LDAP", identity: "uid", mailAttr: "mail", marker: "businessCategory", dir: ldapDir, whereMissing: true,
			storage: CodeConfig{Attribute: "userPassword", HeldAttribute: "userPassword", ExpiresAttribute: "description", Hasher: ssha},
			signIn:  func(t *testing.T, id, code string) bool { return ldapBind(t, ldapSrv, ldapDir, id, code) }},
		{name: "SCIM", identity: "userName", mailAttr: "emails", marker: scimEnterprise + ":organization", dir: scimDir,
			storage: CodeConfig{Attribute: "password", Hasher: plain},
			signIn: func(t *testing.T, id, code string) bool {
				ok, err := scimSrv.VerifyPassword(id, code)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}},
		{name: "PostgreSQL", identity: "uid", mailAttr: "mail", marker: "mark", dir: pgDir, whereMissing: true,
			storage: CodeConfig{Attribute: "code", HeldAttribute: "code", ExpiresAttribute: "code_expires", Hasher: bc},
			signIn: func(t *testing.T, id, code string) bool {
				ctx := context.Background()
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				var hash string
				if err := conn.QueryRow(ctx, "SELECT code FROM "+pgx.Identifier{table}.Sanitize()+" WHERE uid = $1", id).Scan(&hash); err != nil {
					t.Fatal(err)
				}
				return bcrypt.CompareHashAndPassword([]byte(hash), []byte(code)) == nil
			}},
	}
}

// ldapBind binds to s as the user with identity id.
func ldapBind(t *testing.T, s *slapd.Server, d directory.Directory, id, code string) bool {
	t.Helper()
	users, err := d.Lookup(context.Background(), []string{id}, []string{"uid"})
	if err != nil || users[id].ID == "" {
		t.Fatalf("looking %s up: %v", id, err)
	}
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Bind(users[id].ID, code)
	if err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
		t.Fatalf("bind: %v", err)
	}
	return err == nil
}

// codesConfig is a delta import of id, mail and title into p giving codes
// by policy, with the key of a new import.
func codesConfig(t *testing.T, p codePeer, policy v1alpha1.RecoveryCodePolicy, rec CodeRecorder) Config {
	t.Helper()
	key, err := recoverycode.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := recoverycode.NewGenerator(key)
	cc := p.storage
	cc.Policy, cc.Generator, cc.Recorder = policy, gen, rec
	if cc.ExpiresAttribute != "" {
		cc.Expires = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	}
	return Config{
		Mode: v1alpha1.ModeDelta,
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: p.identity, Column: "id", Identity: true, Required: true},
			{Attribute: p.mailAttr, Column: "mail", Check: "Email"},
			{Attribute: "title", Column: "title"},
		},
		Directory: peerOptions(p.identity, p.marker, true),
		Codes:     &cc,
		BatchSize: 4,
	}
}

func codeRows(prefix string, from, to int) []string {
	var rows []string
	for i := from; i < to; i++ {
		rows = append(rows, fmt.Sprintf("%s-%02d,%s-%02d@example.com,Clerk,", prefix, i, prefix, i))
	}
	return rows
}

// Every directory stores a code the user then signs in with: new users
// get one, WhereMissing leaves the codes users hold alone, and All
// replaces every code.
func TestRecoveryCodesInEveryDirectory(t *testing.T) {
	for _, p := range codePeers(t) {
		t.Run(p.name, func(t *testing.T) {
			const n = 10
			prefix := strings.ToLower(p.name)
			content := file(codeRows(prefix, 0, n)...)

			first := newMemoryCodes()
			cfg := codesConfig(t, p, v1alpha1.CodesForNewUsers, first)
			preview, _, err := runOnce(t, p.dir, cfg, content, true)
			if err != nil || preview.Counts.Codes != n || len(first.codes) != 0 {
				t.Fatalf("preview: %d codes planned, %d recorded (%v); want %d planned and none recorded", preview.Counts.Codes, len(first.codes), err, n)
			}
			res, _, err := runOnce(t, p.dir, cfg, content, false)
			if err != nil || res.Counts.Created != n || res.Counts.Codes != n || len(first.codes) != n {
				t.Fatalf("import: %+v, %d codes recorded (%v); want %d created with codes", res.Counts, len(first.codes), err, n)
			}
			for id, code := range first.codes {
				if !validFormat(code) {
					t.Fatalf("code of %s is not 4 groups of 5 of the alphabet", id)
				}
				if !p.signIn(t, id, code) {
					t.Fatalf("%s does not sign in with its code", id)
				}
			}
			other, _ := first.Code(prefix + "-01")
			if p.signIn(t, prefix+"-00", other) {
				t.Fatal("a user signs in with another user's code")
			}

			// A second import of the same users and two new ones: only
			// the new ones get a code (the directory holds the others').
			if p.whereMissing {
				second := newMemoryCodes()
				more := file(codeRows(prefix, 0, n+2)...)
				res, _, err = runOnce(t, p.dir, codesConfig(t, p, v1alpha1.CodesWhereMissing, second), more, false)
				if err != nil || res.Counts.Codes != 2 || len(second.codes) != 2 {
					t.Fatalf("WhereMissing: %+v, %d recorded (%v); want 2 codes, for the new users", res.Counts, len(second.codes), err)
				}
				for id, code := range first.codes {
					if !p.signIn(t, id, code) {
						t.Fatalf("WhereMissing changed the code of %s", id)
					}
				}
				content = more
			}

			// Rotation: every user of the file gets a new code; the old
			// ones stop working.
			third := newMemoryCodes()
			res, _, err = runOnce(t, p.dir, codesConfig(t, p, v1alpha1.CodesAll, third), content, false)
			rows := int64(strings.Count(content, "\n") - 1)
			if err != nil || res.Counts.Codes != rows {
				t.Fatalf("All: %+v (%v); want %d codes", res.Counts, err, rows)
			}
			for id, code := range first.codes {
				if p.signIn(t, id, code) {
					t.Fatalf("%s still signs in with the code All replaced", id)
				}
				if newCode, _ := third.Code(id); !p.signIn(t, id, newCode) {
					t.Fatalf("%s does not sign in with its new code", id)
				}
			}
		})
	}
}

func validFormat(code string) bool {
	groups := strings.Split(code, "-")
	if len(groups) != 4 {
		return false
	}
	for _, g := range groups {
		if len(g) != 5 || strings.Trim(g, recoverycode.Alphabet) != "" {
			return false
		}
	}
	return true
}

// The SCIM server receives the password and never returns it.
func TestRecoveryCodesSCIMPasswordIsNeverReturned(t *testing.T) {
	s, d, _ := startSCIMServer(t, nil)
	plain, _ := recoverycode.NewHasher(v1alpha1.SchemePlain, false, recoverycode.Costs{})
	p := codePeer{identity: "userName", mailAttr: "emails", marker: scimEnterprise + ":organization",
		storage: CodeConfig{Attribute: "password", Hasher: plain}}
	rec := newMemoryCodes()
	if _, _, err := runOnce(t, d, codesConfig(t, p, v1alpha1.CodesForNewUsers, rec), file(codeRows("s", 0, 3)...), false); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL + "/Users")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "s-00") || strings.Contains(string(body), "password") {
		t.Fatalf("GET /Users: %s", body)
	}
	for id, code := range rec.codes {
		if strings.Contains(string(body), code) {
			t.Fatalf("the code of %s is in GET /Users", id)
		}
	}
}

// slapd verifies argon2id ({ARGON2}) values as well as salted SHA-2, and
// the expiry is written beside the code.
func TestRecoveryCodesLDAPArgon2AndExpiry(t *testing.T) {
	s, d, _ := startLDAPServer(t, nil)
	argon, _ := recoverycode.NewHasher(v1alpha1.SchemeArgon2id, true, recoverycode.Costs{MemoryKiB: 64, Iterations: 1})
	p := codePeer{identity: "uid", mailAttr: "mail", marker: "businessCategory",
		storage: CodeConfig{Attribute: "userPassword", HeldAttribute: "userPassword", ExpiresAttribute: "description", Hasher: argon}}
	rec := newMemoryCodes()
	if _, _, err := runOnce(t, d, codesConfig(t, p, v1alpha1.CodesForNewUsers, rec), file(codeRows("a", 0, 3)...), false); err != nil {
		t.Fatal(err)
	}
	users, err := d.Lookup(context.Background(), []string{"a-00"}, []string{"uid", "description", "userPassword"})
	if err != nil {
		t.Fatal(err)
	}
	u := users["a-00"]
	if got := first(u.Attributes["description"]); got != "2027-03-01T12:00:00Z" {
		t.Fatalf("expiry %q", got)
	}
	if !strings.HasPrefix(first(u.Attributes["userPassword"]), "{ARGON2}$argon2id$") {
		t.Fatal("userPassword is not an {ARGON2} value")
	}
	for id, code := range rec.codes {
		if !ldapBind(t, s, d, id, code) {
			t.Fatalf("%s does not bind with its code", id)
		}
	}
}

// Codes from a column: a strong one is stored as it is; a weak one makes
// its row an error that does not quote it; a column that is also mapped
// is refused before anything is written.
func TestRecoveryCodesFromAColumn(t *testing.T) {
	s, d, _ := startLDAPServer(t, nil)
	ssha, _ := recoverycode.NewHasher(v1alpha1.SchemeSSHA512, true, recoverycode.Costs{})
	p := codePeer{identity: "uid", mailAttr: "mail", marker: "businessCategory",
		storage: CodeConfig{Attribute: "userPassword", HeldAttribute: "userPassword", Hasher: ssha}}
	rec := newMemoryCodes()
	cfg := codesConfig(t, p, v1alpha1.CodesForNewUsers, rec)
	cfg.Codes.Column = "code"
	const strong = "Kq7-Xw2-Rt9-Zp4-Lm8-Vb3-Hn6"
	content := "id,mail,title,code\n" +
		"c-00,c-00@example.com,Clerk," + strong + "\n" +
		"c-01,c-01@example.com,Clerk,aaaa-1111\n" +
		"c-02,c-02@example.com,Clerk,\n"
	res, rep, err := runOnce(t, d, cfg, content, false)
	if err != nil || res.Counts.Created != 2 || res.Counts.Failed != 1 || res.Counts.Codes != 2 {
		t.Fatalf("%+v (%v); want 2 created with codes and 1 failed", res.Counts, err)
	}
	if len(rep.errors) != 1 || rep.errors[0].Line != 3 || !strings.Contains(rep.errors[0].Msg, "too weak") || strings.Contains(rep.errors[0].Msg, "aaaa") {
		t.Fatalf("row errors %+v", rep.errors)
	}
	if code, _ := rec.Code("c-00"); code != strong || !ldapBind(t, s, d, "c-00", strong) {
		t.Fatal("c-00 does not bind with the code of its row")
	}
	if code, _ := rec.Code("c-02"); !validFormat(code) || !ldapBind(t, s, d, "c-02", code) {
		t.Fatal("c-02, whose cell is empty, got no generated code it binds with")
	}

	cfg.Mapping = append(cfg.Mapping, v1alpha1.AttributeMapping{Attribute: "description", Column: "code"})
	_, _, err = runOnce(t, d, cfg, content, true)
	if !failure.IsStalled(err) || !strings.Contains(err.Error(), "recoveryCodes.column") {
		t.Fatalf("got %v, want the mapped code column refused", err)
	}
}

// With mustChange, slapd's password policy lets a user bind with the code
// and tells it to change it first; without, the bind is plain.
func TestRecoveryCodesLDAPMustChange(t *testing.T) {
	s, d, _ := startLDAPServerWith(t, slapd.Options{PasswordPolicy: true}, nil)
	ssha, _ := recoverycode.NewHasher(v1alpha1.SchemeSSHA512, true, recoverycode.Costs{})
	p := codePeer{identity: "uid", mailAttr: "mail", marker: "businessCategory",
		storage: CodeConfig{Attribute: "userPassword", HeldAttribute: "userPassword", Hasher: ssha}}
	for _, mustChange := range []bool{true, false} {
		rec := newMemoryCodes()
		cfg := codesConfig(t, p, v1alpha1.CodesForNewUsers, rec)
		prefix := "plain"
		if mustChange {
			cfg.Codes.ResetAttribute = "pwdReset"
			prefix = "reset"
		}
		if _, _, err := runOnce(t, d, cfg, file(codeRows(prefix, 0, 2)...), false); err != nil {
			t.Fatal(err)
		}
		for id, code := range rec.codes {
			users, err := d.Lookup(context.Background(), []string{id}, []string{"uid"})
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.Dial()
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.SimpleBind(&goldap.SimpleBindRequest{Username: users[id].ID, Password: code,
				Controls: []goldap.Control{goldap.NewControlBeheraPasswordPolicy()}})
			c.Close()
			if err != nil {
				t.Fatalf("%s does not bind with its code: %v", id, err)
			}
			var pp *goldap.ControlBeheraPasswordPolicy
			if ctrl := goldap.FindControl(res.Controls, goldap.ControlTypeBeheraPasswordPolicy); ctrl != nil {
				pp, _ = ctrl.(*goldap.ControlBeheraPasswordPolicy)
			}
			reset := pp != nil && pp.Error == 2 // changeAfterReset
			if reset != mustChange {
				t.Fatalf("%s: the server asks for a change after reset: %v, want %v (control %+v)", id, reset, mustChange, pp)
			}
		}
	}
}
