package egress_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/scim"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/source"
)

// The address a name resolves to is checked when the connection is made:
// "localhost" passes a list of allowed names, but its loopback address
// is refused unless a CIDR lists it; so are the metadata addresses.
func TestDialTimeChecksTheResolvedAddress(t *testing.T) {
	ctx := context.Background()
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Write([]byte("email\nann@example.com\n"))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	byName := "http://localhost:" + port

	names, err := egress.Parse("localhost,*.corp.example")
	if err != nil {
		t.Fatal(err)
	}
	loopback, err := egress.Parse("localhost,127.0.0.0/8,::1")
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(p *egress.Policy) error {
		if err := p.AllowURL(byName); err != nil {
			return err
		}
		f, err := source.Fetch(ctx, v1alpha1.ImportSource{HTTP: &v1alpha1.HTTPSource{URL: byName + "/hr.csv"}},
			source.Options{Dir: t.TempDir(), DialControl: p.Control, Retries: 1})
		if err == nil {
			f.Remove()
		}
		return err
	}
	check := func(p *egress.Policy) error {
		d, err := scim.New(ctx, &v1alpha1.SCIMDirectory{URL: byName + "/scim/v2"},
			directory.Options{IdentityAttribute: "userName", MarkerAttribute: "title", MarkerValue: "hr", MaxRetries: 1, DialControl: p.Control}, nil)
		if err != nil {
			return err
		}
		defer d.Close()
		_, err = d.Check(ctx)
		return err
	}
	for name, try := range map[string]func(*egress.Policy) error{"an http source": fetch, "a SCIM check": check} {
		for _, p := range []*egress.Policy{nil, names} {
			if err := try(p); err == nil || !strings.Contains(err.Error(), "loopback") {
				t.Errorf("%s to localhost, policy %v: %v, want the loopback address refused", name, p, err)
			}
		}
	}
	if hits != 0 {
		t.Fatalf("the server got %d requests", hits)
	}
	if err := fetch(loopback); err != nil || hits != 1 {
		t.Fatalf("with 127.0.0.0/8 listed: %v (%d requests)", err, hits)
	}
	for _, ip := range []string{"169.254.169.254", "fd00:ec2::254", "::1", "0.0.0.0"} {
		if err := names.AllowAddress(net.ParseIP(ip)); !errors.Is(err, egress.ErrAddressDenied) {
			t.Errorf("%s: %v, want it denied", ip, err)
		}
	}
	if err := names.AllowAddress(net.ParseIP("10.20.30.40")); err != nil {
		t.Errorf("a private address: %v", err)
	}
}
