package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/userimport/user-import-operator/internal/csvsafe"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/recoverycode"
)

// DirVault keeps an import's recovery codes in a local directory, for a
// one-off run without a cluster (--codes-dir): the key in "key", the codes
// in "codes.csv" (identity, code, expires), both of mode 0600 in a
// directory of mode 0700. While a run goes on, each Record is appended to
// "codes.log" and synced before it returns, so that a run killed at any
// point and run again finds every code it gave out; Close folds the log
// into codes.csv.
type DirVault struct {
	Dir string
}

var _ CodeVault = (*DirVault)(nil)

const (
	dirVaultKey   = "key"
	dirVaultCodes = "codes.csv"
	dirVaultLog   = "codes.log"
)

// Key reads the key, making it on first use.
func (v *DirVault) Key(context.Context) ([]byte, error) {
	if err := os.MkdirAll(v.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("codes directory: %w", err)
	}
	if err := private(v.Dir, true); err != nil {
		return nil, err
	}
	path := filepath.Join(v.Dir, dirVaultKey)
	if key, err := os.ReadFile(path); err == nil {
		if len(key) != recoverycode.KeySize {
			return nil, fmt.Errorf("%s holds %d bytes, want a key of %d", path, len(key), recoverycode.KeySize)
		}
		return key, private(path, false)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, recoverycode.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("making the recovery code key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return key, f.Close()
}

// private refuses a codes directory or file that others may read: codes
// are passwords.
func private(path string, dir bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	want := fs.FileMode(0o600)
	if dir {
		want = 0o700
	}
	if st.Mode().Perm()&^want != 0 {
		return fmt.Errorf("%s has mode %o: recovery codes are kept only where no one else may read them (chmod %o)", path, st.Mode().Perm(), want)
	}
	return nil
}

// Open reads the codes earlier runs recorded.
func (v *DirVault) Open(_ context.Context, expires time.Time) (CodeStore, error) {
	s := &dirCodes{v: v, codes: map[string][2]string{}}
	if !expires.IsZero() {
		s.expires = expires.UTC().Format(time.RFC3339)
	}
	for _, name := range []string{dirVaultCodes, dirVaultLog} {
		if err := s.load(filepath.Join(v.Dir, name)); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(filepath.Join(v.Dir, dirVaultLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	s.log = f
	return s, nil
}

// dirCodes is the store of DirVault: identity to code and expiry, both
// kept as their CSV cells write them (csvsafe.Cell, as SecretVault does);
// the log's lines with an empty code forget an identity.
type dirCodes struct {
	v       *DirVault
	expires string

	mu     sync.Mutex
	codes  map[string][2]string
	log    *os.File
	forget []string
}

func (s *dirCodes) load(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := private(path, false); err != nil {
		return err
	}
	// Record writes whole lines, then syncs: a run killed in a write
	// leaves a last line without its end, which was never recorded.
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = 3
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if rec[0] == "identity" && rec[1] == "code" {
			continue
		}
		if rec[1] == "" {
			delete(s.codes, rec[0])
			continue
		}
		s.codes[rec[0]] = [2]string{rec[1], rec[2]}
	}
}

// Record appends codes to the log and syncs it.
func (s *dirCodes) Record(_ context.Context, codes []engine.IssuedCode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := csv.NewWriter(s.log)
	for _, id := range s.forget {
		_ = w.Write([]string{id, "", ""})
	}
	s.forget = nil
	for _, c := range codes {
		id, code := csvsafe.Cell(c.Identity), csvsafe.Cell(c.Code)
		s.codes[id] = [2]string{code, s.expires}
		_ = w.Write([]string{id, code, s.expires})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return s.log.Sync()
}

func (s *dirCodes) Forget(identities []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range identities {
		cell := csvsafe.Cell(id)
		delete(s.codes, cell)
		s.forget = append(s.forget, cell)
	}
}

func (s *dirCodes) Code(identity string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[csvsafe.Cell(identity)]
	return unescape(c[0]), ok
}

// Close folds the log into codes.csv (written whole, then renamed over
// the old one) and removes the log.
func (s *dirCodes) Close(context.Context, bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget = nil
	ids := make([]string, 0, len(s.codes))
	for id := range s.codes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	tmp := filepath.Join(s.v.Dir, dirVaultCodes+".new")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"identity", "code", "expires"})
	for _, id := range ids {
		_ = w.Write([]string{id, s.codes[id][0], s.codes[id][1]})
	}
	if w.Flush(); w.Error() != nil {
		f.Close()
		return w.Error()
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(s.v.Dir, dirVaultCodes)); err != nil {
		return err
	}
	s.log.Close()
	return os.Remove(filepath.Join(s.v.Dir, dirVaultLog))
}
