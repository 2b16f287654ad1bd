package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/source"
)

// StateFile keeps the checkpoint of a one-off import in a file, as a
// Job's worker keeps it in the UserImport's status: a rerun after an
// interruption resumes after the last checkpoint, and refuses a source
// whose sha256 differs. It holds counts and positions, never values.
// The file is removed once the import completes.
type StateFile struct {
	Path string
	st   v1alpha1.ProgressStatus
}

var _ Sink = (*StateFile)(nil)

// Load reads the state of an interrupted import; nil when there is none.
func (s *StateFile) Load() (*v1alpha1.ProgressStatus, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st v1alpha1.ProgressStatus
	if err := json.Unmarshal(b, &st); err != nil || st.Checkpoint == nil {
		return nil, fmt.Errorf("state file %s: not the state of an import; delete it to start over", s.Path)
	}
	s.st = st
	return &st, nil
}

func (s *StateFile) Started(_ context.Context, _ *source.File, resumed bool) error {
	if resumed {
		s.st.Resumes++
	}
	return nil
}

// Progress writes the checkpoint, atomically: an interruption leaves the
// previous state or the new one, never half a file.
func (s *StateFile) Progress(_ context.Context, p Progress) error {
	cp := p.ResumePoint
	if p.DryRun || cp == nil {
		return nil
	}
	setCounts(&s.st, p.Counts)
	s.st.Percent = p.Percent
	s.st.Checkpoint = statusCheckpoint(cp)
	b, err := json.MarshalIndent(&s.st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomically(s.Path, b); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// writeAtomically replaces the file at path with data: written beside it,
// synced, then renamed over it.
func writeAtomically(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (s *StateFile) Report(context.Context, RunReport) error { return nil }

func (s *StateFile) Preview(context.Context, *v1alpha1.UserImport, engine.Result, string) error {
	return nil
}

func (s *StateFile) Invitations(context.Context, engine.Invitations) error { return nil }

// Done removes the state: a completed import is not resumed.
func (s *StateFile) Done(context.Context, engine.Result) error {
	if err := os.Remove(s.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}
