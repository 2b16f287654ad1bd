// Package samba starts a real Active Directory domain controller (Samba
// 4, from hack/peers/install-samba.sh) for tests and benchmarks.
//
// A DC binds the ports of a Windows server (389, 636, 88, 135, 3268),
// so each runs in a network namespace of its own, joined to the host by
// a veth pair: the tests reach it at a private address (10.99.x.y) that
// its certificate names. The domain (AD.EXAMPLE.COM) is provisioned once
// into a template under the project's cache and copied for each DC,
// which then starts in about two seconds.
package samba

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/testpeer/testcert"
)

// InstallHint is what to run when Samba is missing.
const InstallHint = "run hack/peers/install-samba.sh"

const (
	realm      = "AD.EXAMPLE.COM"
	domain     = "ADEX"
	baseDN     = "DC=ad,DC=example,DC=com"
	adminPass  = "Adm1n-Passw0rd!"
	templateV1 = "samba-ad-template-v1"
)

// DC is a running domain controller.
type DC struct {
	// URL is the ldaps:// address; LDAPURL the ldap:// one (StartTLS).
	URL, LDAPURL string
	// Host is the DC's address, as the certificate names it.
	Host string
	// CAPEM is the PEM certificate of the CA that signed the DC's.
	CAPEM []byte
	// BaseDN is the domain's naming context.
	BaseDN string
	// BindDN and BindPassword are the domain Administrator's.
	BindDN, BindPassword string
	// StaffDN (OU=Staff) and GroupsDN (OU=Groups) exist from the start.
	StaffDN, GroupsDN string

	dir, netns string
	cmd        *exec.Cmd
	done       chan struct{}
	lock       *os.File // the slot's
}

var seq atomic.Int32

// slots is the number of /30 networks under 10.99.0.0/16.
const slots = 16384

// takeSlot locks a free slot: one /30, one namespace and one veth name
// per DC, however many test binaries run side by side. The lock is held
// (its file open) until the DC stops.
func takeSlot() (int, *os.File, error) {
	dir := filepath.Join(os.TempDir(), "uio-samba-slots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, nil, err
	}
	start := (os.Getpid()*16 + int(seq.Add(1))) % slots
	for i := range slots {
		slot := (start + i) % slots
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(slot)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return slot, f, nil
		}
		f.Close()
	}
	return 0, nil, errors.New("no free network slot for a DC")
}

// Start starts a DC for the test and stops it when the test ends.
func Start(t testing.TB) *DC {
	t.Helper()
	dc, err := StartProcess(t.TempDir())
	if err != nil {
		t.Fatalf("start the Samba AD DC: %v", err)
	}
	t.Cleanup(dc.Stop)
	return dc
}

