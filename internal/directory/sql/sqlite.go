package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/userimport/user-import-operator/internal/directory"
)

// sqliteParams apply to every connection: WAL so that readers never block
// the writer, a busy timeout instead of immediate SQLITE_BUSY, and foreign
// keys enforced as a user's schema expects.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)"

// sqliteURI turns a file path (or a "file:" URI) into a URI for the driver.
// With create false the file must exist (mode=rw): a mistyped path is
// reported rather than silently becoming an empty database.
func sqliteURI(dsn string, create bool, extra string) string {
	uri := dsn
	if !strings.HasPrefix(dsn, "file:") {
		uri = "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(dsn)
	}
	params := sqliteParams
	if !create {
		params += "&mode=rw"
	}
	if extra != "" {
		params += "&" + extra
	}
	if strings.Contains(uri, "?") {
		return uri + "&" + params
	}
	return uri + "?" + params
}

// walPages is the writer's wal_autocheckpoint: the pages the write-ahead
// log grows to before they are copied into the database (64 MiB at the
// default page size; SQLite's own default is 1,000 pages). Identities
// in no particular order (e-mail addresses) land all over their unique
// index, so that a transaction dirties a page of the index per row or
// so: copied back every 1,000 pages, each page was written again after
// every few transactions, and a million users took five times as long as
// a million numbered ones.
const walPages = 16384

