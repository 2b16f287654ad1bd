package failure

import (
	"errors"
	"fmt"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// The reason and the stall are found through any wrapping; the outermost
// *Error decides, so that a caller can give an error a reason of its own.
func TestReasonAndStallThroughWrapping(t *testing.T) {
	inner := Stalledf(v1alpha1.ReasonInvalidMapping, "mapping: no column %q", "email")
	wrapped := fmt.Errorf("preview: %w", inner)
	if got := ReasonOf(wrapped, "x"); got != v1alpha1.ReasonInvalidMapping || !IsStalled(wrapped) {
		t.Fatalf("ReasonOf %q, IsStalled %v", got, IsStalled(wrapped))
	}
	if wrapped.Error() != `preview: mapping: no column "email"` {
		t.Errorf("message %q: the reason is not part of it", wrapped.Error())
	}
	outer := Wrap(v1alpha1.ReasonErrorPolicyExceeded, wrapped)
	if ReasonOf(outer, "") != v1alpha1.ReasonErrorPolicyExceeded || IsStalled(outer) {
		t.Errorf("the outer error does not decide: %q stalled %v", ReasonOf(outer, ""), IsStalled(outer))
	}
	if got := ReasonOf(errors.New("plain"), v1alpha1.ReasonDirectoryError); got != v1alpha1.ReasonDirectoryError {
		t.Errorf("fallback %q", got)
	}
	if Wrap("r", nil) != nil || Stall("r", nil) != nil {
		t.Error("a nil error got a reason")
	}
	if got := Titled(outer, "m"); got != "ErrorPolicyExceeded: m" {
		t.Errorf("Titled %q", got)
	}
	if got := Titled(errors.New("plain"), "m"); got != "m" {
		t.Errorf("Titled without a reason %q", got)
	}
}

// Every "not the file expected" is one type, told apart by Since.
func TestChangedIsOneTypeWithACause(t *testing.T) {
	read := fmt.Errorf("source.s3: hr.csv: %w", ErrChangedWhileRead)
	if !errors.Is(read, ErrChangedWhileRead) || errors.Is(read, ErrChangedSinceCheckpoint) {
		t.Error("errors.Is does not tell the causes apart")
	}
	preview := ChangedSincePreview(SincePreview, "b", "a")
	for _, err := range []error{read, ErrChangedSinceCheckpoint, preview} {
		if ReasonOf(err, "") != v1alpha1.ReasonSourceChanged || ChangedOf(err) == nil || IsStalled(err) {
			t.Errorf("%v: reason %q, cause %v", err, ReasonOf(err, ""), ChangedOf(err))
		}
	}
	if c := ChangedOf(preview); c.Since != SincePreview || c.Got != "b" || c.Want != "a" {
		t.Errorf("cause %+v", c)
	}
}
