package ldap

import (
	"context"
	"slices"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/samba"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

// spellings are pairs of an identity as a directory holds it and as a
// line may spell it. The fold the provider reports must find a pair
// equal exactly where the server's equality filter does: where it finds
// them equal and the server does not, a full import takes the line for a
// user the server calls another; where it tells apart what the server
// finds equal, the user the line names is deprovisioned as missing.
var spellings = [][2]string{
	{"ann.lee", "ANN.LEE"},
	{"zoë", "ZOË"},
	{"ann lee", "ann   lee"},
	{"ann lee", " ann lee "},
	{"ann lee", "ann\u00a0lee"},
	{"jose\u0301", "jos\u00e9"},
	{"\ufb01sh", "fish"},
	{"straße", "strasse"},
	{"ann\tlee", "ann lee"},
	{"ann\u00adlee", "annlee"},
	{"ǆ", "ǅ"},
	{"ǈ", "Ǉ"},
	{"ǉ", "Ǉ"},
	{"ΟΔΟΣ", "οδος"},
	{"οδοσ", "οδος"},
	{"ſam", "sam"},
	{"\u212aim", "kim"},
	{"ıan", "ian"},
	{"İan", "ian"},
	{"ａnn", "ann"},
	{"ａnn", "Ａnn"},
	{"ÿ", "Ÿ"},
	{"Ω", "ω"},
	{"\u2126", "ω"},
	{"\u212b", "å"},
	{"𐐨", "𐐀"},
}

// newerLetters are pairs that the provider's fold, from a newer Unicode
// than the servers' case tables, finds equal where a server may tell
// them apart. Only that side of an error is allowed: it names a user by
// a spelling the server calls another, and deprovisions no one.
var newerLetters = [][2]string{
	{"ß", "ẞ"},      // Unicode 5.1
	{"ɐ", "Ɐ"},      // 5.1
	{"ȿ", "Ȿ"},      // 5.2
	{"ꭰ", "Ꭰ"},      // 8.0
	{"ᲀ", "в"},      // 9.0
	{"ა", "Ა"},      // 11.0
	{"ⓐ", "Ⓐ"},      // OpenLDAP lowers letters only
	{"ⅰ", "Ⅰ"},      // the same
	{"ѐ", "Ѐ"},      // Samba's table lacks these
	{"µ", "Μ"},      // the same
	{"ι", "\u0345"}, // the same
}

// agreesWithTheServer creates each pair's first spelling with d, asks the
// server for the second with an equality filter on attr, and compares
// the answer with d's fold. refused are spellings the server refuses to
// hold.
func agreesWithTheServer(t *testing.T, d *Directory, conn func() (*ldap.Conn, error), baseDN, attr string, attrs func(id string) directory.Attributes, refused ...string) {
	t.Helper()
	ctx := context.Background()
	fold, err := d.IdentityFold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := conn()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	equal := func(held, asked string) (bool, bool) {
		res, err := d.Apply(ctx, []directory.Change{create(held, attrs(held))})
		if err != nil {
			t.Fatal(err)
		}
		if err := res[0].Err; err != nil {
			if !slices.Contains(refused, held) {
				t.Fatalf("create %q: %v", held, err)
			}
			return false, false
		}
		if slices.Contains(refused, held) {
			t.Errorf("the server holds %q, which it refused", held)
		}
		found, err := c.Search(ldap.NewSearchRequest(baseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			"("+attr+"="+ldap.EscapeFilter(asked)+")", []string{"1.1"}, nil))
		if err != nil {
			t.Fatalf("search %q for %q: %v", asked, held, err)
		}
		mustApply(t, d, directory.Change{Op: directory.OpDelete, Line: 2, Identity: held, ID: res[0].ID})
		return len(found.Entries) == 1, true
	}
	for _, p := range spellings {
		server, held := equal(p[0], p[1])
		if ours := fold(p[0]) == fold(p[1]); held && ours != server {
			t.Errorf("held %q, asked %q: the server finds them equal: %v; the fold: %v", p[0], p[1], server, ours)
		}
	}
	for _, p := range newerLetters {
		if server, _ := equal(p[0], p[1]); server && fold(p[0]) != fold(p[1]) {
			t.Errorf("held %q, asked %q: the server finds them equal, the fold does not", p[0], p[1])
		}
	}
}

func TestIdentityFoldAgreesWithTheServer(t *testing.T) {
	t.Run("OpenLDAP uid", func(t *testing.T) {
		s := slapd.Start(t, slapd.Options{})
		d := newDir(t, s, baseSpec(s), baseOpts())
		agreesWithTheServer(t, d, s.Dial, s.PeopleDN, "uid", func(id string) directory.Attributes {
			return directory.Attributes{"uid": {id}, "cn": {"Ann Lee"}, "sn": {"Lee"}, marker: {markerValue}}
		})
	})
	t.Run("Active Directory sAMAccountName", func(t *testing.T) {
		dc := samba.Start(t)
		d := newAD(t, dc, dc.Spec())
		agreesWithTheServer(t, d, dc.Conn, dc.StaffDN, "sAMAccountName", func(id string) directory.Attributes {
			return directory.Attributes{"sAMAccountName": {id}, "cn": {"Ann Lee " + id}, "sn": {"Lee"}}
		}, "ann\tlee")
	})
}
