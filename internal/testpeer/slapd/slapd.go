// Package slapd starts a real OpenLDAP server on 127.0.0.1 for tests and
// benchmarks: an mdb database in a temporary directory, the core, cosine,
// inetorgperson and nis schemas, plain LDAP (with StartTLS) and LDAPS
// listeners on free ports, and a CA and server certificate made for the
// run. The binaries come from hack/peers/install-ldap.sh.
package slapd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/userimport/user-import-operator/internal/testpeer/testcert"

	"github.com/go-ldap/ldap/v3"
)

// InstallHint is what to run when slapd or the ldap-utils are missing.
const InstallHint = "run hack/peers/install-ldap.sh"

// Options configure a server. The zero value is a usable server for
// dc=example,dc=com.
type Options struct {
	// Suffix is the naming context, "dc=example,dc=com" by default. Its
	// first RDN must be a dc.
	Suffix string
	// RootPassword of the rootdn "cn=admin,<suffix>"; random when empty.
	RootPassword string
	// Indexes are attributes given an equality index in addition to
	// objectClass, uid and businessCategory (the marker attribute the
	// tests use).
	Indexes []string
	// Sync makes the database flush to disk on every commit. By default
	// it does not (dbnosync, and the map written in place with
	// writemap): these servers are thrown away after the run, and
	// ldapadd and the provider are measured against the same
	// configuration.
	Sync bool
	// Host is the IP address to listen on, 127.0.0.1 by default (the
	// e2e tests use the address pods reach). The TLS certificate names
	// 127.0.0.1 only.
	Host string
	// PasswordPolicy loads the ppolicy overlay with a default policy
	// (PolicyDN) whose pwdMustChange is TRUE: a user whose pwdReset is
	// TRUE binds, is told to change the password, and may do nothing
	// else.
	PasswordPolicy bool
}

// Server is a running slapd.
type Server struct {
	// URL is the ldap:// address; StartTLS works on it.
	URL string
	// LDAPSURL is the ldaps:// address.
	LDAPSURL string
	// CAPEM is the PEM certificate of the CA that signed the server's
	// certificate (IP SAN 127.0.0.1).
	CAPEM []byte
	// BindDN and BindPassword are the rootdn's credentials.
	BindDN       string
	BindPassword string
	// Suffix is the naming context; PeopleDN ("ou=people,<suffix>"),
	// DisabledDN ("ou=disabled,<suffix>") and GroupsDN
	// ("ou=groups,<suffix>") exist from the start.
	Suffix     string
	PeopleDN   string
	DisabledDN string
	GroupsDN   string
	// PolicyDN is the default password policy (Options.PasswordPolicy).
	PolicyDN string
	// Dir holds the configuration, database and slapd.log.
	Dir string

	cmd     *exec.Cmd
	exited  chan struct{}
	removed bool
}

// Start starts a server for a test and stops it when the test ends. A
// missing slapd fails the test with the install hint. When the test has
// failed, the end of slapd's log is written to the test log.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := StartProcess(opts)
	if err != nil {
		t.Fatalf("slapd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("slapd log (%s):\n%s", s.Dir, s.LogTail(4096))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("slapd: stop: %v", err)
		}
	})
	return s
}

