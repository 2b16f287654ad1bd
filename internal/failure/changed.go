package failure

import (
	"errors"
	"fmt"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Since says what a changed file was expected to be.
type Since int

const (
	// WhileRead: the file changed while the import read it (its size,
	// modification time or ETag differ from the first read's).
	WhileRead Since = iota + 1
	// SinceCheckpoint: the checkpoint to resume from belongs to another
	// file.
	SinceCheckpoint
	// SincePreview: the file is not the one the preview (or
	// --expect-sha256) named.
	SincePreview
	// TemplatesSincePreview: the invitation templates are not the ones
	// the preview rendered.
	TemplatesSincePreview
)

// Changed is the cause of every "the file is not the one expected"
// error, with reason v1alpha1.ReasonSourceChanged. An import never mixes
// two files: nothing of the other file is written.
type Changed struct {
	Since Since
	// Got identifies the file found, Want the one expected (for
	// SincePreview and TemplatesSincePreview): the sha256 of a copied
	// file or of the templates, the fingerprint of a file read in place.
	Got, Want string
}

func (c *Changed) Error() string {
	switch c.Since {
	case WhileRead:
		return "the file changed since the import started reading it (its size, modification time or ETag differ); an import never mixes two files"
	case SinceCheckpoint:
		return "the source is not the file of the checkpoint (its sha256 differs): the import cannot resume and must start over"
	case TemplatesSincePreview:
		return fmt.Sprintf("the invitation templates are %s, but the preview rendered %s; nothing was written", c.Got, c.Want)
	}
	return fmt.Sprintf("the source is %s, but the preview was made of the file %s; nothing was written", c.Got, c.Want)
}

// Is matches a Changed of the same Since: errors.Is(err, ErrChangedWhileRead).
func (c *Changed) Is(target error) bool {
	t, ok := target.(*Changed)
	return ok && t.Since == c.Since
}

var (
	// ErrChangedWhileRead is the error of a file that changed while read.
	ErrChangedWhileRead error = &Error{Reason: v1alpha1.ReasonSourceChanged, Err: &Changed{Since: WhileRead}}
	// ErrChangedSinceCheckpoint is the error of a resume from another
	// file's checkpoint.
	ErrChangedSinceCheckpoint error = &Error{Reason: v1alpha1.ReasonSourceChanged, Err: &Changed{Since: SinceCheckpoint}}
)

// ChangedSincePreview is the error of a file, or of templates, that are
// not the ones the preview used: got instead of want.
func ChangedSincePreview(since Since, got, want string) error {
	return &Error{Reason: v1alpha1.ReasonSourceChanged, Err: &Changed{Since: since, Got: got, Want: want}}
}

// ChangedOf is the *Changed in err's chain, or nil.
func ChangedOf(err error) *Changed {
	var c *Changed
	if errors.As(err, &c) {
		return c
	}
	return nil
}
