package sql

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	stdsql "database/sql"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

func openPostgres(dsn string, concurrency int, control func(network, address string, c syscall.RawConn) error, insecure bool) (*stdsql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parse error quotes the DSN, password redaction only best
		// effort: say what is wrong without it.
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "dsn: not a valid PostgreSQL connection string")
	}
	if !insecure && !verified(cfg) {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig,
			"dsn: its sslmode is below verify-ca: the password and every user may go in clear, or to a server nobody verified; use sslmode=verify-full (or verify-ca), or set spec.sql.insecure: true")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if control != nil {
		cfg.DialFunc = (&net.Dialer{KeepAlive: 5 * time.Minute, Control: control}).DialContext
	}
	db := stdlib.OpenDB(*cfg)
	// A List may hold a connection while its callback applies batches.
	db.SetMaxOpenConns(concurrency + 2)
	db.SetMaxIdleConns(concurrency + 2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

type postgresDialect struct{}

func (postgresDialect) placeholder(i int) string     { return "$" + strconv.Itoa(i) }
func (postgresDialect) textExpr(col string) string   { return quote(col) + "::text" }
func (postgresDialect) normColumn(col string) string { return col }
func (postgresDialect) isBoolean(typ string) bool    { return typ == "boolean" }
func (postgresDialect) cachesStatements() bool       { return true }

// How the database's lower() lowers letters, under its collation: a
// citext column compares by it, whatever the column's collation (citext
// keeps its equality independent of collations).
const (
	lowersASCII  = "ascii"  // A to Z only: the collation C
	lowersSimple = "simple" // one letter to one, as the C library does
	lowersFully  = "fully"  // the full Unicode mapping, as ICU does
)

// identityFold: a citext column compares its values as the database's
// lower() reads them; a nondeterministic collation compares as only the
// server's ICU library knows, and so does a lower() that lowers I to a
// dotless ı.
func (postgresDialect) identityFold(c columnInfo) (func(string) string, string) {
	for _, coll := range c.compares {
		if coll != "" {
			return nil, "its unique index uses the nondeterministic collation " + coll + ", which the provider cannot follow"
		}
	}
	if !isCitext(c.typ) {
		return nil, ""
	}
	switch c.lowers {
	case lowersASCII:
		return directory.FoldASCIICase, ""
	case lowersSimple:
		return directory.FoldCase, ""
	case lowersFully:
		return directory.FoldCaseFully, ""
	}
	return nil, "it is citext, and the database's lower() lowers letters in a way the provider cannot follow (as Turkish and Azeri lower I to a dotless ı)"
}

// lowers asks how the database's lower() lowers letters: as one of
// lowersASCII, lowersSimple and lowersFully, or "" when otherwise.
func lowers(ctx context.Context, db *stdsql.DB) (string, error) {
	// "Ë" tells the collation C from the others, and "I" the Turkish and
	// Azeri ones (a dotless ı).
	var umlaut, latinI bool
	var encoding string
	err := db.QueryRowContext(ctx, "SELECT lower(chr(203)) = chr(235), lower('I') = 'i', getdatabaseencoding()").Scan(&umlaut, &latinI, &encoding)
	switch {
	case err != nil:
		return "", err
	case !latinI:
		return "", nil
	case !umlaut:
		return lowersASCII, nil
	case encoding != "UTF8":
		// No letter lowers to two here.
		return lowersSimple, nil
	}
	// "İ" tells the C library's mapping (i) from the full one (i and a
	// combining dot above).
	var dotted string
	if err := db.QueryRowContext(ctx, "SELECT lower(chr(304))").Scan(&dotted); err != nil {
		return "", err
	}
	switch dotted {
	case "i":
		return lowersSimple, nil
	case "i\u0307":
		return lowersFully, nil
	}
	return "", nil
}

func isCitext(typ string) bool { return typ == "citext" || strings.HasSuffix(typ, ".citext") }

func (postgresDialect) loadSchema(ctx context.Context, db *stdsql.DB, table []string) (*schema, error) {
	// to_regclass resolves the name with the search path, as the
	// provider's own statements will.
	var oid int64
	err := db.QueryRowContext(ctx, "SELECT COALESCE(to_regclass($1)::oid::bigint, 0)",
		pgx.Identifier(table).Sanitize()).Scan(&oid)
	if err != nil {
		return nil, err
	}
	if oid == 0 {
		return nil, nil
	}
	sc := &schema{columns: map[string]columnInfo{}}
	rows, err := db.QueryContext(ctx, `SELECT attname, format_type(atttypid, atttypmod)
		FROM pg_attribute WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped`, oid)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var c columnInfo
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			rows.Close()
			return nil, err
		}
		sc.columns[c.name] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	asked, lowered := false, ""
	for name, c := range sc.columns {
		if !isCitext(c.typ) {
			continue
		}
		if !asked {
			if lowered, err = lowers(ctx, db); err != nil {
				return nil, err
			}
			asked = true
		}
		c.lowers = lowered
		sc.columns[name] = c
	}
	// Unique indexes, with their key columns: a one-column one is what
	// ON CONFLICT (column) can use; none may be partial or on an
	// expression, or deferred.
	// A key's collation is nondeterministic (PostgreSQL 12 and later)
	// when it may find two different strings equal: its name then says
	// how the index compares.
	rows, err = db.QueryContext(ctx, `SELECT string_agg(a.attname::text, chr(1) ORDER BY k.n),
		  COALESCE(string_agg(co.collname::text, ' ') FILTER (WHERE to_jsonb(co) ->> 'collisdeterministic' = 'false'), '')
		FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indcollation::oid[]) WITH ORDINALITY AS k(attnum, coll, n)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		LEFT JOIN pg_collation co ON co.oid = k.coll
		WHERE i.indrelid = $1::bigint::oid AND i.indisunique AND i.indimmediate
		  AND i.indpred IS NULL AND i.indexprs IS NULL AND k.n <= i.indnkeyatts
		GROUP BY i.indexrelid`, oid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var cols, compare string
		if err := rows.Scan(&cols, &compare); err != nil {
			return nil, err
		}
		sc.addUnique(postgresDialect{}, strings.Split(cols, "\x01"), compare)
	}
	return sc, rows.Err()
}

