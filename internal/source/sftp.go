package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
)

// sftpStore is a folder tree of an SFTP server, over one SSH connection.
type sftpStore struct {
	addr   string
	conn   *ssh.Client
	client *sftp.Client
}

// handshakeTimeout bounds the SSH handshake with an SFTP server.
var handshakeTimeout = 30 * time.Second

// OpenSFTP connects to the server of src, verifying its host key against
// src.knownHosts unless src says to skip that.
func OpenSFTP(ctx context.Context, src *v1alpha1.SFTPSource, secrets keyread.KeyReader, control func(network, address string, c syscall.RawConn) error) (Store, error) {
	port := int(src.Port)
	if port == 0 {
		port = 22
	}
	addr := net.JoinHostPort(src.Host, strconv.Itoa(port))
	cfg, err := sshConfig(ctx, src, addr, secrets)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 15 * time.Second, Control: control}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, failure.Errorf(v1alpha1.ReasonSourceUnreachable, "source.sftp: connecting to %s: %v", addr, err)
	}
	// The SSH handshake has no timeout of its own: a server that accepts
	// the connection and never speaks would hold it, and whoever waits for
	// it, for ever. It ends with ctx, and within handshakeTimeout.
	deadline := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	c, chans, reqs, err := ssh.NewClientConn(raw, addr, cfg)
	canceled := !stop()
	if err == nil && canceled {
		c.Close()
		err = ctx.Err()
	}
	if err != nil {
		raw.Close()
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, failure.Errorf(v1alpha1.ReasonSourceUnreachable, "source.sftp: %s accepted the connection and did not complete the SSH handshake in time", addr)
		}
		return nil, sshError(addr, err)
	}
	_ = raw.SetDeadline(time.Time{})
	conn := ssh.NewClient(c, chans, reqs)
	// Several reads in flight per file: a single one waits a round trip
	// per packet. Reads ask for up to 255 KiB (OpenSSH serves up to 255
	// KiB, and the client accepts replies up to 256 KiB); a server that
	// returns less is asked again for the rest. Only reads are made, so
	// no server is sent a packet larger than 32 KiB.
	client, err := sftp.NewClient(conn, sftp.UseConcurrentReads(true), sftp.MaxConcurrentRequestsPerFile(64), sftp.MaxPacketUnchecked(255<<10))
	if err != nil {
		conn.Close()
		return nil, failure.Errorf(v1alpha1.ReasonSourceUnreachable, "source.sftp: %s offers no SFTP subsystem: %v", addr, err)
	}
	return &sftpStore{addr: addr, conn: conn, client: client}, nil
}

func sshConfig(ctx context.Context, src *v1alpha1.SFTPSource, addr string, secrets keyread.KeyReader) (*ssh.ClientConfig, error) {
	if secrets == nil {
		return nil, errors.New("source.sftp: no way to read Secrets")
	}
	read := func(key string, required bool) (string, error) {
		b, err := secrets(ctx, src.Credentials.Name, key)
		if err != nil {
			if !required && errors.Is(err, keyread.ErrNotFound) {
				return "", nil
			}
			return "", fmt.Errorf("source.sftp.credentials: Secret %s key %s: %w", src.Credentials.Name, key, err)
		}
		return string(b), nil
	}
	user, err := read("username", true)
	if err != nil {
		return nil, err
	}
	password, err := read("password", false)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read("privateKey", false)
	if err != nil {
		return nil, err
	}
	var auth []ssh.AuthMethod
	if keyPEM != "" {
		passphrase, err := read("passphrase", false)
		if err != nil {
			return nil, err
		}
		var signer ssh.Signer
		if passphrase != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(keyPEM), []byte(passphrase))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(keyPEM))
		}
		if err != nil {
			// The parser's message names the format, never the key.
			return nil, fmt.Errorf("source.sftp.credentials: Secret %s key privateKey: %v", src.Credentials.Name, err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if password != "" {
		auth = append(auth, ssh.Password(password))
	}
	if len(auth) == 0 {
		return nil, fmt.Errorf("source.sftp.credentials: Secret %s has neither password nor privateKey", src.Credentials.Name)
	}
	cfg := &ssh.ClientConfig{User: strings.TrimSpace(user), Auth: auth, Timeout: 15 * time.Second}
	switch {
	case src.InsecureSkipHostKeyVerification:
		cfg.HostKeyCallback = ssh.InsecureIgnoreHostKey()
	case src.KnownHosts == nil:
		return nil, errors.New("source.sftp: knownHosts is required to verify the server (or set insecureSkipHostKeyVerification: true)")
	default:
		data, err := secrets(ctx, src.KnownHosts.Name, src.KnownHosts.Key)
		if err != nil {
			return nil, fmt.Errorf("source.sftp.knownHosts: Secret %s key %s: %w", src.KnownHosts.Name, src.KnownHosts.Key, err)
		}
		cb, err := knownHostsCallback(data)
		if err != nil {
			return nil, fmt.Errorf("source.sftp.knownHosts: Secret %s key %s: %w", src.KnownHosts.Name, src.KnownHosts.Key, err)
		}
		cfg.HostKeyCallback = cb
		// Offer only the key types the file lists, so that the server
		// presents one that can match.
		cfg.HostKeyAlgorithms = hostKeyAlgorithms(data, addr)
	}
	return cfg, nil
}

// knownHostsCallback checks host keys against known_hosts lines. The
// knownhosts package reads files only, so the lines go through one.
func knownHostsCallback(data []byte) (ssh.HostKeyCallback, error) {
	f, err := os.CreateTemp("", "known_hosts-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return knownhosts.New(f.Name())
}

// hostKeyAlgorithms lists the key types of the lines of data for addr (or
// nil, which lets the server choose, when there are none).
func hostKeyAlgorithms(data []byte, addr string) []string {
	var algos []string
	want := knownhosts.Normalize(addr)
	rest := data
	for len(rest) > 0 {
		_, hosts, key, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			break
		}
		rest = next
		for _, h := range hosts {
			if knownhosts.Normalize(h) == want || h == want {
				algos = append(algos, keyAlgorithms(key.Type())...)
			}
		}
	}
	return algos
}

func keyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// sshError classifies a failed SSH handshake.
func sshError(addr string, err error) error {
	var keyErr *knownhosts.KeyError
	switch {
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		return failure.Errorf(v1alpha1.ReasonHostKeyMismatch, "source.sftp: the host key of %s is not the one knownHosts lists: it changed, or another machine answers", addr)
	case errors.As(err, &keyErr):
		return failure.Errorf(v1alpha1.ReasonHostKeyMismatch, "source.sftp: knownHosts lists no key for %s", addr)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return failure.Errorf(v1alpha1.ReasonSourceAuthenticationFailed, "source.sftp: %s refused the credentials", addr)
	}
	return failure.Errorf(v1alpha1.ReasonSourceUnreachable, "source.sftp: SSH handshake with %s: %v", addr, err)
}

func (s *sftpStore) Kind() string { return "sftp://" + s.addr }

func (s *sftpStore) fileError(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return failure.Errorf(v1alpha1.ReasonSourceNotFound, "source.sftp: %s has no file %s", s.addr, name)
	}
	if errors.Is(err, fs.ErrPermission) {
		return failure.Errorf(v1alpha1.ReasonSourceAuthenticationFailed, "source.sftp: %s refuses access to %s", s.addr, name)
	}
	return failure.Errorf(v1alpha1.ReasonSourceUnreachable, "source.sftp: %s: %s: %v", s.addr, name, err)
}

