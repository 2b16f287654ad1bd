// Package sshd starts OpenSSH's sshd on 127.0.0.1 for tests of the SFTP
// source: a generated host key, password and public-key login for one
// account that can do nothing but SFTP, with its start folder a temporary
// directory the test fills. hack/peers/install-sftp.sh installs sshd and
// creates the account.
package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/userimport/user-import-operator/internal/testpeer/peer"
)

// User and Password are the account hack/peers/install-sftp.sh creates.
const (
	User     = "uio-sftp"
	Password = "sftp-test-password-5"
)

// InstallHint says how to install what Start needs.
const InstallHint = "run hack/peers/install-sftp.sh"

// Server is a running sshd.
type Server struct {
	Host string
	Port int
	// Root is the account's start folder: relative SFTP paths are in it.
	Root string
	// KnownHosts is the server's host key as a known_hosts line.
	KnownHosts string
	// PrivateKey (OpenSSH PEM) logs in as User.
	PrivateKey []byte
	dir        string
	hostKey    string
	cmd        *exec.Cmd
	uid, gid   int
}

// Start starts a server for the test and stops it when the test ends. It
// fails, never skips, when sshd or the account is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	s, stop, err := StartTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s
}

// StartTemp starts a server on 127.0.0.1 in a temporary folder of its
// own; stop stops it and removes the folder. The folder is not a test's
// TempDir: that one's parent is private to root, and the account must
// reach its folder.
func StartTemp() (s *Server, stop func(), err error) {
	dir, err := os.MkdirTemp("", "uio-sshd-*")
	if err != nil {
		return nil, nil, err
	}
	s, err = StartIn(dir, "127.0.0.1")
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("%w (%s)", err, InstallHint)
	}
	return s, func() { s.Stop(); os.RemoveAll(dir) }, nil
}

// StartIn starts a server listening on host, with its files in dir, which
// the account must be able to reach.
func StartIn(dir, host string) (*Server, error) {
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		return nil, fmt.Errorf("sshd is not installed: %s", InstallHint)
	}
	u, err := user.Lookup(User)
	if err != nil {
		return nil, fmt.Errorf("no account %s: %s", User, InstallHint)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	s := &Server{Host: host, dir: dir, uid: uid, gid: gid}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	// The account must reach its folder: make the path to it traversable.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s.Root = filepath.Join(dir, "root")
	if err := os.Mkdir(s.Root, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(s.Root, uid, gid); err != nil {
		return nil, err
	}
	if err := s.newHostKey(); err != nil {
		return nil, err
	}
	_, clientKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	blk, err := ssh.MarshalPrivateKey(clientKey, "")
	if err != nil {
		return nil, err
	}
	s.PrivateKey = pem.EncodeToMemory(blk)
	signer, err := ssh.NewSignerFromKey(clientKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return nil, err
	}
	if s.Port, err = peer.FreePort(host); err != nil {
		return nil, err
	}
	return s, s.start()
}

// newHostKey makes a new host key; a restarted server presents it.
func (s *Server) newHostKey() error {
	s.hostKey = filepath.Join(s.dir, "host_ed25519")
	os.Remove(s.hostKey)
	os.Remove(s.hostKey + ".pub")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", s.hostKey).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	return nil
}

func (s *Server) start() error {
	pub, err := os.ReadFile(s.hostKey + ".pub")
	if err != nil {
		return err
	}
	fields := strings.Fields(string(pub))
	s.KnownHosts = fmt.Sprintf("[%s]:%d %s %s\n", s.Host, s.Port, fields[0], fields[1])
	conf := filepath.Join(s.dir, "sshd_config")
	cfg := strings.Join([]string{
		"ListenAddress " + net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		"HostKey " + s.hostKey,
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(s.dir, "authorized_keys"),
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication yes",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin no",
		"AllowUsers " + User,
		"UseDNS no",
		"MaxStartups 50",
		"Subsystem sftp internal-sftp",
		"Match User " + User,
		"  ForceCommand internal-sftp -d " + s.Root,
		"  AllowTcpForwarding no",
		"  X11Forwarding no",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		return err
	}
	s.cmd = exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", conf)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		return err
	}
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
	}
	s.Stop()
	return errors.New("sshd did not start listening on " + addr)
}

// ChangeHostKey restarts the server with a new host key, as a replaced
// server (or a machine in the middle) would present.
func (s *Server) ChangeHostKey() error {
	s.Stop()
	if err := s.newHostKey(); err != nil {
		return err
	}
	return s.start()
}

// WriteFile writes a file into the account's folder, owned by the
// account, with the modification time given.
func (s *Server) WriteFile(name string, data []byte, mtime time.Time) error {
	p := filepath.Join(s.Root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	for d := filepath.Dir(p); d != s.Root && strings.HasPrefix(d, s.Root); d = filepath.Dir(d) {
		if err := os.Chown(d, s.uid, s.gid); err != nil {
			return err
		}
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	if err := os.Chown(p, s.uid, s.gid); err != nil {
		return err
	}
	return os.Chtimes(p, mtime, mtime)
}

// Path is the local path of a file of the account's folder.
func (s *Server) Path(name string) string { return filepath.Join(s.Root, filepath.FromSlash(name)) }

// Stop stops the server.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}
