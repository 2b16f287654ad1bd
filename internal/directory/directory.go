// Package directory defines what an import needs from a user directory.
// Providers (SCIM, LDAP, SQL) implement Directory; the engine plans and
// applies changes through it without knowing which one it talks to.
package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
)

// Attributes maps attribute names, in the vocabulary of the import's
// mapping ("userName", "name.givenName", "mail", a column), to values. A
// single-valued attribute has one value; an absent or empty attribute has
// none.
type Attributes map[string][]string

// User is one user as the directory holds it.
type User struct {
	// ID is the directory's own key: a SCIM id, an LDAP DN, an SQL row key.
	ID string
	// Identity is the value of the directory's identity attribute.
	Identity string
	// Attributes holds the attributes that were asked for, in the form
	// Apply takes them, so that a user written from a row and read back
	// compares equal to that row.
	Attributes Attributes
	// Active is false for a deactivated user.
	Active bool
	// Managed is true when the user carries the managed-user marker.
	Managed bool
}

// Op is the kind of a change.
type Op int

const (
	// OpCreate adds a user.
	OpCreate Op = iota + 1
	// OpUpdate changes some attributes of a user (and may reactivate it).
	OpUpdate
	// OpDeactivate deactivates a user.
	OpDeactivate
	// OpDelete deletes a user.
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	case OpDeactivate:
		return "deactivate"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Change is one write to the directory.
type Change struct {
	Op Op
	// Line is the CSV line the change comes from; 0 for users that a full
	// import deprovisions because the file does not list them.
	Line int64
	// Identity of the user.
	Identity string
	// ID of the existing user, for updates, deactivations and deletions.
	ID string
	// Attributes: every mapped attribute for a create (the marker
	// included), only the attributes that differ for an update. An
	// attribute with no values is removed.
	Attributes Attributes
	// Reactivate makes an update also activate a deactivated user.
	Reactivate bool
}

// Result is the outcome of one change of a batch.
type Result struct {
	// ID of a created user.
	ID string
	// Err is nil when the change was written, or a *ChangeError when the
	// directory refused this change alone (a uniqueness conflict, an
	// invalid value); the rest of the batch is unaffected.
	Err error
}

// Directory is a user directory. Implementations are safe for concurrent
// use: the engine applies several batches at once, up to the directory's
// concurrency setting. Transient failures (throttling, unavailability,
// dropped connections) are retried inside the provider with backoff; an
// error returned means the retries were exhausted or the failure is
// permanent.
type Directory interface {
	// Check verifies that the directory is reachable and accepts the
	// credentials, and reports what it offers.
	Check(ctx context.Context) (Capabilities, error)
	// List calls fn for every user in scope (only managed users when the
	// scope is Managed), with the named attributes. A failure to read is
	// an error, never an empty result.
	List(ctx context.Context, attributes []string, fn func(User) error) error
	// Lookup returns the users with the given identities, keyed by
	// identity; identities not found are absent from the map. Users out of
	// scope are returned too, with Managed false.
	Lookup(ctx context.Context, identities []string, attributes []string) (map[string]User, error)
	// Apply writes a batch. Results are index-aligned with changes.
	Apply(ctx context.Context, changes []Change) ([]Result, error)
	// Close releases connections.
	Close() error
}

// ValueLister is implemented by directories that list users more cheaply
// when the caller keeps nothing of them. ListValues calls fn for every
// user in scope as List does, with u.Attributes nil and values[i] the
// values of attributes[i]. u, values and their strings are valid only
// during the call: fn copies what it keeps.
type ValueLister interface {
	ListValues(ctx context.Context, attributes []string, fn func(u *User, values [][]string) error) error
}

// ValueChecker is implemented by directories with rules on values that
// are known before any write, such as Active Directory's on
// sAMAccountName. The engine checks every mapped value in the preview
// and the import: a value that breaks a rule is its line's error, and the
// line still protects its user.
type ValueChecker interface {
	// CheckValue returns why value may not be written to attribute, or "".
	// The message names the attribute and the rule, never the value.
	CheckValue(attribute, value string) string
}

// UnmanagedProber is implemented by directories that can tell cheaply
// whether any user lies outside the managed scope. A full import whose
// directory has none skips looking up its creates before writing them:
// on a first import into a fresh directory those lookups cost the server
// as much as the writes.
type UnmanagedProber interface {
	// HasUnmanaged tells whether at least one user that Lookup could find
	// lacks the marker.
	HasUnmanaged(ctx context.Context) (bool, error)
}

// IdentityFolder is implemented by directories in which two spellings of
// an identity can name one user: LDAP's uid, mail, sAMAccountName and
// userPrincipalName ignore case and runs of blanks, SCIM's userName
// ignores case, and so does an SQL identity column of type citext or with
// the collation NOCASE. A full import matches a row with the user it
// listed under the directory's own comparison; read exactly, the row
// would take over that user as a create, and the user, missing from the
// file under its own spelling, would be deprovisioned.
type IdentityFolder interface {
	// IdentityFold returns the function that maps an identity to the key
	// by which the directory tells identities apart, or nil when it
	// compares them exactly. An error when it cannot tell: an import that
	// compared exactly there could deprovision the users a file names.
	IdentityFold(ctx context.Context) (func(identity string) string, error)
}

// FoldCase is the key of an identity compared without regard to case.
func FoldCase(identity string) string { return strings.ToLower(identity) }

// FoldCaseFully is the key of an identity compared without regard to
// case as the full Unicode case mapping lowers it, as ICU does: "İ" to
// "i̇", a final "Σ" to "ς". (FoldCase lowers one letter to one, as the C
// library does.)
func FoldCaseFully(identity string) string {
	c := fullLower.Get().(cases.Caser)
	defer fullLower.Put(c)
	return c.String(identity)
}

// fullLower holds Casers, which may not be shared between goroutines.
var fullLower = sync.Pool{New: func() any { return cases.Lower(language.Und) }}

// FoldCaseLoosely is the key of an identity compared without regard to
// case by whichever mapping a server follows: one letter to one, as Go
// and .NET lower, or fully, as JavaScript, Java and ICU lower and fold
// ("ΟΔΟΣ" is "οδος" and "οδοσ", "STRASSE" is "straße", "İ" is "i" and
// "i̇"). Two spellings that some mapping finds equal get one key: taken
// apart, a line whose user the server finds under its spelling would be
// a create the server refuses, and the user, missing from the file,
// deprovisioned.
func FoldCaseLoosely(identity string) string {
	for i := 0; i < len(identity); i++ {
		if identity[i] >= utf8.RuneSelf {
			c := caseFold.Get().(cases.Caser)
			defer caseFold.Put(c)
			// Lowered fully, "İ" is "i" and a combining dot above.
			return strings.ReplaceAll(c.String(strings.ToLower(identity)), "i\u0307", "i")
		}
	}
	return strings.ToLower(identity)
}

// caseFold holds Casers of Unicode's full case folding.
var caseFold = sync.Pool{New: func() any { return cases.Fold() }}

// FoldASCIICase is the key of an identity compared without regard to the
// case of the letters A to Z only, as SQLite's collation NOCASE compares.
func FoldASCIICase(identity string) string {
	for i := 0; i < len(identity); i++ {
		if c := identity[i]; 'A' <= c && c <= 'Z' {
			b := []byte(identity)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return identity
}

// FoldTrailingSpaces is the key of an identity compared without regard
// to the spaces that end it, as SQLite's collation RTRIM compares.
func FoldTrailingSpaces(identity string) string { return strings.TrimRight(identity, " ") }

// FoldCaseAndBlanks is the key of an identity compared as LDAP compares
// a directory string (RFC 4518): without regard to case, in Unicode's
// compatibility form (NFKC: "josé" composed or with a combining accent,
// "ﬁ" as "fi"), with every space character (a no-break space too) read
// as a blank, the blanks around it ignored and a run of them inside read
// as one.
func FoldCaseAndBlanks(identity string) string {
	if plainASCII(identity) {
		return strings.ToLower(identity)
	}
	return collapseBlanks(norm.NFKC.String(identity), func(r rune) bool { return unicode.Is(unicode.Zs, r) }, unicode.ToLower)
}

// FoldUpperCaseAndSpaces is the key of an identity compared as Active
// Directory compares a Unicode string (as the Samba AD DC does): letter
// by letter as upper case maps it (so "ς", "σ" and "Σ" are one letter;
// see upperAsAD), the spaces around it ignored and a run of them inside
// read as one. Nothing else is folded: a no-break space, a combining
// accent and a ligature make another name.
func FoldUpperCaseAndSpaces(identity string) string {
	if plainASCII(identity) {
		return strings.ToUpper(identity)
	}
	return collapseBlanks(identity, func(r rune) bool { return r == ' ' }, upperAsAD)
}

// plainASCII tells whether identity is ASCII without spaces around it or
// a run of them inside, which folding blanks leaves as it is.
func plainASCII(identity string) bool {
	for i := 0; i < len(identity); i++ {
		c := identity[i]
		if c >= utf8.RuneSelf || c == ' ' && (i == 0 || i == len(identity)-1 || identity[i+1] == ' ') {
			return false
		}
	}
	return true
}

// collapseBlanks maps each letter of identity with letter, drops the
// blanks around it and writes a run of them inside as one space.
func collapseBlanks(identity string, blank func(rune) bool, letter func(rune) rune) string {
	var b strings.Builder
	b.Grow(len(identity))
	pending := false
	for _, r := range identity {
		if blank(r) {
			pending = b.Len() > 0
			continue
		}
		if pending {
			b.WriteByte(' ')
			pending = false
		}
		b.WriteRune(letter(r))
	}
	return b.String()
}

// upperAsAD is r in upper case as the Samba AD DC's table maps it: in
// the Basic Multilingual Plane, a title-case letter ("ǅ") kept as it is,
// and no letter beyond ASCII mapped into it ("ı" is not "I", nor "ſ"
// "S").
func upperAsAD(r rune) rune {
	if r > 0xFFFF || unicode.Is(unicode.Lt, r) {
		return r
	}
	if u := unicode.ToUpper(r); u >= utf8.RuneSelf || r < utf8.RuneSelf {
		return u
	}
	return r
}

// Capabilities are what a directory offers.
type Capabilities struct {
	Bulk                bool
	MaxBulkOperations   int
	MaxBulkPayloadBytes int64
	Patch               bool
	Filter              bool
	PagedSearch         bool
}

// Options are the settings every provider takes from the UserDirectory.
type Options struct {
	// IdentityAttribute names the attribute that identifies users.
	IdentityAttribute string
	// ManagedOnly limits List to users that carry the marker.
	ManagedOnly bool
	// MarkerAttribute and MarkerValue mark managed users.
	MarkerAttribute string
	MarkerValue     string
	// Concurrency is the number of batches applied at once; providers
	// size connection pools by it.
	Concurrency int
	// RateLimit caps requests per second; 0 means no limit.
	RateLimit int
	// MaxRetries bounds the retries of a transient failure.
	MaxRetries int
	// RequestTimeout bounds one request; one that takes longer is
	// abandoned and retried like a dropped connection. 0: the provider's
	// own default.
	RequestTimeout time.Duration
	// DialControl, when set, checks every connection's address after its
	// name was resolved (egress.Policy.Control): the manager and its
	// in-process runs reach no address an operator has not allowed.
	DialControl func(network, address string, c syscall.RawConn) error `json:"-"`
}

// ChangeError is a change the directory refused on its own. Its message must
// not contain attribute values (they are personal data): it names the
// attribute and the rule, e.g. "userName: already taken (409 uniqueness)".
type ChangeError struct {
	Msg string
}

func (e *ChangeError) Error() string { return e.Msg }

// IsChangeError tells whether err is a *ChangeError.
func IsChangeError(err error) bool {
	var r *ChangeError
	return errors.As(err, &r)
}
