package mapping

import (
	"net/mail"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// netMailBare is the Email check as net/mail alone decides it.
func netMailBare(v string) bool {
	a, err := mail.ParseAddress(v)
	return err == nil && a.Name == "" && a.Address == v
}

var emailSeeds = []string{
	"jane.doe@corp.example", "j@x", "a.b.c@d.e.f", "x+tag@corp.example",
	"o'brien@corp.example", "!#$%&'*+-/=?^_`{|}~@x", "jane.doe@corp.example.",
	".jane@corp.example", "jane.@corp.example", "ja..ne@corp.example",
	"jane@corp..example", "jane@.corp", "@corp.example", "jane@", "jane",
	"jane@@corp", "ja@ne@corp", "Jane <jane@corp.example>", "<jane@corp.example>",
	" jane@corp.example", "jane@corp.example ", "jane@corp.example (Jane)",
	`"jane doe"@corp.example`, `"jane"@corp.example`, "jane@[127.0.0.1]",
	"jörg@corp.example", "jane@bücher.example", "jane@corp\texample",
	"ja ne@corp", "ja\x00ne@corp", "jane@corp\xff", "ja(ne)@corp", "jane@corp,x",
	"jane@corp;x", "jane@corp:x", "jane\\@corp", "", "@", ".@.", "a@b.", "a@-",
}

// TestEmailCheckFastPath: the plain-address shortcut accepts only what
// net/mail accepts, and the check as a whole accepts exactly net/mail's set.
func TestEmailCheckFastPath(t *testing.T) {
	plain := 0
	for _, v := range emailSeeds {
		if plainAddress(v) {
			plain++
			if !netMailBare(v) {
				t.Errorf("plainAddress accepts %q, net/mail does not", v)
			}
		}
		if isEmail(v) != netMailBare(v) {
			t.Errorf("isEmail(%q) = %v, net/mail says %v", v, isEmail(v), netMailBare(v))
		}
	}
	// The shortcut must actually take the common shapes.
	for _, v := range []string{"jane.doe@corp.example", "x+tag@corp.example", "a.b.c@d.e.f"} {
		if !plainAddress(v) {
			t.Errorf("plainAddress rejects the common address %q", v)
		}
	}
	if plain == 0 {
		t.Fatal("no seed took the fast path")
	}
}

// FuzzEmailCheck compares the Email check with net/mail on any input:
//
//	go test -run '^$' -fuzz FuzzEmailCheck ./internal/mapping
func FuzzEmailCheck(f *testing.F) {
	for _, v := range emailSeeds {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		want := netMailBare(v)
		if plainAddress(v) && !want {
			t.Fatalf("plainAddress accepts %q, net/mail does not", v)
		}
		if got, _ := check(v1alpha1.CheckEmail).apply(v); (got != "") != want {
			t.Fatalf("Email check of %q: accepted=%v, net/mail says %v", v, got != "", want)
		}
	})
}