// verified tells whether every connection cfg makes is TLS with the
// server's certificate verified (sslmode verify-ca or verify-full): pgx
// verifies verify-ca in VerifyPeerCertificate, with InsecureSkipVerify
// set; require sets InsecureSkipVerify alone; disable, allow and prefer
// connect, or fall back, without TLS.
func verified(cfg *pgx.ConnConfig) bool {
	ok := func(t *tls.Config) bool {
		return t != nil && (!t.InsecureSkipVerify || t.VerifyPeerCertificate != nil)
	}
	if !ok(cfg.TLSConfig) {
		return false
	}
	for _, fb := range cfg.Fallbacks {
		if !ok(fb.TLSConfig) {
			return false
		}
	}
	return true
}

func (postgresDialect) classify(err error) errClass {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		code := pe.Code
		switch {
		// 21000: two rows of one multi-row upsert with the same identity.
		case strings.HasPrefix(code, "23"), strings.HasPrefix(code, "22"), code == "21000":
			return classRow
		case strings.HasPrefix(code, "28"):
			return classAuth
		case strings.HasPrefix(code, "08"), code == "40001", code == "40P01", code == "55P03",
			code == "57P01", code == "57P02", code == "57P03", code == "53300":
			return classTransient
		case code == "42P01", code == "42703", code == "3F000":
			return classSchema
		case code == "3D000":
			return classConfig
		}
		return classOther
	}
	var ce *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	if errors.As(err, &ce) || errors.As(err, &ua) || errors.As(err, &hn) {
		return classTLS
	}
	var conn *pgconn.ConnectError
	if errors.As(err, &conn) {
		return classUnreachable
	}
	if c, ok := classifyCommon(err); ok {
		return c
	}
	if pgconn.SafeToRetry(err) {
		return classTransient
	}
	return classOther
}

func (d postgresDialect) message(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if d.classify(err) == classRow {
			// Data exceptions and constraint violations quote the value
			// ("invalid input syntax for type uuid: \"…\"").
			return fmt.Sprintf("the database refused a value (SQLSTATE %s)", pe.Code)
		}
		return fmt.Sprintf("%s (SQLSTATE %s)", truncate(pe.Message, 300), pe.Code)
	}
	return truncate(err.Error(), 500)
}

func (postgresDialect) rowMessage(err error, attributeOf func(string) string) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return "rejected by the database"
	}
	col := ""
	if pe.ColumnName != "" {
		col = attributeOf(pe.ColumnName) + ": "
	}
	switch pe.Code {
	case "23505":
		// Detail is "Key (col, ...)=(values) already exists.": keep the
		// column list, never the values.
		if rest, ok := strings.CutPrefix(pe.Detail, "Key ("); ok {
			if cols, _, ok := strings.Cut(rest, ")=("); ok {
				col = joinAttrs(strings.Split(cols, ","), attributeOf) + ": "
			}
		}
		return fmt.Sprintf("%salready taken (unique constraint %s)", col, pe.ConstraintName)
	case "23502":
		return col + "required (not-null constraint)"
	case "23514":
		return fmt.Sprintf("%scheck constraint %s violated", col, pe.ConstraintName)
	case "23503":
		return fmt.Sprintf("%sforeign key constraint %s violated", col, pe.ConstraintName)
	case "22001":
		// "value too long for type character varying(N)": no value in it.
		return col + truncate(pe.Message, 200)
	}
	// Other data exceptions may quote the value: name the rule only.
	return fmt.Sprintf("%svalue rejected by the database (SQLSTATE %s)", col, pe.Code)
}

