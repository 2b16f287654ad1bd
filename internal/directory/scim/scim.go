package scim

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/credentials"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/retry"
)

// Directory is a SCIM 2.0 service provider. It is safe for concurrent use.
type Directory struct {
	c           *client
	opts        directory.Options
	identity    attribute
	marker      attribute
	disableBulk bool
	transport   *http.Transport
	// maxPatchMembers bounds the members one PATCH of a group changes;
	// 0 without spec.groups.
	maxPatchMembers int

	mu   sync.Mutex
	caps *directory.Capabilities
}

var _ directory.Directory = (*Directory)(nil)

// New connects to the SCIM service that spec describes. It reads the
// Secrets the spec refers to with secrets; a missing one is a
// *failure.Error with ReasonSecretNotFound. New sends no request.
func New(ctx context.Context, spec *v1alpha1.SCIMDirectory, opts directory.Options, secrets keyread.KeyReader) (*Directory, error) {
	if spec == nil || spec.URL == "" {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.scim.url is required")
	}
	if !strings.HasPrefix(spec.URL, "http://") && !strings.HasPrefix(spec.URL, "https://") {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.scim.url must be an http:// or https:// URL")
	}
	if opts.IdentityAttribute == "" {
		opts.IdentityAttribute = "userName"
	}
	identity, ok := lookupAttribute(opts.IdentityAttribute)
	if !ok || identity.kind != kindCore {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig,
			"identityAttribute %q: the SCIM provider needs a single-valued core attribute such as userName or externalId", opts.IdentityAttribute)
	}
	marker, ok := lookupAttribute(opts.MarkerAttribute)
	if !ok || marker.multiValued() {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig,
			"managedUsers.markerAttribute %q is not a single-valued SCIM attribute; use for example %q or \"userType\"",
			opts.MarkerAttribute, enterprisePrefx+"organization")
	}
	if opts.MarkerValue == "" {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "managedUsers.markerValue is required")
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}

	secret := func(name, key string) ([]byte, error) {
		return credentials.SecretValue(ctx, secrets, "spec.scim.auth", v1alpha1.SecretKeyRef{Name: name, Key: key})
	}

	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if spec.CABundle != nil {
		pool, err := credentials.CertPool(ctx, secrets, "spec.scim.caBundle", *spec.CABundle)
		if err != nil {
			return nil, err
		}
		tlsConfig.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig
	// One connection per concurrent batch, plus the token endpoint's.
	tr.MaxIdleConns = 2*opts.Concurrency + 2
	tr.MaxIdleConnsPerHost = 2*opts.Concurrency + 2
	tr.IdleConnTimeout = 90 * time.Second
	if opts.DialControl != nil {
		tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: opts.DialControl}).DialContext
	}

	var rt http.RoundTripper = tr
	switch a := spec.Auth; {
	case a.BearerToken != nil:
		tok, err := secret(a.BearerToken.Name, a.BearerToken.Key)
		if err != nil {
			return nil, err
		}
		rt = &headerTransport{base: tr, header: "Bearer " + strings.TrimSpace(string(tok))}
	case a.Basic != nil:
		user, err := secret(a.Basic.Name, "username")
		if err != nil {
			return nil, err
		}
		pass, err := secret(a.Basic.Name, "password")
		if err != nil {
			return nil, err
		}
		rt = &basicTransport{base: tr, user: string(user), pass: string(pass)}
	case a.OAuth2 != nil:
		id, err := secret(a.OAuth2.ClientSecretRef.Name, "clientID")
		if err != nil {
			return nil, err
		}
		sec, err := secret(a.OAuth2.ClientSecretRef.Name, "clientSecret")
		if err != nil {
			return nil, err
		}
		cfg := &clientcredentials.Config{
			ClientID:     strings.TrimSpace(string(id)),
			ClientSecret: strings.TrimSpace(string(sec)),
			TokenURL:     a.OAuth2.TokenURL,
			Scopes:       a.OAuth2.Scopes,
		}
		// The token source outlives ctx: it refreshes tokens for as long
		// as the directory is used.
		tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: tr, Timeout: requestTimeout(opts), CheckRedirect: egress.SameOrigin})
		rt = &oauth2.Transport{Source: cfg.TokenSource(tokenCtx), Base: tr}
	}

	c := &client{
		base:       strings.TrimSuffix(spec.URL, "/"),
		http:       &http.Client{Transport: rt, CheckRedirect: egress.SameOrigin},
		maxRetries: opts.MaxRetries,
		timeout:    requestTimeout(opts),
		sleep:      retry.Sleep,
	}
	if opts.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), max(1, opts.RateLimit/10))
	}
	d := &Directory{c: c, opts: opts, identity: identity, marker: marker, disableBulk: spec.DisableBulk, transport: tr}
	if g := spec.Groups; g != nil {
		d.maxPatchMembers = defaultMaxPatchOperations
		if g.MaxPatchOperations > 0 {
			d.maxPatchMembers = int(g.MaxPatchOperations)
		}
	}
	return d, nil
}

