// Package scimserver starts the project's real SCIM 2.0 test server
// (hack/peers/scim/server.mjs, SCIMMY on Node) on a free loopback port, for
// tests, benchmarks and local commands.
package scimserver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/internal/testpeer/repo"
	"github.com/userimport/user-import-operator/internal/testpeer/testcert"
)

// Options configure one server. The zero value is an open server (no
// authentication) over HTTP that offers PATCH, filters and /Bulk.
type Options struct {
	// Token is an accepted bearer token.
	Token string
	// BasicUser and BasicPassword are accepted basic credentials.
	BasicUser, BasicPassword string
	// OAuthClientID and OAuthClientSecret are accepted at
	// POST /oauth/token (client-credentials grant); the tokens it issues
	// are accepted as bearer tokens.
	OAuthClientID, OAuthClientSecret string
	// TLS serves HTTPS with a certificate for 127.0.0.1 signed by a CA made
	// for this server (Server.CAPEM).
	TLS bool
	// NoBulk stops the server from offering /Bulk.
	NoBulk bool
	// NoPatch stops the server from offering PATCH (it answers 501).
	NoPatch bool
	// BulkMaxOperations and BulkMaxPayload are the advertised /Bulk limits
	// (0: the server's defaults of 1000 and 1 MiB).
	BulkMaxOperations int
	BulkMaxPayload    int64
	// MaxResults bounds the page size the server serves (0: 200).
	MaxResults int
	// PatchMaxMembers makes the server refuse a PATCH of a group that adds
	// or removes more members than this (0: no limit).
	PatchMaxMembers int
	// FilterKeepsEscapes makes a /Users filter with an escaped quote or
	// backslash find nobody, as a server library that keeps the escapes
	// of a quoted value literally does.
	FilterKeepsEscapes bool
	// Host is the IP address to listen on, 127.0.0.1 by default (the e2e
	// tests use the address pods reach). The TLS certificate names
	// 127.0.0.1 only.
	Host string
	// Stderr receives the server's output (nil: discarded).
	Stderr io.Writer
}

// Server is a running SCIM server.
type Server struct {
	// URL is the base URL of the SCIM service, such as
	// "http://127.0.0.1:34567".
	URL string
	// TokenURL is the OAuth2 token endpoint.
	TokenURL string
	// CAPEM is the PEM certificate of the CA that signed the server's
	// certificate (TLS only).
	CAPEM []byte

	cmd     *exec.Cmd
	dir     string
	done    chan struct{}
	stopped sync.Once
}

// Start starts a server for the test and stops it when the test ends. It
// fails the test when the server cannot start, for example because the
// install script was not run.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := StartProcess(opts)
	if err != nil {
		t.Fatalf("start SCIM test server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartProcess starts a server outside of a test; call Stop when done.
func StartProcess(opts Options) (*Server, error) {
	root, err := repo.Root()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "hack", "peers", "scim")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "scimmy-routers")); err != nil {
		return nil, fmt.Errorf("SCIM test server is not installed (%s/node_modules missing): run hack/peers/install-scim.sh", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("node is not installed: run hack/peers/install-scim.sh (needs nodejs and npm)")
	}

	s := &Server{done: make(chan struct{})}
	env := append(os.Environ(), "SCIM_PORT=0")
	add := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	add("SCIM_HOST", opts.Host)
	add("SCIM_TOKEN", opts.Token)
	add("SCIM_BASIC_USER", opts.BasicUser)
	add("SCIM_BASIC_PASSWORD", opts.BasicPassword)
	add("SCIM_OAUTH_CLIENT_ID", opts.OAuthClientID)
	add("SCIM_OAUTH_CLIENT_SECRET", opts.OAuthClientSecret)
	if opts.NoBulk {
		add("SCIM_BULK", "false")
	}
	if opts.NoPatch {
		add("SCIM_PATCH", "false")
	}
	if opts.BulkMaxOperations > 0 {
		add("SCIM_BULK_MAX_OPERATIONS", strconv.Itoa(opts.BulkMaxOperations))
	}
	if opts.BulkMaxPayload > 0 {
		add("SCIM_BULK_MAX_PAYLOAD", strconv.FormatInt(opts.BulkMaxPayload, 10))
	}
	if opts.MaxResults > 0 {
		add("SCIM_MAX_RESULTS", strconv.Itoa(opts.MaxResults))
	}
	if opts.PatchMaxMembers > 0 {
		add("SCIM_PATCH_MAX_MEMBERS", strconv.Itoa(opts.PatchMaxMembers))
	}
	if opts.FilterKeepsEscapes {
		add("SCIM_FILTER_LITERAL_ESCAPES", "true")
	}
	if opts.TLS {
		s.dir, err = os.MkdirTemp("", "scimserver-")
		if err != nil {
			return nil, err
		}
		pair, err := testcert.New("scimserver")
		if err != nil {
			os.RemoveAll(s.dir)
			return nil, err
		}
		certFile, keyFile, err := pair.WriteFiles(s.dir)
		if err != nil {
			os.RemoveAll(s.dir)
			return nil, err
		}
		s.CAPEM = pair.CAPEM
		add("SCIM_TLS_CERT", certFile)
		add("SCIM_TLS_KEY", keyFile)
	}

	s.cmd = exec.Command(node, filepath.Join(dir, "server.mjs"))
	s.cmd.Dir = dir
	s.cmd.Env = env
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := opts.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	s.cmd.Stderr = stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, "SCIM server ready on "); ok {
				ready <- u
			}
			fmt.Fprintln(stderr, line)
		}
	}()
	select {
	case u := <-ready:
		s.URL = u
		s.TokenURL = u + "/oauth/token"
		return s, nil
	case <-s.done:
		s.Stop()
		return nil, fmt.Errorf("SCIM test server exited before it was ready (%v); run hack/peers/install-scim.sh", s.cmd.ProcessState)
	case <-time.After(30 * time.Second):
		s.Stop()
		return nil, errors.New("SCIM test server did not become ready within 30s")
	}
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string {
	_, rest, _ := strings.Cut(s.URL, "://")
	host, port, _ := net.SplitHostPort(rest)
	return net.JoinHostPort(host, port)
}

// Stop kills the server and removes its files. It is safe to call twice.
func (s *Server) Stop() {
	s.stopped.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if s.dir != "" {
			_ = os.RemoveAll(s.dir)
		}
	})
}

// VerifyPassword tells whether the server holds password as the password
// of the user named userName. The server keeps passwords hashed and never
// returns them; this asks its test endpoint to check one. Servers started
// with a token or basic credentials are not supported.
func (s *Server) VerifyPassword(userName, password string) (bool, error) {
	body, err := json.Marshal(map[string]string{"userName": userName, "password": password})
	if err != nil {
		return false, err
	}
	resp, err := s.client().Post(s.URL+"/test/verify-password", "application/json", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent:
		return true, nil
	case http.StatusUnauthorized:
		return false, nil
	}
	return false, fmt.Errorf("verify-password: status %s", resp.Status)
}

func (s *Server) client() *http.Client {
	if len(s.CAPEM) == 0 {
		return http.DefaultClient
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