// listPostgres runs List's query, which selects attrs, on a pgx
// connection of its own and reads each row's values as text in place,
// without database/sql's conversions or copies. fn gets the values of
// want, each an attribute of attrs, in strings that alias the
// connection's buffer until the next row. Only opening the cursor is
// retried: once fn has seen users, a retry would show them twice.
func (s *Directory) listPostgres(ctx context.Context, q string, args []any, attrs, want []string, fn func(*directory.User, [][]string) error) error {
	conn, err := s.read.Conn(ctx)
	if err != nil {
		return s.wrap(err, "list users")
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		var tx pgx.Tx
		var rows pgx.Rows
		err := s.retry(ctx, func() error {
			var err error
			tx, rows, err = openListing(ctx, c, q, args)
			return err
		})
		if err != nil {
			return s.wrap(err, "list users")
		}
		defer func() { _ = tx.Rollback(ctx) }() // read only: nothing to commit
		defer rows.Close()
		r := s.rowReader(attrs, want)
		for rows.Next() {
			u, vals, err := r.read(rows.RawValues())
			if err != nil {
				return err
			}
			if err := fn(u, vals); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return s.wrap(err, "list users")
		}
		return nil
	})
}

// serialScan keeps the listing's scan in the connection's own server
// process. The listing sends every row to the client: parallel workers
// would only pass the rows to it through shared memory, and cost the CPU
// the server shares with the import. The planner picks them for a table
// whose statistics are not gathered yet, as after a first import: an
// unchanged re-run of a million users then takes a fifth more time on
// two cores. A variable for the test of a server without the setting.
var serialScan = "SET LOCAL max_parallel_workers_per_gather = 0"

// openListing opens the cursor of List's query q in a read-only
// transaction that keeps the scan serial. A server that speaks
// PostgreSQL's protocol without the setting (SQLSTATE 42704) lists as its
// planner likes.
func openListing(ctx context.Context, c *pgx.Conn, q string, args []any) (pgx.Tx, pgx.Rows, error) {
	readOnly := pgx.TxOptions{AccessMode: pgx.ReadOnly}
	tx, err := c.BeginTx(ctx, readOnly)
	if err != nil {
		return nil, nil, err
	}
	if _, err = tx.Exec(ctx, serialScan); err != nil {
		_ = tx.Rollback(ctx)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42704" {
			return nil, nil, err
		}
		if tx, err = c.BeginTx(ctx, readOnly); err != nil {
			return nil, nil, err
		}
	}
	rows, err := tx.Query(ctx, q, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		_ = tx.Rollback(ctx)
		return nil, nil, err
	}
	return tx, rows, nil
}

// rowReader reads the rows of a selectList query in text format into one
// user and one slice of values, reused from row to row.
type rowReader struct {
	s       *Directory
	columns int   // of a row
	pos     []int // of each wanted attribute among the row's columns
	marker  []byte
	u       directory.User
	vals    [][]string
	singles []string
}

func (s *Directory) rowReader(attrs, want []string) *rowReader {
	r := &rowReader{s: s, columns: 3 + len(attrs), marker: []byte(s.opts.MarkerValue), vals: make([][]string, len(want)), singles: make([]string, len(want))}
	for _, a := range want {
		r.pos = append(r.pos, 3+slices.Index(attrs, a))
	}
	return r
}

func (r *rowReader) read(raw [][]byte) (*directory.User, [][]string, error) {
	if len(raw) != r.columns {
		return nil, nil, failure.Errorf(v1alpha1.ReasonDirectoryError, "list users: %d columns in a row, want %d", len(raw), r.columns)
	}
	s := r.s
	id := view(raw[0])
	active := raw[1]
	r.u = directory.User{
		ID:       id,
		Identity: id,
		Managed:  s.opts.MarkerAttribute != "" && raw[2] != nil && bytes.Equal(raw[2], r.marker),
	}
	if s.status != nil {
		r.u.Active = active == nil || string(active) != s.status.InactiveValue
	} else {
		r.u.Active = active == nil || string(active) == "t"
	}
	for i, p := range r.pos {
		v := raw[p]
		switch {
		case len(v) == 0:
			r.vals[i] = nil
		case bytes.Contains(v, []byte(Separator)):
			r.vals[i] = strings.Split(view(v), Separator)
		default:
			r.singles[i] = view(v)
			r.vals[i] = r.singles[i : i+1 : i+1]
		}
	}
	return &r.u, r.vals, nil
}

// view is b as a string that aliases it.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// userCopy is u with vals, the values of attrs, in strings of its own:
// they share one allocation, and its single values one slice.
func userCopy(u *directory.User, attrs []string, vals [][]string) directory.User {
	n := len(u.Identity)
	for _, vs := range vals {
		for _, v := range vs {
			n += len(v)
		}
	}
	text := make([]byte, 0, n)
	str := func(v string) string {
		if v == "" {
			return ""
		}
		start := len(text)
		text = append(text, v...)
		return unsafe.String(&text[start], len(v))
	}
	id := str(u.Identity)
	out := directory.User{ID: id, Identity: id, Managed: u.Managed, Active: u.Active, Attributes: make(directory.Attributes, len(attrs))}
	singles := make([]string, len(attrs))
	for i, a := range attrs {
		switch vs := vals[i]; len(vs) {
		case 0:
		case 1:
			singles[i] = str(vs[0])
			out.Attributes[a] = singles[i : i+1 : i+1]
		default:
			copied := make([]string, len(vs))
			for j, v := range vs {
				copied[j] = str(v)
			}
			out.Attributes[a] = copied
		}
	}
	return out
}
