package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// A delta import reports a row whose identity an earlier row of the file
// has as a duplicate. For most files the identities seen so far are kept
// in memory (an idSet, 8 to 16 bytes a row). A file larger than
// externalDupBytes would make that set the largest part of the process
// (about 200 MiB for ten million rows), so its duplicates are found
// before the pass instead, with memory that does not grow with the file:
// the identity hash and byte offset of every row that maps go to one of
// dupPartitions temporary files by hash; each file, a small fraction of
// the whole, is then sorted, and every row whose hash an earlier offset
// has is a duplicate. The pass then only needs the sorted offsets of the
// duplicates. Both ways decide exactly the same rows.

// externalDupBytes is the file size above which a delta import finds
// duplicates with temporary files; a variable so that tests can use both
// ways on small files.
var externalDupBytes int64 = 64 << 20

const dupPartitions = 128

// findDuplicates sets r.dups for a delta import of a large file, or of
// a file a resume must not read again (Input.SeekOnResume).
func (r *run) findDuplicates(ctx context.Context) error {
	if r.cfg.Mode == v1alpha1.ModeFull && !r.in.SeekOnResume {
		return nil // full mode finds them with the snapshot's seen flags
	}
	size, err := r.in.File.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("reading the source: %w", err)
	}
	if size <= externalDupBytes && !r.in.SeekOnResume {
		return nil
	}
	dir, err := os.MkdirTemp("", "uio-identities-")
	if err != nil {
		return fmt.Errorf("finding duplicate identities: %w", err)
	}
	defer os.RemoveAll(dir)
	parts := make([]*os.File, dupPartitions)
	bufs := make([]*bufio.Writer, dupPartitions)
	defer func() {
		for _, f := range parts {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := range parts {
		if parts[i], err = os.Create(filepath.Join(dir, fmt.Sprint(i))); err != nil {
			return fmt.Errorf("finding duplicate identities: %w", err)
		}
		bufs[i] = bufio.NewWriterSize(parts[i], 16<<10)
	}

	// Rows whose identity cannot be read are errors of their own and never
	// duplicates; a row that fails otherwise still takes its identity (as
	// in the pass, see planFailed).
	mapChunk := func(c *chunk, rec *mapping.Record) {
		if cap(c.hashes) < len(c.rows) {
			c.hashes = make([]uint64, len(c.rows))
		}
		c.hashes = c.hashes[:len(c.rows)]
		for i := range c.rows {
			m := &c.rows[i]
			c.hashes[i] = 0
			if r.mapRow(m, rec) || m.identity != "" {
				c.hashes[i] = r.identityHash(m.identity)
			}
		}
	}
	var entry [16]byte
	_, err = r.scanFile(ctx, mapChunk, func(c *chunk) error {
		for i, h := range c.hashes {
			if h == 0 {
				continue
			}
			binary.LittleEndian.PutUint64(entry[:8], h)
			binary.LittleEndian.PutUint64(entry[8:], uint64(c.rows[i].rec.Offset))
			if _, err := bufs[h%dupPartitions].Write(entry[:]); err != nil {
				return fmt.Errorf("finding duplicate identities: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, b := range bufs {
		if err := b.Flush(); err != nil {
			return fmt.Errorf("finding duplicate identities: %w", err)
		}
	}

	dups := []int64{}
	type seen struct {
		h   uint64
		off int64
	}
	var entries []seen
	for _, f := range parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("finding duplicate identities: %w", err)
		}
		entries = entries[:0]
		br := bufio.NewReaderSize(f, 64<<10)
		for {
			if _, err := io.ReadFull(br, entry[:]); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("finding duplicate identities: %w", err)
			}
			entries = append(entries, seen{binary.LittleEndian.Uint64(entry[:8]), int64(binary.LittleEndian.Uint64(entry[8:]))})
		}
		slices.SortFunc(entries, func(a, b seen) int {
			if a.h != b.h {
				if a.h < b.h {
					return -1
				}
				return 1
			}
			return int(a.off - b.off)
		})
		for i := 1; i < len(entries); i++ {
			if entries[i].h == entries[i-1].h {
				dups = append(dups, entries[i].off)
			}
		}
	}
	slices.Sort(dups)
	r.dups = dups
	return nil
}

// duplicatesAfter returns the duplicates at or after off for a checkpoint
// there, when the import may resume without reading the rows before it;
// otherwise nil.
func (r *run) duplicatesAfter(off int64) []int64 {
	if !r.in.SeekOnResume || r.dups == nil || r.deprovisions() {
		return nil
	}
	i, _ := slices.BinarySearch(r.dups, off)
	if len(r.dups)-i > MaxKeptDuplicates {
		return nil
	}
	return r.dups[i:len(r.dups):len(r.dups)]
}
