// Package mapping turns the rows of a CSV file into directory attributes,
// following spec.mapping of a UserImport. This comment is the reference of
// the mapping language.
//
// # Entries
//
// spec.mapping is a list of entries. Each computes one directory attribute
// for every row:
//
//	mapping:
//	- attribute: userName
//	  column: email
//	  identity: true
//	  transforms: [{type: Trim}, {type: Lower}]
//	- attribute: displayName
//	  template: "{{.first_name}} {{.last_name}}"
//	- attribute: active
//	  column: active
//	  check: Boolean
//	  default: "true"
//	- attribute: hireDate
//	  column: start_date
//	  transforms: [{type: DateFormat, fromLayout: "02.01.2006", toLayout: "2006-01-02"}]
//	- attribute: groups
//	  column: groups
//	  split: ";"
//	- attribute: employeeType
//	  value: Employee
//
// An entry takes its value from exactly one source:
//
//   - column: the field of the named column (the header name, matched
//     exactly, case and spaces included);
//   - template: a Go template over the row's columns (see Templates);
//   - value: a constant, the same on every row.
//
// Then, in this order:
//
//  1. transforms change the value, one after the other (see Transforms);
//  2. default replaces the value when it is empty;
//  3. split cuts the value into several values at every occurrence of the
//     separator; each part is trimmed of spaces and empty parts are
//     dropped. Without split, an entry has one value, or none when empty;
//  4. check validates each value (see Checks);
//  5. required makes an empty result an error.
//
// An empty result is not an error unless required is set: the attribute is
// written with no values, which clears it in the directory. Leave a column
// out of the mapping to leave the attribute alone.
//
// Exactly one entry is marked identity: true. It maps the directory's
// identity attribute, the key that finds a row's user; it always has
// exactly one value, so it cannot be split and an empty identity is an
// error on its row.
//
// # Transforms
//
//   - Trim removes leading and trailing white space.
//   - Lower and Upper change the case of every letter, Unicode included,
//     one character at a time (so "ß" stays "ß").
//   - RegexReplace replaces every match of pattern (RE2 syntax, as in
//     https://github.com/google/re2/wiki/Syntax) with replacement, in which
//     $1 or ${name} stand for groups of the match and $$ for a dollar
//     sign. Write ${1}x, not $1x, to follow a group by text: $1x means the
//     group named "1x". A reference to a group the pattern does not have is
//     rejected.
//   - DateFormat parses the value with fromLayout and writes it with
//     toLayout. Layouts are Go time layouts, written with the reference time
//     Mon Jan 2 15:04:05 MST 2006: "02.01.2006" is DD.MM.YYYY,
//     "01/02/2006" is MM/DD/YYYY, "2006-01-02" is YYYY-MM-DD, "2.1.06" is
//     D.M.YY. fromLayout must hold a whole date (year, month and day). An
//     empty value is left empty, for default and required to act on.
//
// # Checks
//
//   - Email: each value is a bare e-mail address ("jane.doe@corp.example"),
//     as net/mail parses it; a display name ("Jane <jane@corp.example>"),
//     angle brackets or surrounding spaces fail. The check does not change
//     the value: the part before "@" is case-sensitive by the standard, so
//     lower-casing is left to an explicit Lower transform.
//   - Boolean: each value is true/false, yes/no or 1/0, in any case, and is
//     written as "true" or "false".
//   - Date: each value is a calendar date written YYYY-MM-DD
//     ("2024-02-29"; "2023-02-29" fails).
//
// Checks run after default and split, so a default must pass the check
// too; a default or value that does not is rejected before the file is read.
//
// # Templates
//
// A template is a Go text/template (https://pkg.go.dev/text/template) whose
// data is the row: a map from column name to field. {{.first_name}} is the
// field of column first_name. A column whose name is not a Go identifier
// (it has spaces, dashes, starts with a digit, or the file has no header
// and columns are named "1", "2", …) is read with index:
// {{index . "first name"}}. Inside {{with}}, where . is the value of the
// with, write $.first_name or {{index $ "first name"}} for columns.
//
// Templates may use if/else, with, variables ({{$d := .dept}}),
// parentheses, pipelines and these functions:
//
//	lower S                 S in lower case
//	upper S                 S in upper case
//	trim S                  S without leading and trailing white space
//	replace OLD NEW S       S with every OLD replaced by NEW
//	substr START END S      the characters (not bytes) of S from START up to,
//	                        not including, END; both are clamped to S, so
//	                        {{.first_name | substr 0 1}} is the initial, or ""
//	and, or, not, eq, ne    as in text/template; {{or .nickname .first_name}}
//	                        takes the first non-empty
//	index . "col"           the field of column "col"
//	len S                   the length of S in bytes
//
// Examples:
//
//	{{.first_name | lower}}.{{.last_name | lower}}@corp.example
//	{{.first_name | substr 0 1 | upper}}. {{.last_name}}
//	{{if eq .country "DE"}}+49 {{end}}{{.phone | replace " " ""}}
//	{{index . "Cost Center"}}-{{.department}}
//
// A template's output goes through the entry's transforms, default, split
// and check like a column's field.
//
// Templates are checked against the file's header before any row is read:
// a template that does not parse or reads a column the header does not
// have stops the import with a message naming the entry. So that a
// template runs in time and memory bounded by its own text, whatever the
// rows hold, these are not allowed: range (and break, continue), template,
// define and block, printf, print and println, and the other builtins
// (call, html, js, urlquery, slice). The row itself (.) may only be used
// as {{.column}} or {{index . "column"}}.
//
// # Limits
//
// A value longer than 64 KiB (MaxValueBytes) is an error on its row:
// whether a field of the file, the output of a template or the result of a
// transform. A template fails the same way when a function would build a
// longer text.
//
// # Errors
//
// Mistakes in the mapping are found before any row is read (Compile) and
// name the entry: "mapping[mail]: column "e_mail" is not in the file's
// header; columns are: …". Errors on a row name the attribute and the rule
// broken, never the value, because values are personal data and errors
// reach the UserImport's status and Events:
//
//	mail: not an e-mail address
//	userName: required but empty
//	userName: identity is empty
//	hireDate: not a date (YYYY-MM-DD)
//	startDate: does not match layout 02.01.2006
//	active: not a boolean (true/false, yes/no, 1/0)
//	displayName: template failed at 1:15
//
// A row with errors is reported by its line and skipped; every error of
// the row is reported, not only the first.
package mapping
