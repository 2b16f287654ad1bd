// Package postgres starts a real, throw-away PostgreSQL server on
// 127.0.0.1 (or another local address) for tests and local runs: initdb
// and pg_ctl in a temporary directory, run as a non-root user, with a
// password-authenticated role and a database of its own.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/internal/testpeer/peer"
)

// InstallHint is what to run when the PostgreSQL binaries are missing.
const InstallHint = "run hack/peers/install-postgres.sh"

// Server is a running PostgreSQL server.
type Server struct {
	// DSN connects as Role to Database with a password, over TCP:
	// postgres://ROLE:PASSWORD@HOST:PORT/DATABASE?sslmode=disable.
	DSN string
	// Host and Port the server listens on (Options.Host only).
	Host string
	Port int
	// Role, Password and Database of the DSN. The role owns the database.
	Role     string
	Password string
	Database string
	// SuperuserDSN connects as the cluster's superuser, for test set-up
	// that the role may not do.
	SuperuserDSN string

	dir    string
	bindir string
	cred   *syscall.Credential
}

// Start starts a server for the test and stops and removes it when the test
// ends. Missing binaries fail the test with the install hint.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartProcess()
	if err != nil {
		t.Fatalf("postgres test peer: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("postgres test peer: %v", err)
		}
	})
	return s
}

// Shared is one server for all the tests of a package: the first Get
// starts it, and the package's TestMain stops it after the tests ran.
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Get returns the shared server, starting it on the first call. A server
// that cannot start fails the test with the install hint.
func (s *Shared) Get(t testing.TB) *Server {
	t.Helper()
	s.once.Do(func() { s.srv, s.err = StartProcess() })
	if s.err != nil {
		t.Fatalf("postgres test peer: %v (%s)", s.err, InstallHint)
	}
	return s.srv
}

// Main runs the tests of a package that share s, stops the server and
// exits: a package's TestMain is `func TestMain(m *testing.M) { shared.Main(m) }`.
func (s *Shared) Main(m *testing.M) {
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the PostgreSQL test peer:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Stop stops the server if it was started.
func (s *Shared) Stop() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Stop()
}

// Options tune a server.
type Options struct {
	// Host is the local address the server listens on, 127.0.0.1 when
	// empty. On another address (one that pods of a local cluster reach,
	// say) the server also accepts password logins from any client
	// address, since those clients are not 127.0.0.1.
	Host string
}

// StartProcess starts a server on 127.0.0.1 outside of a test (a local
// demo, say). The caller must call Stop.
func StartProcess() (*Server, error) {
	return StartProcessWith(Options{})
}

// StartProcessWith starts a server as opts say, outside of a test. The
// caller must call Stop.
func StartProcessWith(opts Options) (*Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if ip := net.ParseIP(opts.Host); ip == nil || ip.To4() == nil {
		return nil, fmt.Errorf("host %q: want an IPv4 address", opts.Host)
	}
	bindir, err := findBindir()
	if err != nil {
		return nil, err
	}
	cred, owner, err := serverUser()
	if err != nil {
		return nil, err
	}

	// Not t.TempDir: its parents are 0700 root, which the server user
	// cannot traverse.
	dir, err := os.MkdirTemp("", "uio-postgres-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		dir:      dir,
		bindir:   bindir,
		cred:     cred,
		Host:     opts.Host,
		Role:     "uio",
		Database: "uio",
		Password: randomHex(16),
	}
	ok := false
	defer func() {
		if !ok {
			_ = s.Stop()
		}
	}()

	superPassword := randomHex(16)
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(superPassword+"\n"), 0o600); err != nil {
		return nil, err
	}
	for _, sub := range []string{"", "socket"} {
		p := filepath.Join(dir, sub)
		if sub != "" {
			if err := os.Mkdir(p, 0o700); err != nil {
				return nil, err
			}
		}
		if err := os.Chown(p, owner.uid, owner.gid); err != nil {
			return nil, fmt.Errorf("chown %s to %s: %w", p, owner.name, err)
		}
	}
	if err := os.Chown(pwfile, owner.uid, owner.gid); err != nil {
		return nil, err
	}

	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "postgres", "--pwfile", pwfile,
		"--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if s.Host != "127.0.0.1" {
		// initdb allows TCP logins from 127.0.0.1 and ::1 only.
		if err := appendFile(filepath.Join(data, "pg_hba.conf"), "host all all 0.0.0.0/0 scram-sha-256\n"); err != nil {
			return nil, err
		}
	}

	// Retry on a port taken between choosing it and binding it.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := peer.FreePort(s.Host)
		if err != nil {
			return nil, err
		}
		opts := strings.Join([]string{
			"-c listen_addresses=" + s.Host,
			"-p " + strconv.Itoa(port),
			"-k " + filepath.Join(dir, "socket"),
			// Throw-away data: durability only costs time.
			"-c fsync=off",
			"-c synchronous_commit=off",
			"-c full_page_writes=off",
			"-c max_connections=100",
		}, " ")
		out, err := s.run("pg_ctl", "start", "-w", "-t", "60", "-D", data,
			"-l", filepath.Join(dir, "server.log"), "-o", opts)
		if err == nil {
			s.Port = port
			lastErr = nil
			break
		}
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		lastErr = fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
		if !strings.Contains(string(log), "Address already in use") {
			break
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}

	s.SuperuserDSN = s.dsn("postgres", superPassword, "postgres")
	s.DSN = s.dsn(s.Role, s.Password, s.Database)
	if err := s.createRole(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *Server) dsn(role, password, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(role, password),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func (s *Server) createRole() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.SuperuserDSN)
	if err != nil {
		return fmt.Errorf("connect as superuser: %w", err)
	}
	defer conn.Close(ctx)
	role := pgx.Identifier{s.Role}.Sanitize()
	// CREATE ROLE takes no parameters; the password is generated hex.
	stmts := []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, s.Password),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{s.Database}.Sanitize(), role),
	}
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("create role and database: %w", err)
		}
	}
	return nil
}

// Stop stops the server and removes its files. It may be called more than
// once.
func (s *Server) Stop() error {
	if s.dir == "" {
		return nil
	}
	var errs []error
	data := filepath.Join(s.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		if out, err := s.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "immediate", "-D", data); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %w\n%s", err, out))
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	s.dir = ""
	return errors.Join(errs...)
}

// Log returns the server's log, for a test that wants to show it.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(b)
}

// run runs a PostgreSQL binary as the server user.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bindir, name), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "HOME=" + s.dir}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

type owner struct {
	name     string
	uid, gid int
}

// serverUser picks the user the server runs as. PostgreSQL refuses to run
// as root; the Debian package's "postgres" user is preferred, then
// "nobody". When not root, the server runs as the current user.
func serverUser() (*syscall.Credential, owner, error) {
	if os.Geteuid() != 0 {
		return nil, owner{name: "current user", uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true},
			owner{name: name, uid: uid, gid: gid}, nil
	}
	return nil, owner{}, fmt.Errorf("no non-root user to run PostgreSQL as (postgres or nobody); %s", InstallHint)
}

// findBindir finds initdb and pg_ctl: in the newest
// /usr/lib/postgresql/<version>/bin (Debian), else on PATH.
func findBindir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL binaries (initdb, pg_ctl, postgres) not found; %s", InstallHint)
}

func version(bindir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return v
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