// openSQLite opens a reader pool and a single writer connection: SQLite
// allows one writer at a time, so Apply batches queue for the writer
// instead of failing with SQLITE_BUSY. Write transactions begin IMMEDIATE
// so that they take the write lock up front.
func openSQLite(dsn string, concurrency int) (read, write *stdsql.DB, err error) {
	read, err = stdsql.Open("sqlite", sqliteURI(dsn, false, ""))
	if err != nil {
		return nil, nil, err
	}
	read.SetMaxOpenConns(concurrency + 2)
	read.SetMaxIdleConns(concurrency + 2)
	write, err = stdsql.Open("sqlite", sqliteURI(dsn, false, fmt.Sprintf("_txlock=immediate&_pragma=wal_autocheckpoint(%d)", walPages)))
	if err != nil {
		read.Close()
		return nil, nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	return read, write, nil
}

type sqliteDialect struct{}

func (sqliteDialect) placeholder(int) string       { return "?" }
func (sqliteDialect) textExpr(col string) string   { return quote(col) }
func (sqliteDialect) normColumn(col string) string { return strings.ToLower(col) }
func (sqliteDialect) cachesStatements() bool       { return false }
func (sqliteDialect) isBoolean(typ string) bool {
	// SQLite has no boolean type: booleans are integers 0 and 1. Accept
	// the declared types that have integer or numeric affinity.
	t := strings.ToUpper(typ)
	return strings.Contains(t, "BOOL") || strings.Contains(t, "INT") || strings.Contains(t, "NUMERIC") || t == ""
}

// identityFold follows the collations SQLite has built in: BINARY
// compares exactly, NOCASE without regard to the case of A to Z, RTRIM
// without the spaces that end a value.
func (sqliteDialect) identityFold(c columnInfo) (func(string) string, string) {
	var fold func(string) string
	for _, coll := range c.compares {
		var f func(string) string
		switch strings.ToUpper(coll) {
		case "":
			continue
		case "NOCASE":
			f = directory.FoldASCIICase
		case "RTRIM":
			f = directory.FoldTrailingSpaces
		default:
			return nil, "its unique index uses the collation " + coll + ", which the provider cannot follow"
		}
		if fold != nil {
			return nil, "its unique indexes use two collations, " + strings.Join(c.compares, " and ")
		}
		fold = f
	}
	return fold, ""
}

func (d sqliteDialect) loadSchema(ctx context.Context, db *stdsql.DB, table []string) (*schema, error) {
	schemaName, name := "main", table[0]
	if len(table) == 2 {
		schemaName, name = table[0], table[1]
	}
	rows, err := db.QueryContext(ctx, "SELECT name, type, pk FROM pragma_table_info(?, ?)", name, schemaName)
	if err != nil {
		return nil, err
	}
	sc := &schema{columns: map[string]columnInfo{}}
	var pkCols []string
	for rows.Next() {
		var c columnInfo
		var pk int
		if err := rows.Scan(&c.name, &c.typ, &pk); err != nil {
			rows.Close()
			return nil, err
		}
		sc.columns[d.normColumn(c.name)] = c
		if pk > 0 {
			pkCols = append(pkCols, c.name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(sc.columns) == 0 {
		return nil, nil
	}
	if len(pkCols) == 1 {
		// An INTEGER PRIMARY KEY has no index of its own to find below.
		sc.addUnique(d, pkCols, "")
	}

	var indexes []string
	rows, err = db.QueryContext(ctx, `SELECT name FROM pragma_index_list(?, ?) WHERE "unique" AND NOT partial`, name, schemaName)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		indexes = append(indexes, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, idx := range indexes {
		var cols []stdsql.NullString
		compare := ""
		rows, err := db.QueryContext(ctx, "SELECT name, coll FROM pragma_index_xinfo(?, ?) WHERE key", idx, schemaName)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var n stdsql.NullString // NULL for an expression
			var coll string
			if err := rows.Scan(&n, &coll); err != nil {
				rows.Close()
				return nil, err
			}
			cols = append(cols, n)
			if !strings.EqualFold(coll, "BINARY") {
				compare = coll
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		names := make([]string, 0, len(cols))
		for _, c := range cols {
			if !c.Valid {
				names = nil
				break
			}
			names = append(names, c.String)
		}
		if names != nil {
			sc.addUnique(d, names, compare)
		}
	}
	return sc, nil
}

func sqliteCode(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	return 0, false
}

func (sqliteDialect) classify(err error) errClass {
	code, ok := sqliteCode(err)
	if !ok {
		c, _ := classifyCommon(err)
		return c
	}
	switch code & 0xff {
	case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
		return classRow
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return classTransient
	case sqlite3.SQLITE_CANTOPEN:
		return classUnreachable
	case sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH, sqlite3.SQLITE_READONLY:
		return classAuth
	case sqlite3.SQLITE_NOTADB:
		return classConfig
	case sqlite3.SQLITE_ERROR:
		msg := err.Error()
		if strings.Contains(msg, "no such table") || strings.Contains(msg, "no such column") ||
			strings.Contains(msg, "has no column named") {
			return classSchema
		}
	}
	return classOther
}

func (sqliteDialect) message(err error) string { return truncate(err.Error(), 500) }

// sqliteConstraint matches SQLite's constraint messages, which name the
// constraint and the columns ("UNIQUE constraint failed: users.mail"),
// never the values.
var sqliteConstraint = regexp.MustCompile(`(UNIQUE|NOT NULL|CHECK|FOREIGN KEY|PRIMARY KEY) constraint failed(?:: ([^()]*))?`)

func (sqliteDialect) rowMessage(err error, attributeOf func(string) string) string {
	code, _ := sqliteCode(err)
	m := sqliteConstraint.FindStringSubmatch(err.Error())
	if m == nil {
		if code&0xff == sqlite3.SQLITE_TOOBIG {
			return "value too big"
		}
		return fmt.Sprintf("value rejected by the database (SQLite code %d)", code)
	}
	kind, what := m[1], strings.TrimSpace(m[2])
	var cols []string
	if kind == "UNIQUE" || kind == "NOT NULL" || kind == "PRIMARY KEY" {
		for _, tc := range strings.Split(what, ",") {
			tc = strings.TrimSpace(tc)
			if i := strings.LastIndexByte(tc, '.'); i >= 0 {
				tc = tc[i+1:]
			}
			cols = append(cols, tc)
		}
	}
	switch kind {
	case "UNIQUE", "PRIMARY KEY":
		return joinAttrs(cols, attributeOf) + ": already taken (unique constraint)"
	case "NOT NULL":
		return joinAttrs(cols, attributeOf) + ": required (not-null constraint)"
	case "CHECK":
		return "check constraint " + truncate(what, 200) + " violated"
	}
	return "foreign key constraint violated"
}