type headerTransport struct {
	base   http.RoundTripper
	header string
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", t.header)
	return t.base.RoundTrip(r)
}

type basicTransport struct {
	base       http.RoundTripper
	user, pass string
}

func (t *basicTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(t.user, t.pass)
	return t.base.RoundTrip(r)
}

// serviceProviderConfig is the part of RFC 7643 section 5 the provider reads.
type serviceProviderConfig struct {
	Patch struct {
		Supported bool `json:"supported"`
	} `json:"patch"`
	Bulk struct {
		Supported      bool  `json:"supported"`
		MaxOperations  int   `json:"maxOperations"`
		MaxPayloadSize int64 `json:"maxPayloadSize"`
	} `json:"bulk"`
	Filter struct {
		Supported  bool `json:"supported"`
		MaxResults int  `json:"maxResults"`
	} `json:"filter"`
}

// Check reads /ServiceProviderConfig: it proves the server answers and
// accepts the credentials, and tells what it offers.
func (d *Directory) Check(ctx context.Context) (directory.Capabilities, error) {
	resp, err := d.c.do(ctx, http.MethodGet, "/ServiceProviderConfig", nil, nil)
	if err != nil {
		return directory.Capabilities{}, err
	}
	if !ok2xx(resp.status) {
		return directory.Capabilities{}, statusError("GET /ServiceProviderConfig", resp)
	}
	var spc serviceProviderConfig
	if err := decode(resp, &spc); err != nil {
		return directory.Capabilities{}, err
	}
	caps := directory.Capabilities{
		Bulk:                spc.Bulk.Supported && spc.Bulk.MaxOperations > 0,
		MaxBulkOperations:   spc.Bulk.MaxOperations,
		MaxBulkPayloadBytes: spc.Bulk.MaxPayloadSize,
		Patch:               spc.Patch.Supported,
		Filter:              spc.Filter.Supported,
		// Pagination with startIndex and count is part of RFC 7644 3.4.2.4.
		PagedSearch: true,
	}
	if !caps.Bulk {
		caps.MaxBulkOperations, caps.MaxBulkPayloadBytes = 0, 0
	}
	d.mu.Lock()
	d.caps = &caps
	d.mu.Unlock()
	return caps, nil
}

// capabilities returns what Check found, checking first if needed.
func (d *Directory) capabilities(ctx context.Context) (directory.Capabilities, error) {
	d.mu.Lock()
	caps := d.caps
	d.mu.Unlock()
	if caps != nil {
		return *caps, nil
	}
	return d.Check(ctx)
}

// Close releases idle connections.
func (d *Directory) Close() error {
	d.transport.CloseIdleConnections()
	return nil
}

func sortedKeys(m directory.Attributes) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
