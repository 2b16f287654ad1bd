package samba

import "testing"

func TestDCSignsInItsAdministrator(t *testing.T) {
	dc := Start(t)
	if err := dc.CanSignIn(dc.BindDN, dc.BindPassword); err != nil {
		t.Fatalf("the Administrator cannot sign in: %v", err)
	}
	if err := dc.CanSignIn(dc.BindDN, "wrong"); err == nil {
		t.Fatal("a wrong password signs in")
	}
}