// StartProcess starts a DC whose files live in dir; call Stop when done.
func StartProcess(dir string) (*DC, error) {
	if _, err := exec.LookPath("samba-tool"); err != nil {
		return nil, fmt.Errorf("samba-tool not found: %s", InstallHint)
	}
	tmpl, err := template()
	if err != nil {
		return nil, err
	}
	slot, lock, err := takeSlot()
	if err != nil {
		return nil, err
	}
	hostIP := fmt.Sprintf("10.99.%d.%d", slot/64, (slot%64)*4+1)
	dcIP := fmt.Sprintf("10.99.%d.%d", slot/64, (slot%64)*4+2)
	dc := &DC{Host: dcIP, URL: "ldaps://" + dcIP + ":636", LDAPURL: "ldap://" + dcIP + ":389",
		BaseDN: baseDN, BindDN: "CN=Administrator,CN=Users," + baseDN, BindPassword: adminPass,
		StaffDN: "OU=Staff," + baseDN, GroupsDN: "OU=Groups," + baseDN,
		dir: filepath.Join(dir, "dc"), netns: fmt.Sprintf("uio-ad-%d", slot), done: make(chan struct{}), lock: lock}
	veth := fmt.Sprintf("uad%d", slot)
	if err := run("cp", "-a", tmpl, dc.dir); err != nil {
		lock.Close()
		return nil, err
	}
	_ = run("ip", "netns", "del", dc.netns) // a namespace left by a killed run
	for _, args := range [][]string{
		{"ip", "netns", "add", dc.netns},
		{"ip", "link", "add", veth + "h", "type", "veth", "peer", "name", veth + "n"},
		{"ip", "link", "set", veth + "n", "netns", dc.netns},
		{"ip", "addr", "add", hostIP + "/30", "dev", veth + "h"},
		{"ip", "link", "set", veth + "h", "up"},
		{"ip", "netns", "exec", dc.netns, "ip", "addr", "add", dcIP + "/30", "dev", veth + "n"},
		{"ip", "netns", "exec", dc.netns, "ip", "link", "set", veth + "n", "up"},
		{"ip", "netns", "exec", dc.netns, "ip", "link", "set", "lo", "up"},
	} {
		if err := run(args...); err != nil {
			_ = run("ip", "netns", "del", dc.netns)
			return nil, fmt.Errorf("the DC's network namespace: %w", err)
		}
	}
	pair, err := testcert.New("samba", dcIP)
	if err != nil {
		dc.Stop()
		return nil, err
	}
	dc.CAPEM = pair.CAPEM
	tlsDir := filepath.Join(dc.dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		dc.Stop()
		return nil, err
	}
	for name, data := range map[string][]byte{"ca.pem": pair.CAPEM, "cert.pem": pair.CertPEM, "key.pem": pair.KeyPEM} {
		if err := os.WriteFile(filepath.Join(tlsDir, name), data, 0o600); err != nil {
			dc.Stop()
			return nil, err
		}
	}
	if err := writeConfig(dc.dir, tmpl, veth+"n"); err != nil {
		dc.Stop()
		return nil, err
	}
	log, err := os.Create(filepath.Join(dc.dir, "samba.out"))
	if err != nil {
		dc.Stop()
		return nil, err
	}
	dc.cmd = exec.Command("ip", "netns", "exec", dc.netns, "samba", "-F", "--no-process-group", "-s", filepath.Join(dc.dir, "etc", "smb.conf"))
	dc.cmd.Stdout, dc.cmd.Stderr = log, log
	dc.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := dc.cmd.Start(); err != nil {
		log.Close()
		dc.Stop()
		return nil, err
	}
	go func() { _ = dc.cmd.Wait(); log.Close(); close(dc.done) }()
	if err := dc.waitReady(60 * time.Second); err != nil {
		out, _ := os.ReadFile(filepath.Join(dc.dir, "samba.out"))
		dc.Stop()
		return nil, fmt.Errorf("%w; samba said: %s", err, lastLines(string(out), 10))
	}
	if err := dc.addOUs(); err != nil {
		dc.Stop()
		return nil, err
	}
	return dc, nil
}

// Spec is the short directory spec an AD administrator writes for this
// DC: users under OU=Staff, groups under OU=Groups, the CA and the bind
// password in the Secrets "ad-ca" (key ca.pem) and "ad-bind" (key
// password) that Secrets serves.
func (dc *DC) Spec() *v1alpha1.LDAPDirectory {
	return &v1alpha1.LDAPDirectory{
		Vendor:       v1alpha1.LDAPActiveDirectory,
		URL:          dc.URL,
		CABundle:     &v1alpha1.SecretKeyRef{Name: "ad-ca", Key: "ca.pem"},
		BindDN:       dc.BindDN,
		BindPassword: v1alpha1.SecretKeyRef{Name: "ad-bind", Key: "password"},
		UsersBaseDN:  dc.StaffDN,
		Groups:       &v1alpha1.LDAPGroups{BaseDN: dc.GroupsDN, ObjectClass: v1alpha1.ADGroup},
	}
}

// Secrets serves the Secret keys Spec names.
func (dc *DC) Secrets() keyread.KeyReader {
	return func(_ context.Context, name, key string) ([]byte, error) {
		switch name + "/" + key {
		case "ad-bind/password":
			return []byte(dc.BindPassword), nil
		case "ad-ca/ca.pem":
			return dc.CAPEM, nil
		}
		return nil, fmt.Errorf("secret %s key %s not found", name, key)
	}
}

// Conn is an LDAPS connection bound as the Administrator.
func (dc *DC) Conn() (*ldap.Conn, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(dc.CAPEM)
	c, err := ldap.DialURL(dc.URL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		return nil, err
	}
	if err := c.Bind(dc.BindDN, dc.BindPassword); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// CanSignIn tells whether a simple bind as dn with password succeeds and
// the DC then answers a search (Samba answers no WhoAmI).
func (dc *DC) CanSignIn(dn, password string) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(dc.CAPEM)
	c, err := ldap.DialURL(dc.URL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bind(dn, password); err != nil {
		return err
	}
	_, err = c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"defaultNamingContext"}, nil))
	return err
}

// LDAPAdd loads LDIF with `ldapadd -c` over LDAPS, bound as the
// Administrator.
func (dc *DC) LDAPAdd(ctx context.Context, ldif []byte) error {
	ca := filepath.Join(dc.dir, "tls", "ca.pem")
	cmd := exec.CommandContext(ctx, "ldapadd", "-c", "-x", "-H", dc.URL, "-D", dc.BindDN, "-w", dc.BindPassword)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+ca)
	cmd.Stdin = bytes.NewReader(ldif)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ldapadd: %v: %s", err, lastLines(out.String(), 10))
	}
	return nil
}

