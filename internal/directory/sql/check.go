package sql

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// Check connects, then verifies that the table and every column the
// directory uses exist, that the identity column is unique and that the
// active column is boolean.
func (s *Directory) Check(ctx context.Context) (directory.Capabilities, error) {
	err := s.retry(ctx, func() error { return s.read.PingContext(ctx) })
	if err != nil {
		return directory.Capabilities{}, s.wrap(err, "connect")
	}
	sc, err := s.loadSchema(ctx)
	if err != nil {
		return directory.Capabilities{}, err
	}
	s.mu.Lock()
	s.schema = sc
	s.mu.Unlock()
	return directory.Capabilities{
		// A batch is one transaction; there is no bulk size limit.
		Bulk:   true,
		Patch:  true,
		Filter: true,
	}, nil
}

// loadSchema reads the table's columns and checks the fixed ones.
func (s *Directory) loadSchema(ctx context.Context) (*schema, error) {
	sc, err := s.readSchema(ctx, s.table, "read the table's columns")
	if err != nil {
		return nil, err
	}
	if sc == nil {
		return nil, failure.Errorf(v1alpha1.ReasonSchemaMismatch, "table %s not found", strings.Join(s.table, "."))
	}

	type need struct{ what, col string }
	needs := []need{
		{"identity attribute " + s.opts.IdentityAttribute, s.identityColumn()},
		{s.activeWhat(), s.active},
	}
	if s.opts.MarkerAttribute != "" {
		needs = append(needs, need{"marker attribute " + s.opts.MarkerAttribute, s.column(s.opts.MarkerAttribute)})
	}
	attrs := make([]string, 0, len(s.columns))
	for a := range s.columns {
		attrs = append(attrs, a)
	}
	sort.Strings(attrs)
	for _, a := range attrs {
		needs = append(needs, need{"attribute " + a, s.column(a)})
	}
	for _, n := range needs {
		if _, ok := sc.column(s.d, n.col); !ok {
			return nil, failure.Errorf(v1alpha1.ReasonSchemaMismatch,
				"table %s has no column %s (for the %s)", strings.Join(s.table, "."), n.col, n.what)
		}
	}
	if c, _ := sc.column(s.d, s.identityColumn()); !c.unique {
		return nil, failure.Errorf(v1alpha1.ReasonSchemaMismatch,
			"column %s of table %s (identity attribute %s) needs a single-column unique constraint; create one with: CREATE UNIQUE INDEX ON %s (%s)",
			c.name, strings.Join(s.table, "."), s.opts.IdentityAttribute, s.qtable, quote(c.name))
	}
	// A full import must know which spellings name one user: one it took
	// for another would be a create that updates the user, and the user,
	// missing from the file under its own spelling, deprovisioned.
	c, _ := sc.column(s.d, s.identityColumn())
	fold, unknown := s.d.identityFold(c)
	if unknown != "" {
		return nil, failure.Errorf(v1alpha1.ReasonSchemaMismatch,
			"column %s of table %s (identity attribute %s): %s; give it a unique index that compares exactly, or ignores case as citext or NOCASE does",
			c.name, strings.Join(s.table, "."), s.opts.IdentityAttribute, unknown)
	}
	sc.identityFold = fold
	if s.groups != nil {
		if err := s.checkGroupTable(ctx); err != nil {
			return nil, err
		}
	}
	if c, _ := sc.column(s.d, s.active); s.status == nil && !s.d.isBoolean(c.typ) {
		return nil, failure.Errorf(v1alpha1.ReasonSchemaMismatch,
			"active column %s of table %s is of type %s, not boolean", c.name, strings.Join(s.table, "."), c.typ)
	}
	return sc, nil
}

// readSchema reads the columns and unique indexes of table, retried
// while the database cannot be reached; nil when it does not exist.
func (s *Directory) readSchema(ctx context.Context, table []string, doing string) (*schema, error) {
	var sc *schema
	err := s.retry(ctx, func() error {
		var err error
		sc, err = s.d.loadSchema(ctx, s.read, table)
		return err
	})
	return sc, s.wrap(err, doing)
}

// IdentityFold is how the identity column's unique index tells
// identities apart (directory.IdentityFolder): nil when exactly, as a
// TEXT column does; lower case for citext; A to Z in lower case for
// SQLite's NOCASE, and without the spaces that end them for RTRIM.
func (s *Directory) IdentityFold(ctx context.Context) (func(string) string, error) {
	sc, err := s.currentSchema(ctx)
	if err != nil {
		return nil, err
	}
	return sc.identityFold, nil
}

// currentSchema returns the schema loaded by Check, loading it once if
// Check has not run.
func (s *Directory) currentSchema(ctx context.Context) (*schema, error) {
	s.mu.Lock()
	sc := s.schema
	s.mu.Unlock()
	if sc != nil {
		return sc, nil
	}
	sc, err := s.loadSchema(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.schema = sc
	s.mu.Unlock()
	return sc, nil
}

// ValidateAttributes checks that every attribute has a column in the table,
// so that an import's mapping is rejected before anything is written.
func (s *Directory) ValidateAttributes(attrs []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, err := s.currentSchema(ctx)
	if err != nil {
		return err
	}
	return s.validate(sc, attrs)
}

func (s *Directory) validate(sc *schema, attrs []string) error {
	var missing []string
	seen := map[string]string{}
	for _, a := range attrs {
		col := s.column(a)
		if _, ok := sc.column(s.d, col); !ok {
			missing = append(missing, fmt.Sprintf("%s (column %s)", a, col))
			continue
		}
		if s.d.normColumn(col) == s.d.normColumn(s.active) {
			return failure.Errorf(v1alpha1.ReasonInvalidConfig, "attribute %s maps to the %s %s", a, s.activeWhat(), col)
		}
		if other, ok := seen[s.d.normColumn(col)]; ok && other != a {
			return failure.Errorf(v1alpha1.ReasonInvalidConfig, "attributes %s and %s map to the same column %s", other, a, col)
		}
		seen[s.d.normColumn(col)] = a
	}
	if len(missing) > 0 {
		return failure.Errorf(v1alpha1.ReasonSchemaMismatch, "table %s has no column for attribute %s",
			strings.Join(s.table, "."), strings.Join(missing, ", "))
	}
	return nil
}
