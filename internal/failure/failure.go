// Package failure is the one error that carries a reason: the v1alpha1
// reason (ReasonDirectoryUnreachable, ReasonInvalidMapping, …) a person
// acts on, shown as a condition's reason or in an import's status, and
// whether trying again can help. Directories, sources, the mail relay and
// the engine return it; the controllers and the worker read it with
// ReasonOf and IsStalled, whoever made it.
//
// Its message is the wrapped error's: like every error of the operator it
// must not quote a value of the file or a credential.
package failure

import (
	"errors"
	"fmt"
)

// Error is a failure with a reason.
type Error struct {
	Reason string
	// Stalled says that trying again cannot succeed until a person
	// changes the spec, a Secret or the file: a run refuses the import
	// instead of failing it.
	Stalled bool
	Err     error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf is an *Error with reason that trying again may mend (a server
// down, a timeout).
func Errorf(reason, format string, args ...any) error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Stalledf is an *Error with reason that only a person can mend (a spec,
// a Secret or a file to fix).
func Stalledf(reason, format string, args ...any) error {
	return &Error{Reason: reason, Stalled: true, Err: fmt.Errorf(format, args...)}
}

// Wrap gives err a reason; nil stays nil.
func Wrap(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Reason: reason, Err: err}
}

// Stall is Wrap for an error only a person can mend.
func Stall(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Reason: reason, Stalled: true, Err: err}
}

// ReasonOf is the reason of the first *Error in err's chain, or fallback
// when it has none.
func ReasonOf(err error, fallback string) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return fallback
}

// IsStalled tells whether the first *Error in err's chain is stalled.
func IsStalled(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Stalled
}

// Titled is err's message after its reason ("DirectoryUnreachable: dial
// …"), for a message whose condition or status does not carry the reason
// itself. msg is err's message, already made safe to show.
func Titled(err error, msg string) string {
	if r := ReasonOf(err, ""); r != "" {
		return r + ": " + msg
	}
	return msg
}
