package ldap

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/internal/credentials"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/retry"
)

// conn is what a pool holds: a go-ldap connection or a pipe.
type conn interface {
	comparable
	Close() error
	IsClosing() bool
}

// pool holds a fixed number of bound connections. A connection is shared,
// not checked out: LDAP multiplexes requests on one connection by message
// id, so several goroutines may use one connection at once. A connection
// found closed, or that failed with a network error, is replaced on the
// next use of its slot.
type pool[C conn] struct {
	dial  func(context.Context) (C, error)
	slots []*slot[C]
	next  atomic.Uint64
}

type slot[C conn] struct {
	mu   sync.Mutex
	conn C
	open bool
}

func newPool[C conn](size int, dial func(context.Context) (C, error)) *pool[C] {
	p := &pool[C]{dial: dial, slots: make([]*slot[C], size)}
	for i := range p.slots {
		p.slots[i] = &slot[C]{}
	}
	return p
}

// get returns the bound connection of slot i, or with i < 0 of the next
// slot round robin, dialling one when the slot is empty or its connection
// has closed.
func (p *pool[C]) get(ctx context.Context, i int) (C, error) {
	n := uint64(i)
	if i < 0 {
		n = p.next.Add(1)
	}
	s := p.slots[n%uint64(len(p.slots))]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open && !s.conn.IsClosing() {
		return s.conn, nil
	}
	if s.open {
		_ = s.conn.Close()
		s.open = false
	}
	c, err := p.dial(ctx)
	if err != nil {
		return c, err
	}
	s.conn, s.open = c, true
	return c, nil
}

// discard closes c and empties its slot, so that the next use dials anew.
func (p *pool[C]) discard(c C) {
	for _, s := range p.slots {
		s.mu.Lock()
		if s.open && s.conn == c {
			s.open = false
		}
		s.mu.Unlock()
	}
	_ = c.Close()
}

func (p *pool[C]) close() {
	for _, s := range p.slots {
		s.mu.Lock()
		if s.open {
			_ = s.conn.Close()
			s.open = false
		}
		s.mu.Unlock()
	}
}

// do runs op on a pooled connection, retrying transient failures (network
// errors, a busy or unavailable server) with exponential backoff and
// jitter, on a fresh connection when the old one broke. The error of the
// last attempt is returned as is, so that callers can read its LDAP
// result code.
func (d *Directory) do(ctx context.Context, op func(*ldap.Conn) error) error {
	return withConn(ctx, d, d.pool, -1, op)
}

// doAdd is do for adds, which go over the pipe of the change's slot.
func (d *Directory) doAdd(ctx context.Context, slot int, op func(*pipe) error) error {
	return withConn(ctx, d, d.pipes, slot, op)
}

func withConn[C conn](ctx context.Context, d *Directory, p *pool[C], slot int, op func(C) error) error {
	for attempt := 0; ; attempt++ {
		if err := d.limiter.Wait(ctx); err != nil {
			return err
		}
		c, err := p.get(ctx, slot)
		if err == nil {
			err = op(c)
			if err == nil {
				return nil
			}
			if isConnError(err) {
				p.discard(c)
			}
		}
		if !isTransient(err) || attempt >= d.maxRetries || ctx.Err() != nil {
			return err
		}
		if err := retry.Sleep(ctx, retry.Backoff(attempt, 100*time.Millisecond, 5*time.Second)); err != nil {
			return err
		}
	}
}

// isConnError tells whether err means the connection is unusable.
func isConnError(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultConnectError, ldap.LDAPResultTimeout)
}

// isTransient tells whether trying err's operation again may succeed. A
// connection that could not be made (v1alpha1.ReasonUnreachable) is
// transient; a refused bind or a bad certificate is not.
func isTransient(err error) bool {
	var de *failure.Error
	if errors.As(err, &de) {
		return de.Reason == v1alpha1.ReasonUnreachable
	}
	return isConnError(err) || ldap.IsErrorAnyOf(err, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable)
}

// connectError classifies a failure to connect or to start TLS.
func connectError(host string, err error) error {
	if credentials.IsTLSError(err) {
		return failure.Errorf(v1alpha1.ReasonTLSError, "TLS with %s: %v", host, err)
	}
	return failure.Errorf(v1alpha1.ReasonUnreachable, "connect to %s: %v", host, err)
}