// StartProcess starts a server outside of a test (benchmark programs);
// the caller must Stop it.
func StartProcess(opts Options) (*Server, error) {
	slapdPath, err := findBinary("slapd")
	if err != nil {
		return nil, err
	}
	slapaddPath, err := findBinary("slapadd")
	if err != nil {
		return nil, err
	}
	if opts.Suffix == "" {
		opts.Suffix = "dc=example,dc=com"
	}
	suffix, err := ldap.ParseDN(opts.Suffix)
	if err != nil || len(suffix.RDNs) == 0 || !strings.EqualFold(suffix.RDNs[0].Attributes[0].Type, "dc") {
		return nil, fmt.Errorf("suffix %q: must be a DN whose first RDN is a dc", opts.Suffix)
	}
	if opts.RootPassword == "" {
		opts.RootPassword = randomHex(12)
	}

	dir, err := os.MkdirTemp("", "slapd-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		CAPEM:        nil,
		BindDN:       "cn=admin," + opts.Suffix,
		BindPassword: opts.RootPassword,
		Suffix:       opts.Suffix,
		PeopleDN:     "ou=people," + opts.Suffix,
		DisabledDN:   "ou=disabled," + opts.Suffix,
		GroupsDN:     "ou=groups," + opts.Suffix,
		PolicyDN:     "cn=default," + opts.Suffix,
		Dir:          dir,
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(dir)
		}
	}()

	if err := s.writeConfig(opts); err != nil {
		return nil, err
	}
	base := fmt.Sprintf("dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: %s\no: %s\n\n"+
		"dn: %s\nobjectClass: organizationalUnit\nou: people\n\n"+
		"dn: %s\nobjectClass: organizationalUnit\nou: disabled\n\n"+
		"dn: %s\nobjectClass: organizationalUnit\nou: groups\n",
		s.Suffix, suffix.RDNs[0].Attributes[0].Value, suffix.RDNs[0].Attributes[0].Value, s.PeopleDN, s.DisabledDN, s.GroupsDN)
	if opts.PasswordPolicy {
		base += fmt.Sprintf("\ndn: %s\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: default\npwdAttribute: userPassword\npwdMustChange: TRUE\n", s.PolicyDN)
	}
	if err := os.WriteFile(filepath.Join(dir, "base.ldif"), []byte(base), 0o600); err != nil {
		return nil, err
	}
	// slapadd loads the base entries offline, before the server starts.
	if out, err := exec.Command(slapaddPath, "-q", "-f", filepath.Join(dir, "slapd.conf"), "-l", filepath.Join(dir, "base.ldif")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("slapadd: %v: %s", err, bytes.TrimSpace(out))
	}

	// Free ports are found by listening and closing; another process may
	// take one in between, so a failed start is tried again on new ports.
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	var lastErr error
	for range 3 {
		ports, err := freePorts(host, 2)
		if err != nil {
			return nil, err
		}
		s.URL = fmt.Sprintf("ldap://%s", net.JoinHostPort(host, strconv.Itoa(ports[0])))
		s.LDAPSURL = fmt.Sprintf("ldaps://%s", net.JoinHostPort(host, strconv.Itoa(ports[1])))
		if lastErr = s.run(slapdPath); lastErr == nil {
			ok = true
			return s, nil
		}
	}
	return nil, lastErr
}

// run starts slapd in the foreground (-d 0) and waits until it accepts a
// bind.
func (s *Server) run(slapdPath string) error {
	logFile, err := os.OpenFile(filepath.Join(s.Dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(slapdPath, "-d", "0", "-f", filepath.Join(s.Dir, "slapd.conf"),
		"-h", s.URL+"/ "+s.LDAPSURL+"/")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// The server dies with the test binary even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("slapd exited at start: %s", s.LogTail(2048))
		default:
		}
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			_ = s.kill()
			return fmt.Errorf("slapd did not answer within 15s: %v; log: %s", err, s.LogTail(2048))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) ping() error {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(2 * time.Second)
	return c.Bind(s.BindDN, s.BindPassword)
}

// TLSConfig returns a client configuration that trusts the server's CA.
func (s *Server) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Dial connects to the plain URL and binds as the rootdn.
func (s *Server) Dial() (*ldap.Conn, error) {
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		return nil, err
	}
	if err := c.Bind(s.BindDN, s.BindPassword); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// LDAPAdd runs `ldapadd -c` (continue after errors) as the rootdn with the
// given LDIF on standard input. The error carries ldapadd's output.
func (s *Server) LDAPAdd(ctx context.Context, ldif []byte) error {
	path, err := findBinary("ldapadd")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, "-c", "-x", "-H", s.URL, "-D", s.BindDN, "-w", s.BindPassword)
	cmd.Stdin = bytes.NewReader(ldif)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ldapadd: %v: %s", err, tail(out.Bytes(), 2048))
	}
	return nil
}

// PID is the process id of slapd, for benchmarks that read its CPU time.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// LogTail returns up to n bytes of the end of slapd's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "slapd.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(b, n)
}

// Stop ends slapd and removes its directory. It is safe to call twice.
func (s *Server) Stop() error {
	err := s.kill()
	if !s.removed {
		s.removed = true
		if rmErr := os.RemoveAll(s.Dir); rmErr != nil && err == nil {
			err = rmErr
		}
	}
	return err
}

