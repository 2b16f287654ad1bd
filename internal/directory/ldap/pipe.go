package ldap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// pipe is a bound connection that carries add requests pipelined: each
// request is encoded straight into a buffer shared by the callers, the
// caller that finds no write under way writes the buffer (its own
// request and any that gathered meanwhile), and answers are matched by
// message id.
//
// go-ldap writes every request on its own and builds a tree of packets
// for it; on a first import, where nearly every change is an add, that
// cost the client as much CPU per user as the server spent, on the same
// cores.
type pipe struct {
	conn    net.Conn
	timeout time.Duration

	mu      sync.Mutex
	out     []byte // encoded requests not yet written
	spare   []byte // the buffer last written, for reuse
	writing bool   // a caller is writing; it writes out too before it stops
	pending map[int32]chan error
	nextID  int32
	err     error // why the pipe broke; nil while it works
}

// dialPipe connects, upgrades with StartTLS when asked and binds, as dial
// does for go-ldap connections, and starts the pipe's reader.
func (d *Directory) dialPipe(ctx context.Context) (*pipe, error) {
	dialer := &net.Dialer{Timeout: dialTimeout, Control: d.dialControl}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < dialTimeout {
		dialer.Deadline = deadline
	}
	port := d.url.Port()
	if port == "" {
		port = ldap.DefaultLdapPort
		if d.url.Scheme == "ldaps" {
			port = ldap.DefaultLdapsPort
		}
	}
	host := net.JoinHostPort(d.url.Hostname(), port)
	conn, err := dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, connectError(d.url.Host, err)
	}
	conn.SetDeadline(time.Now().Add(dialTimeout))
	if d.url.Scheme == "ldaps" {
		if conn, err = handshake(ctx, conn, d.tlsConfig); err != nil {
			return nil, connectError(d.url.Host, err)
		}
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	var buf []byte
	if d.startTLS {
		if err := exchange(conn, r, appendStartTLS(nil, 1), &buf); err != nil {
			conn.Close()
			return nil, connectError(d.url.Host, fmt.Errorf("StartTLS: %w", err))
		}
		if conn, err = handshake(ctx, conn, d.tlsConfig); err != nil {
			return nil, connectError(d.url.Host, err)
		}
		r.Reset(conn)
	}
	if err := exchange(conn, r, appendBind(nil, 2, d.bindDN, d.password), &buf); err != nil {
		conn.Close()
		return nil, d.bindError(err)
	}
	conn.SetDeadline(time.Time{})
	p := &pipe{
		conn:    conn,
		timeout: d.requestTimeout(),
		pending: make(map[int32]chan error),
		nextID:  3,
	}
	go p.readLoop(r)
	return p, nil
}

// handshake runs the TLS handshake over conn, and closes conn when it
// fails.
func handshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (net.Conn, error) {
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// exchange writes one request and reads its answer, before the pipe
// runs; an answer other than success is an *ldap.Error.
func exchange(conn net.Conn, r *bufio.Reader, req []byte, buf *[]byte) error {
	if _, err := conn.Write(req); err != nil {
		return err
	}
	res, err := readResult(r, buf)
	if err != nil {
		return err
	}
	return res.err()
}

// add sends an add request and waits for its answer: nil, or an
// *ldap.Error with the server's result code, or one of code
// ldap.ErrorNetwork when the connection broke.
func (p *pipe) add(ctx context.Context, dn string, objectClasses []string, attrs attrList) error {
	done := make(chan error, 1)
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return p.err
	}
	id := p.nextID
	if p.nextID++; p.nextID <= 0 {
		p.nextID = 1
	}
	p.out = appendAdd(p.out, id, dn, objectClasses, attrs)
	p.pending[id] = done
	if p.writing {
		p.mu.Unlock()
	} else {
		p.flush()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes out until nothing is left; requests that callers add
// while a write is under way go in the next one. It is called with p.mu
// held and returns with it released.
func (p *pipe) flush() {
	p.writing = true
	for len(p.out) > 0 && p.err == nil {
		buf := p.out
		p.out = p.spare[:0]
		p.conn.SetReadDeadline(time.Now().Add(p.timeout))
		p.mu.Unlock()
		_, err := p.conn.Write(buf)
		if err != nil {
			p.fail(err)
		}
		p.mu.Lock()
		p.spare = buf
	}
	p.writing = false
	p.mu.Unlock()
}

// readLoop hands each answer to its caller. The read deadline runs while
// answers are owed and is renewed by each one.
func (p *pipe) readLoop(r *bufio.Reader) {
	var buf []byte
	for {
		res, err := readResult(r, &buf)
		if err == nil && res.notice {
			// A notice of disconnection: the server is going away.
			err = fmt.Errorf("notice of disconnection (LDAP result %d): %s", res.code, res.diag)
		}
		if err != nil {
			p.fail(err)
			return
		}
		answer := res.err()
		if answer == nil && res.op != tagAddResponse {
			answer = ldap.NewError(ldap.ErrorUnexpectedResponse, fmt.Errorf("answer of tag %#x to an add", res.op))
		}
		p.mu.Lock()
		done := p.pending[res.id]
		delete(p.pending, res.id)
		if len(p.pending) == 0 {
			p.conn.SetReadDeadline(time.Time{})
		} else {
			p.conn.SetReadDeadline(time.Now().Add(p.timeout))
		}
		p.mu.Unlock()
		if done != nil {
			done <- answer
		}
	}
}

// fail breaks the pipe: every caller waiting, and every later one, gets
// err as a network error, so that the retry loop dials again.
func (p *pipe) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	err = ldap.NewError(ldap.ErrorNetwork, err)
	p.err = err
	for id, done := range p.pending {
		done <- err
		delete(p.pending, id)
	}
	p.conn.Close()
}

// Close closes the connection; callers waiting get a network error.
func (p *pipe) Close() error {
	p.fail(errors.New("connection closed"))
	return nil
}

// IsClosing tells whether the pipe broke or was closed.
func (p *pipe) IsClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err != nil
}
