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
	// Unique indexes, with their key columns: a one-column one is what
	// ON CONFLICT (column) can use; none may be partial or on an
	// expression, or deferred.
	rows, err = db.QueryContext(ctx, `SELECT string_agg(a.attname::text, chr(1) ORDER BY k.n) FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1::bigint::oid AND i.indisunique AND i.indimmediate
		  AND i.indpred IS NULL AND i.indexprs IS NULL AND k.n <= i.indnkeyatts
		GROUP BY i.indexrelid`, oid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var cols string
		if err := rows.Scan(&cols); err != nil {
			return nil, err
		}
		sc.addUnique(postgresDialect{}, strings.Split(cols, "\x01"))
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

// listPostgres runs List's query on a pgx connection of its own and
// reads each row's values as text, without database/sql's conversions: a
// full import lists every managed user, and this is most of what an
// unchanged re-run costs. Only opening the cursor is retried: once fn
// has seen users, a retry would show them twice.
func (s *Directory) listPostgres(ctx context.Context, q string, args []any, attrs []string, fn func(directory.User) error) error {
	conn, err := s.read.Conn(ctx)
	if err != nil {
		return s.wrap(err, "list users")
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		var rows pgx.Rows
		err := s.retry(ctx, func() error {
			var err error
			rows, err = c.Query(ctx, q, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
			return err
		})
		if err != nil {
			return s.wrap(err, "list users")
		}
		defer rows.Close()
		marker := []byte(s.opts.MarkerValue)
		for rows.Next() {
			u, err := s.userOf(rows.RawValues(), attrs, marker)
			if err != nil {
				return err
			}
			if err := fn(u); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return s.wrap(err, "list users")
		}
		return nil
	})
}

// userOf reads one row of a selectList query, in text format. The row's
// strings share one allocation, and its single values one slice.
func (s *Directory) userOf(vals [][]byte, attrs []string, marker []byte) (directory.User, error) {
	if len(vals) != 3+len(attrs) {
		return directory.User{}, failure.Errorf(v1alpha1.ReasonDirectoryError, "list users: %d columns in a row, want %d", len(vals), 3+len(attrs))
	}
	n := len(vals[0])
	for _, v := range vals[3:] {
		n += len(v)
	}
	text := make([]byte, 0, n)
	str := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		start := len(text)
		text = append(text, b...)
		return unsafe.String(&text[start], len(b))
	}
	id := str(vals[0])
	active := vals[1]
	u := directory.User{
		ID:       id,
		Identity: id,
		Managed:  s.opts.MarkerAttribute != "" && vals[2] != nil && bytes.Equal(vals[2], marker),
	}
	if s.status != nil {
		u.Active = active == nil || string(active) != s.status.InactiveValue
	} else {
		u.Active = active == nil || string(active) == "t"
	}
	u.Attributes = make(directory.Attributes, len(attrs))
	singles := make([]string, len(attrs))
	for i, a := range attrs {
		v := vals[3+i]
		if len(v) == 0 {
			continue
		}
		if bytes.Contains(v, []byte(Separator)) {
			u.Attributes[a] = strings.Split(str(v), Separator)
			continue
		}
		singles[i] = str(v)
		u.Attributes[a] = singles[i : i+1 : i+1]
	}
	return u, nil
}