// kill asks slapd to shut down and kills it if it has not after 5s.
func (s *Server) kill() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(5 * time.Second):
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-s.exited
	return nil
}

func (s *Server) writeConfig(opts Options) error {
	pair, err := testcert.New("slapd")
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	ca, serverCert, serverKey := pair.CAPEM, pair.CertPEM, pair.KeyPEM
	s.CAPEM = ca
	for name, data := range map[string][]byte{"ca.pem": ca, "server.pem": serverCert, "server.key": serverKey} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), data, 0o600); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(s.Dir, "db"), 0o700); err != nil {
		return err
	}
	indexes := []string{"objectClass", "uid", "businessCategory", "cn"}
	for _, a := range opts.Indexes {
		if !containsFold(indexes, a) {
			indexes = append(indexes, a)
		}
	}
	var conf bytes.Buffer
	err = configTemplate.Execute(&conf, map[string]any{
		"Dir":      s.Dir,
		"Suffix":   s.Suffix,
		"RootDN":   s.BindDN,
		"RootPW":   s.BindPassword,
		"Indexes":  indexes,
		"NoSync":   !opts.Sync,
		"ModPath":  modulePath(),
		"Modules":  passwordModules(modulePath()),
		"Policy":   policyDN(opts, s.PolicyDN),
		"MaxBytes": int64(8) << 30,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "slapd.conf"), conf.Bytes(), 0o600)
}

// The rootdn is not subject to size limits; the explicit limits line keeps
// paged searches of 1M entries working for it whatever the defaults are.
// maxsize is the mdb map size (sparse; 8 GiB holds well over 1M users).
var configTemplate = template.Must(template.New("slapd.conf").Parse(`# generated by internal/testpeer/slapd
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema

pidfile {{.Dir}}/slapd.pid
argsfile {{.Dir}}/slapd.args
{{if .ModPath}}modulepath {{.ModPath}}
moduleload back_mdb
{{range .Modules}}moduleload {{.}}
{{end}}{{if .Policy}}moduleload ppolicy
{{end}}{{end}}
TLSCACertificateFile {{.Dir}}/ca.pem
TLSCertificateFile {{.Dir}}/server.pem
TLSCertificateKeyFile {{.Dir}}/server.key

# Searches by users other than the rootdn stop at 1000 entries unless
# paged, as on most production servers.
sizelimit size.soft=1000 size.hard=1000 size.prtotal=unlimited

database mdb
suffix "{{.Suffix}}"
rootdn "{{.RootDN}}"
rootpw {{.RootPW}}
directory {{.Dir}}/db
maxsize {{.MaxBytes}}
{{range .Indexes}}index {{.}} eq
{{end}}{{if .NoSync}}dbnosync
envflags writemap nometasync
{{end}}checkpoint 65536 10
limits dn.exact="{{.RootDN}}" size=unlimited time=unlimited
{{if .Policy}}
overlay ppolicy
ppolicy_default "{{.Policy}}"
{{end}}`))

// modulePath is where Debian keeps back_mdb.so; empty when slapd has the
// backend built in.
func modulePath() string {
	for _, p := range []string{"/usr/lib/ldap", "/usr/lib/x86_64-linux-gnu/ldap", "/usr/lib/aarch64-linux-gnu/ldap", "/usr/libexec/openldap"} {
		if _, err := os.Stat(filepath.Join(p, "back_mdb.so")); err == nil {
			return p
		}
	}
	return ""
}

func policyDN(opts Options, dn string) string {
	if !opts.PasswordPolicy {
		return ""
	}
	return dn
}

// passwordModules are the modules that verify hashed userPassword values
// beyond slapd's built-in {SSHA}: {SSHA512}/{SSHA256} and {ARGON2}, as
// production servers load them.
func passwordModules(dir string) []string {
	var mods []string
	for _, m := range []string{"pw-sha2", "argon2"} {
		if _, err := os.Stat(filepath.Join(dir, m+".so")); err == nil {
			mods = append(mods, m)
		}
	}
	return mods
}

func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: %s", name, InstallHint)
}

func freePorts(host string, n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
