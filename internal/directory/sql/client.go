package sql

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/retry"
)

// pace waits until n more statements may be sent under the rate limit.
func (s *Directory) pace(ctx context.Context, n int) error {
	if s.limiter == nil {
		return nil
	}
	for n > 0 {
		k := min(n, s.limiter.Burst())
		if err := s.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// quote quotes an identifier. PostgreSQL and SQLite quote the same way:
// double quotes, with embedded double quotes doubled.
func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// wrap turns a database error into a *failure.Error with a reason a
// person can act on. Messages carry no values: SQL text never holds
// values, and the errors that quote them (data exceptions, constraint
// details) are row errors, reported by rowError instead.
func (s *Directory) wrap(err error, doing string) error {
	if err == nil {
		return nil
	}
	var de *failure.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	reason := v1alpha1.ReasonDirectoryError
	switch s.d.classify(err) {
	case classAuth:
		reason = v1alpha1.ReasonAuthenticationFailed
	case classUnreachable, classTransient:
		reason = v1alpha1.ReasonUnreachable
	case classSchema:
		reason = v1alpha1.ReasonSchemaMismatch
	case classConfig:
		reason = v1alpha1.ReasonInvalidConfig
	case classTLS:
		reason = v1alpha1.ReasonTLSError
	}
	return &failure.Error{Reason: reason, Err: fmt.Errorf("%s: %s", doing, s.d.message(err))}
}

// bounded runs fn with a context that ends after the request timeout: a
// statement or transaction that takes longer is abandoned (and rolled
// back), and retry tries it again like a dropped connection. Only work
// complete within fn is bounded: a listing's cursor outlives its opening.
func (s *Directory) bounded(ctx context.Context, fn func(ctx context.Context) error) func() error {
	return func() error {
		timeout := s.opts.RequestTimeout
		if timeout <= 0 {
			return fn(ctx)
		}
		tctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		err := fn(tctx)
		if err != nil && ctx.Err() == nil && tctx.Err() != nil {
			return errRequestTimeout
		}
		return err
	}
}

// errRequestTimeout is a statement or transaction that outlived the
// request timeout.
var errRequestTimeout = failure.Errorf(v1alpha1.ReasonUnreachable, "the database did not answer within the request timeout")

// retry runs fn, again after a backoff while it fails transiently, up to
// opts.MaxRetries times (3 when unset).
func (s *Directory) retry(ctx context.Context, fn func() error) error {
	max := s.opts.MaxRetries
	if max <= 0 {
		max = 3
	}
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || attempt >= max || ctx.Err() != nil {
			return err
		}
		switch s.d.classify(err) {
		case classTransient, classUnreachable:
		default:
			if err != errRequestTimeout {
				return err
			}
		}
		if retry.Sleep(ctx, retry.Backoff(attempt, 100*time.Millisecond, 5*time.Second)) != nil {
			return err
		}
	}
}
