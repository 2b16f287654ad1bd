// Package mailpit starts Mailpit, a real SMTP server with an HTTP API to
// read what arrived, on 127.0.0.1 for tests: STARTTLS with a test CA and
// SMTP AUTH with one user. hack/peers/install-mailpit.sh builds it.
package mailpit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/internal/testpeer/peer"
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
func Binary() string { return peer.Tool("mailpit-" + Version) }

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

// StartIn starts a server on 127.0.0.1 whose files are kept in dir; Stop
// stops it. args are more of Mailpit's flags.
func StartIn(dir string, args ...string) (*Server, error) {
	return StartAt(dir, "127.0.0.1", args...)
}

// StartAt starts a server listening on host, whose certificate is valid
// for it, as StartIn does.
func StartAt(dir, host string, args ...string) (*Server, error) {
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("mailpit is not installed at %s: run hack/peers/install-mailpit.sh", bin)
	}
	pair, err := testcert.New("mailpit", host)
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
	smtpPort, err := peer.FreePort(host)
	if err != nil {
		return nil, err
	}
	httpPort, err := peer.FreePort(host)
	if err != nil {
		return nil, err
	}
	s := &Server{Host: host, SMTPPort: smtpPort, APIURL: "http://" + net.JoinHostPort(host, strconv.Itoa(httpPort)), CAPEM: pair.CAPEM}
	s.cmd = exec.Command(bin,
		"--smtp", net.JoinHostPort(s.Host, strconv.Itoa(smtpPort)),
		"--listen", net.JoinHostPort(s.Host, strconv.Itoa(httpPort)),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-starttls",
		"--smtp-auth-file", auth,
		"--smtp-disable-rdns", "--disable-version-check", "--quiet",
		// Keep every message: the tests count them.
		"--max", "0")
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
	ID        string    `json:"ID"`
	MessageID string    `json:"MessageID"`
	Subject   string    `json:"Subject"`
	To        []Address `json:"To"`
}

// Address is a recipient.
type Address struct {
	Address string `json:"Address"`
}

// Messages lists everything that arrived, newest first.
func (s *Server) Messages() ([]Message, error) {
	var all []Message
	for {
		var page struct {
			Total    int       `json:"total"`
			Messages []Message `json:"messages"`
		}
		if err := s.get(fmt.Sprintf("/api/v1/messages?start=%d&limit=1000", len(all)), &page); err != nil {
			return nil, err
		}
		all = append(all, page.Messages...)
		if len(page.Messages) == 0 || len(all) >= page.Total {
			return all, nil
		}
	}
}

// Detail is one message with its bodies and attachments.
type Detail struct {
	Message
	Text        string `json:"Text"`
	HTML        string `json:"HTML"`
	Attachments []struct {
		PartID      string `json:"PartID"`
		FileName    string `json:"FileName"`
		ContentType string `json:"ContentType"`
	} `json:"Attachments"`
}

// Detail reads message id (a Message's ID).
func (s *Server) Detail(id string) (Detail, error) {
	var d Detail
	err := s.get("/api/v1/message/"+id, &d)
	return d, err
}

// Part reads an attachment of message id.
func (s *Server) Part(id, partID string) ([]byte, error) {
	resp, err := http.Get(s.APIURL + "/api/v1/message/" + id + "/part/" + partID)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mailpit: part %s of %s: %s", partID, id, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// Raw reads message id as it arrived.
func (s *Server) Raw(id string) ([]byte, error) {
	resp, err := http.Get(s.APIURL + "/api/v1/message/" + id + "/raw")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func (s *Server) get(path string, v any) error {
	resp, err := http.Get(s.APIURL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit: GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
