// Package mailpit starts Mailpit, a real SMTP server with an HTTP API to
// read what arrived, on 127.0.0.1 for tests: STARTTLS with a test CA and
// SMTP AUTH with one user. hack/peers/install-mailpit.sh builds it.
package mailpit

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/internal/testpeer/testcert"
)

// Version is the Mailpit the project's script builds.
const Version = "v1.33.1"

// User and Password are the account the server accepts.
const (
	User     = "relay-user"
	Password = "relay-password-7"
)

// Server is a running Mailpit.
type Server struct {
	// Host and SMTPPort are where SMTP listens; APIURL is the HTTP API.
	Host     string
	SMTPPort int
	APIURL   string
	// CAPEM signs the server's certificate.
	CAPEM []byte
	cmd   *exec.Cmd
}

// Binary is the path of the cached Mailpit.
func Binary() string {
	cache := os.Getenv("UIO_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "user-import-operator")
	}
	return filepath.Join(cache, "tools", "mailpit-"+Version)
}

// Start starts a server for the test and stops it when the test ends. It
// fails, never skips, when Mailpit is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartIn starts a server whose files are kept in dir; Stop stops it.
// args are more of Mailpit's flags.
func StartIn(dir string, args ...string) (*Server, error) {
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("mailpit is not installed at %s: run hack/peers/install-mailpit.sh", bin)
	}
	pair, err := testcert.New("mailpit")
	if err != nil {
		return nil, err
	}
	cert, key, err := pair.WriteFiles(dir)
	if err != nil {
		return nil, err
	}
	auth := filepath.Join(dir, "smtp-auth")
	if err := os.WriteFile(auth, []byte(User+":"+Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	smtpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", SMTPPort: smtpPort, APIURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), CAPEM: pair.CAPEM}
	s.cmd = exec.Command(bin,
		"--smtp", net.JoinHostPort(s.Host, strconv.Itoa(smtpPort)),
		"--listen", net.JoinHostPort(s.Host, strconv.Itoa(httpPort)),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-starttls",
		"--smtp-auth-file", auth,
		"--smtp-disable-rdns", "--disable-version-check", "--quiet")
	s.cmd.Args = append(s.cmd.Args, args...)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.APIURL + "/api/v1/messages")
		if err == nil {
			resp.Body.Close()
			if c, err := net.Dial("tcp", net.JoinHostPort(s.Host, strconv.Itoa(smtpPort))); err == nil {
				c.Close()
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, errors.New("mailpit did not answer within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the server.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Message is a message as Mailpit lists it.
type Message struct {
	ID      string `json:"ID"`
	Subject string `json:"Subject"`
	To      []struct {
		Address string `json:"Address"`
	} `json:"To"`
}

// Messages lists what arrived, newest first.
func (s *Server) Messages() ([]Message, error) {
	resp, err := http.Get(s.APIURL + "/api/v1/messages?limit=1000")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Messages []Message `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	return out.Messages, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