// PIDs are the processes of the DC (samba forks one per service), for
// benchmarks that read its CPU time.
func (dc *DC) PIDs() []int {
	out, err := exec.Command("ip", "netns", "pids", dc.netns).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

func (dc *DC) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-dc.done:
			return errors.New("samba exited")
		default:
		}
		c, err := dc.Conn()
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the DC did not answer LDAPS within %s: %v", timeout, last)
}

func (dc *DC) addOUs() error {
	c, err := dc.Conn()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, dn := range []string{dc.StaffDN, dc.GroupsDN} {
		req := ldap.NewAddRequest(dn, nil)
		req.Attribute("objectClass", []string{"top", "organizationalUnit"})
		if err := c.Add(req); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
			return fmt.Errorf("add %s: %w", dn, err)
		}
	}
	return nil
}

// Stop stops the DC and removes its network namespace (and with it the
// veth pair).
func (dc *DC) Stop() {
	if dc.cmd != nil && dc.cmd.Process != nil {
		_ = syscall.Kill(-dc.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-dc.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-dc.cmd.Process.Pid, syscall.SIGKILL)
			<-dc.done
		}
	}
	// Samba's children may outlive the group (they start their own).
	if out, err := exec.Command("ip", "netns", "pids", dc.netns).Output(); err == nil {
		for _, p := range strings.Fields(string(out)) {
			_ = run("kill", "-9", p)
		}
	}
	_ = run("ip", "netns", "del", dc.netns)
	if dc.lock != nil {
		dc.lock.Close()
	}
}

// template provisions the domain once into the cache and returns its
// directory.
func template() (string, error) {
	cache := os.Getenv("UIO_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache", "user-import-operator")
	}
	dir := filepath.Join(cache, "samba", templateV1)
	if _, err := os.Stat(filepath.Join(dir, "etc", "smb.conf")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	// Test binaries side by side provision once: the lock holder does,
	// the others find its result.
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "etc", "smb.conf")); err == nil {
		return dir, nil
	}
	work := dir + ".new"
	_ = os.RemoveAll(work)
	ns := fmt.Sprintf("uio-ad-provision-%d", os.Getpid())
	_ = run("ip", "netns", "del", ns)
	if err := run("ip", "netns", "add", ns); err != nil {
		return "", err
	}
	defer func() { _ = run("ip", "netns", "del", ns) }()
	out, err := exec.Command("ip", "netns", "exec", ns, "samba-tool", "domain", "provision",
		"--targetdir="+work, "--realm="+realm, "--domain="+domain, "--server-role=dc",
		"--dns-backend=NONE", "--use-rfc2307", "--adminpass="+adminPass).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("samba-tool domain provision: %v: %s", err, lastLines(string(out), 10))
	}
	// The template keeps the provisioned paths; writeConfig rewrites
	// them for each copy.
	if err := os.WriteFile(filepath.Join(work, "provisioned-at"), []byte(work), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(work, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// writeConfig writes the copy's smb.conf: its own paths, only the
// services a DC of LDAP and Kerberos needs, bound to the namespace's
// interface, with the test certificate.
func writeConfig(dir, tmpl, iface string) error {
	provisioned, err := os.ReadFile(filepath.Join(tmpl, "provisioned-at"))
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "etc", "smb.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		return err
	}
	s := strings.ReplaceAll(string(b), string(provisioned), dir)
	var out []string
	skip := false
	for _, line := range strings.Split(s, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") {
			// Home, printer and driver shares have no place on a test DC.
			skip = trimmed == "[homes]" || trimmed == "[printers]" || trimmed == "[print$]"
		}
		if skip || strings.HasPrefix(trimmed, "server services") || strings.HasPrefix(trimmed, "log file") {
			continue
		}
		out = append(out, line)
		if trimmed == "[global]" {
			out = append(out,
				"\tserver services = ldap, cldap, kdc, rpc, drepl, kcc",
				"\tinterfaces = "+iface,
				"\tbind interfaces only = yes",
				"\tlog file = "+filepath.Join(dir, "log.%m"),
				"\tpid directory = "+filepath.Join(dir, "run"),
				"\tncalrpc dir = "+filepath.Join(dir, "run", "ncalrpc"),
				"\twinbindd socket directory = "+filepath.Join(dir, "run", "winbindd"),
				"\ttls enabled = yes",
				"\ttls keyfile = "+filepath.Join(dir, "tls", "key.pem"),
				"\ttls certfile = "+filepath.Join(dir, "tls", "cert.pem"),
				"\ttls cafile = "+filepath.Join(dir, "tls", "ca.pem"),
			)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(conf, []byte(strings.Join(out, "\n")), 0o644)
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