func (s *sftpStore) Stat(_ context.Context, name string) (Object, error) {
	fi, err := s.client.Stat(name)
	if err != nil {
		return Object{}, s.fileError(name, err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, failure.Errorf(v1alpha1.ReasonSourceNotFound, "source.sftp: %s: %s is not a file", s.addr, name)
	}
	return Object{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (s *sftpStore) List(_ context.Context, folder string) ([]Object, error) {
	fis, err := s.client.ReadDir(folder)
	if err != nil {
		return nil, s.fileError(folder, err)
	}
	var objs []Object
	for _, fi := range fis {
		if fi.Mode().IsRegular() {
			objs = append(objs, Object{Name: path.Join(folder, fi.Name()), Size: fi.Size(), ModTime: fi.ModTime()})
		}
	}
	return objs, nil
}

// same tells whether the file still has obj's size and modification time,
// which is what SFTP can tell of a file's content.
func (s *sftpStore) same(ctx context.Context, obj Object) error {
	now, err := s.Stat(ctx, obj.Name)
	if err != nil {
		return err
	}
	if now.Size != obj.Size || !now.ModTime.Equal(obj.ModTime) {
		return fmt.Errorf("source.sftp: %s: %w", obj.Name, failure.ErrChangedWhileRead)
	}
	return nil
}

func (s *sftpStore) OpenAt(ctx context.Context, obj Object, off int64) (io.ReadCloser, error) {
	if err := s.same(ctx, obj); err != nil {
		return nil, err
	}
	f, err := s.client.Open(obj.Name)
	if err != nil {
		return nil, s.fileError(obj.Name, err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	// Large reads: the client splits each into packets it requests all
	// at once, so the round trips overlap.
	return bufferedFile{Reader: bufio.NewReaderSize(f, 1<<20), Closer: f}, nil
}

type bufferedFile struct {
	*bufio.Reader
	io.Closer
}

func (s *sftpStore) Move(ctx context.Context, obj Object, to string) (string, error) {
	dest := path.Join(to, path.Base(obj.Name))
	if err := s.same(ctx, obj); err != nil {
		// Moved already by an earlier attempt whose outcome was lost.
		if failure.ReasonOf(err, "") == v1alpha1.ReasonSourceNotFound {
			if _, derr := s.Stat(ctx, dest); derr == nil {
				return dest, nil
			}
		}
		return "", err
	}
	if err := s.client.MkdirAll(to); err != nil {
		return "", s.fileError(to, err)
	}
	// The POSIX rename replaces a file of the same name in the archive
	// (an export sent twice); the plain one would fail.
	if err := s.client.PosixRename(obj.Name, dest); err != nil {
		if err := s.client.Rename(obj.Name, dest); err != nil {
			return "", s.fileError(obj.Name, err)
		}
	}
	return dest, nil
}

func (s *sftpStore) Delete(ctx context.Context, obj Object) error {
	if err := s.same(ctx, obj); err != nil {
		if failure.ReasonOf(err, "") == v1alpha1.ReasonSourceNotFound {
			return nil // deleted by an earlier attempt
		}
		return err
	}
	if err := s.client.Remove(obj.Name); err != nil {
		return s.fileError(obj.Name, err)
	}
	return nil
}

func (s *sftpStore) Close() error {
	s.client.Close()
	return s.conn.Close()
}
