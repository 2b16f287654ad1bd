package egress

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// ErrRedirectRefused is a redirect to another origin, refused.
var ErrRedirectRefused = errors.New("refused a redirect to another origin")

// maxRedirects bounds the redirects followed within an origin.
const maxRedirects = 10

// SameOrigin is the CheckRedirect of every HTTP client of the operator:
// it follows redirects within the origin (scheme, host and port) of the
// first request only. A client sends its credentials (an Authorization
// header set by its transport) and the request's body again on a
// redirect: elsewhere they would reach a host nobody named, and a
// redirect from https to http would send them in cleartext.
func SameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		// The origins only: a path may hold an identity.
		return fmt.Errorf("%w: %s://%s answered with %s://%s", ErrRedirectRefused, first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// Redact keeps an HTTP client's error without the query and user
// information of its URL: a lookup's filter holds identities, which are
// personal data, a source's query may hold a token, and the error may
// end up in status, Events and logs. The body never appears in one.
func Redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: ue.Err}
	}
	return err
}

// RedactURL returns u without its user information, and with "?…" for
// its query.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(a URL that does not parse)"
	}
	p.User, p.Fragment = nil, ""
	q := p.RawQuery != "" || p.ForceQuery
	p.RawQuery, p.ForceQuery = "", false
	if q {
		return p.String() + "?…"
	}
	return p.String()
}
