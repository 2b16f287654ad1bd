package egress_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/scim"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/source"
)

// elsewhere is a host that counts the requests that reach it: a redirect
// to another origin must send it nothing, credentials least of all.
func elsewhere(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("email\nann@example.com\n"))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// redirector answers every request with a 307 to target's same path; at
// /same it redirects within its own origin, to /file.
func redirector(t *testing.T, target string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/file", http.StatusTemporaryRedirect)
		case "/file":
			w.Write([]byte("email\nann@example.com\n"))
		default:
			http.Redirect(w, r, target+r.URL.Path, http.StatusTemporaryRedirect)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func secrets(_ context.Context, name, key string) ([]byte, error) {
	switch key {
	case "token", "password", "clientSecret":
		return []byte("s3cr3t-" + name), nil
	case "username", "clientID":
		return []byte("user"), nil
	}
	return nil, keyread.NotFound("Secret %s has no key %s", name, key)
}

// Every HTTP client of the operator refuses a redirect to another origin,
// and sends the other host nothing.
func TestNoRedirectToAnotherOrigin(t *testing.T) {
	ctx := context.Background()
	other, hits := elsewhere(t)
	from := redirector(t, other.URL)

	cases := map[string]func() error{
		"SCIM with a bearer token": func() error {
			d, err := scim.New(ctx, &v1alpha1.SCIMDirectory{URL: from.URL + "/scim/v2", Auth: v1alpha1.SCIMAuth{BearerToken: &v1alpha1.SecretKeyRef{Name: "scim", Key: "token"}}},
				directory.Options{IdentityAttribute: "userName", MarkerAttribute: "title", MarkerValue: "hr", MaxRetries: 1}, secrets)
			if err != nil {
				return err
			}
			defer d.Close()
			_, err = d.Check(ctx)
			return err
		},
		"SCIM's OAuth token URL": func() error {
			d, err := scim.New(ctx, &v1alpha1.SCIMDirectory{URL: other.URL + "/scim/v2", Auth: v1alpha1.SCIMAuth{OAuth2: &v1alpha1.OAuth2ClientCredentials{
				TokenURL: from.URL + "/token", ClientSecretRef: v1alpha1.LocalObjectReference{Name: "oauth"}}}},
				directory.Options{IdentityAttribute: "userName", MarkerAttribute: "title", MarkerValue: "hr", MaxRetries: 1}, secrets)
			if err != nil {
				return err
			}
			defer d.Close()
			_, err = d.Check(ctx)
			return err
		},
		"an HTTP source": func() error {
			f, err := source.Fetch(ctx, v1alpha1.ImportSource{HTTP: &v1alpha1.HTTPSource{URL: from.URL + "/hr.csv", BearerToken: &v1alpha1.SecretKeyRef{Name: "hr", Key: "token"}}},
				source.Options{Dir: t.TempDir(), Secrets: secrets})
			if err == nil {
				f.Remove()
			}
			return err
		},
		"the HEAD of an HTTP source": func() error {
			_, err := source.Head(ctx, &v1alpha1.HTTPSource{URL: from.URL + "/hr.csv", BasicAuth: &v1alpha1.LocalObjectReference{Name: "hr"}}, source.Options{Secrets: secrets})
			return err
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			before := hits.Load()
			err := run()
			if err == nil || !strings.Contains(err.Error(), "redirect") {
				t.Fatalf("a redirect to another origin: %v, want it refused", err)
			}
			if n := hits.Load() - before; n != 0 {
				t.Fatalf("the other origin got %d requests", n)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("the error quotes a credential: %v", err)
			}
		})
	}

	// Within its origin, a redirect is followed.
	f, err := source.Fetch(ctx, v1alpha1.ImportSource{HTTP: &v1alpha1.HTTPSource{URL: from.URL + "/same"}}, source.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("a redirect within the origin: %v", err)
	}
	f.Remove()
	if f.Size == 0 {
		t.Fatal("the redirect within the origin read nothing")
	}
	if !errors.Is(egress.SameOrigin(mustReq(t, "https://a.example/x"), []*http.Request{mustReq(t, "https://a.example/")}), nil) {
		t.Fatal("a redirect within the origin is refused")
	}
	if err := egress.SameOrigin(mustReq(t, "http://a.example/x"), []*http.Request{mustReq(t, "https://a.example/")}); !errors.Is(err, egress.ErrRedirectRefused) {
		t.Fatalf("https to http: %v, want refused", err)
	}
}

func mustReq(t *testing.T, u string) *http.Request {
	r, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
