package recoverycode

import (
	"fmt"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

func TestCodesAreDerivedFromKeyAndIdentity(t *testing.T) {
	k1, _ := NewKey()
	k2, _ := NewKey()
	g1, _ := NewGenerator(k1)
	g2, _ := NewGenerator(k2)
	a := g1.Code("ann@example.com")
	if a != g1.Code("ann@example.com") {
		t.Fatal("the same key and identity gave two codes")
	}
	if a == g1.Code("bob@example.com") || a == g2.Code("ann@example.com") {
		t.Fatal("another identity or key gave the same code")
	}
	if len(a) != 23 || strings.Count(a, "-") != 3 || strings.Trim(strings.ReplaceAll(a, "-", ""), Alphabet) != "" {
		t.Fatalf("code %q is not 4 groups of 5 of the alphabet", a)
	}
	for _, c := range "0O1lI" {
		if strings.ContainsRune(Alphabet, c) {
			t.Fatalf("the alphabet holds the look-alike %q", c)
		}
	}
	if Bits < MinBits || Strength(a) < MinBits {
		t.Fatalf("a generated code has %.0f bits (estimated %.0f), want at least %d", Bits, Strength(a), MinBits)
	}
	if _, err := NewGenerator(k1[:16]); err == nil {
		t.Fatal("a short key was taken")
	}
}

func TestCheckRefusesWeakCodes(t *testing.T) {
	for _, weak := range []string{"", "1234-5678", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "Summer2026!"} {
		err := Check(weak)
		if err == nil {
			t.Fatalf("%q was taken", weak)
		}
		if weak != "" && strings.Contains(err.Error(), weak) {
			t.Fatalf("the error quotes the code: %v", err)
		}
	}
	for _, strong := range []string{"Kq7-Xw2-Rt9-Zp4-Lm8-Vb3-Hn6", "K7QX2-W9RTZ-P4LM8-VB3HN"} {
		if err := Check(strong); err != nil {
			t.Fatalf("%q: %v", strong, err)
		}
	}
}

func TestHashesVerify(t *testing.T) {
	for _, tc := range []struct {
		scheme v1alpha1.RecoveryCodeScheme
		ldap   bool
		prefix string
	}{
		{v1alpha1.SchemeSSHA512, true, "{SSHA512}"},
		{v1alpha1.SchemeSSHA256, true, "{SSHA256}"},
		{v1alpha1.SchemeArgon2id, true, "{ARGON2}$argon2id$v=19$m=64,t=1,p=1$"},
		{v1alpha1.SchemeArgon2id, false, "$argon2id$v=19$m=64,t=1,p=1$"},
		{v1alpha1.SchemeBcrypt, false, "$2a$04$"},
	} {
		h, err := NewHasher(tc.scheme, tc.ldap, Costs{MemoryKiB: 64, Iterations: 1, BcryptCost: 4})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := h.Hash("K7QX2-W9RTZ-P4LM8-VB3HN")
		b, _ := h.Hash("K7QX2-W9RTZ-P4LM8-VB3HN")
		if !strings.HasPrefix(a, tc.prefix) || a == b {
			t.Fatalf("%s: %q, %q: want the prefix %q and a fresh salt each time", tc.scheme, a, b, tc.prefix)
		}
		if ok, err := Verify(a, "K7QX2-W9RTZ-P4LM8-VB3HN"); !ok || err != nil {
			t.Fatalf("%s: the code does not verify (%v)", tc.scheme, err)
		}
		if ok, _ := Verify(a, "K7QX2-W9RTZ-P4LM8-VB3HM"); ok {
			t.Fatalf("%s: another code verifies", tc.scheme)
		}
	}
	for _, tc := range []struct {
		scheme v1alpha1.RecoveryCodeScheme
		ldap   bool
	}{{v1alpha1.SchemeSSHA512, false}, {v1alpha1.SchemeBcrypt, true}, {"MD5", true}} {
		if _, err := NewHasher(tc.scheme, tc.ldap, Costs{}); err == nil {
			t.Fatalf("%s (ldap %v) was taken", tc.scheme, tc.ldap)
		}
	}
}

// Every generated code meets a complexity rule of three character
// classes (Active Directory's): a capital, a digit and a dash.
func TestEveryCodeHasACapitalADigitAndADash(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(key)
	if err != nil {
		t.Fatal(err)
	}
	fixed := 0
	for i := range 20000 {
		code := g.Code(fmt.Sprintf("user%d@corp.example", i))
		if !strings.ContainsAny(code, "23456789") || !strings.ContainsAny(code, "ABCDEFGHJKMNPQRSTUVWXYZ") || !strings.Contains(code, "-") {
			t.Fatalf("code %d lacks a class of characters", i)
		}
		if Check(code) != nil {
			t.Fatalf("code %d is weak: %v", i, Check(code))
		}
		if !strings.ContainsAny(code[:len(code)-1], "23456789") {
			fixed++
		}
	}
	// About one in 400 is drawn without a digit: the test draws enough
	// to see the mapping at work.
	if fixed == 0 {
		t.Fatal("no code needed its last character mapped: the case is not exercised")
	}
}
