package slapd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestServerAnswersOnAllTransports(t *testing.T) {
	s := Start(t, Options{})

	plain, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	res, err := plain.Search(ldap.NewSearchRequest(s.PeopleDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"ou"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("base entry %s: %v", s.PeopleDN, err)
	}

	st, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.StartTLS(s.TLSConfig()); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := st.Bind(s.BindDN, s.BindPassword); err != nil {
		t.Fatalf("bind over StartTLS: %v", err)
	}

	tl, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.TLSConfig()))
	if err != nil {
		t.Fatalf("ldaps: %v", err)
	}
	defer tl.Close()
	if err := tl.Bind(s.BindDN, s.BindPassword); err != nil {
		t.Fatalf("bind over ldaps: %v", err)
	}
}

func TestLDAPAddContinuesPastErrors(t *testing.T) {
	s := Start(t, Options{})
	var b strings.Builder
	for i := range 3 {
		fmt.Fprintf(&b, "dn: uid=u%d,%s\nobjectClass: inetOrgPerson\nuid: u%d\ncn: u%d\nsn: u%d\n\n", i, s.PeopleDN, i, i, i)
	}
	if err := s.LDAPAdd(context.Background(), []byte(b.String())); err != nil {
		t.Fatal(err)
	}
	// Adding the same entries again fails each, and -c goes on.
	if err := s.LDAPAdd(context.Background(), []byte(b.String())); err == nil || !strings.Contains(err.Error(), "Already exists") {
		t.Fatalf("second ldapadd: want an 'Already exists' failure, got %v", err)
	}
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(s.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false, "(uid=*)", []string{"uid"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 3 {
		t.Fatalf("want 3 entries, got %d", len(res.Entries))
	}
}
