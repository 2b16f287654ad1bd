package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/userimport/user-import-operator/internal/credentials"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/retry"
	"github.com/userimport/user-import-operator/internal/safetext"
)

const (
	backoffBase     = 200 * time.Millisecond
	backoffCap      = 30 * time.Second
	maxRetryAfter   = 5 * time.Minute
	maxResponseBody = 64 << 20
	// defaultRequestTimeout bounds one request when the options give no
	// timeout.
	defaultRequestTimeout = 30 * time.Second
)

// client sends SCIM requests with retries and rate limiting.
type client struct {
	base       string
	http       *http.Client
	limiter    *rate.Limiter // nil: no limit
	maxRetries int
	// timeout bounds one request; one that takes longer is retried.
	timeout time.Duration
	// sleep waits for d or until ctx ends; replaced in no test, kept as a
	// field so the wait is in one place.
	sleep func(ctx context.Context, d time.Duration) error
}

// response is a SCIM answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// scimError is the body of a SCIM error response (RFC 7644 3.12).
type scimError struct {
	ScimType string `json:"scimType"`
}

func (r *response) scimType() string {
	var e scimError
	_ = json.Unmarshal(r.body, &e)
	return e.ScimType
}

func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// do sends one request, retrying throttling, unavailability and network
// errors. body is JSON-encoded unless nil. A non-2xx answer that is not
// retried (or whose retries ran out) is returned as a response, not an
// error; errors are failures to talk to the server.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any) (*response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	for attempt := 0; ; attempt++ {
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return nil, err
			}
		}
		resp, err := c.once(ctx, method, u, payload)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil || !transientNetworkError(err) || attempt >= c.maxRetries {
				return nil, classify(err)
			}
		case retryable(resp.status) || (method == http.MethodGet && resp.status == http.StatusInternalServerError):
			// A read is safe to repeat, so a 500 on one is retried too.
			if attempt >= c.maxRetries {
				return resp, nil
			}
			wait = retryAfter(resp.header.Get("Retry-After"), time.Now())
		default:
			return resp, nil
		}
		if wait == 0 {
			wait = retry.Backoff(attempt, backoffBase, backoffCap)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func (c *client) once(ctx context.Context, method, u string, payload []byte) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: the request could not be built", method, egress.RedactURL(u))
	}
	req.Header.Set("Accept", "application/scim+json, application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, egress.Redact(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// requestTimeout is the bound of one request: the option, or the
// default.
func requestTimeout(opts directory.Options) time.Duration {
	if opts.RequestTimeout > 0 {
		return opts.RequestTimeout
	}
	return defaultRequestTimeout
}

// retryAfter parses a Retry-After header (seconds or an HTTP date); 0 when
// absent or unparsable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

func transientNetworkError(err error) bool {
	if credentials.IsTLSError(err) || isAuthError(err) || errors.Is(err, egress.ErrRedirectRefused) {
		return false
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func isAuthError(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re)
}

// classify turns a failure to talk to the server into a *failure.Error.
func classify(err error) error {
	var de *failure.Error
	switch {
	case errors.As(err, &de):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && !isTimeout(err):
		return err
	case credentials.IsTLSError(err):
		return &failure.Error{Reason: v1alpha1.ReasonTLSError, Err: err}
	case isAuthError(err):
		var re *oauth2.RetrieveError
		errors.As(err, &re)
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		// The token endpoint's answer may echo the request: keep only its status.
		return failure.Errorf(v1alpha1.ReasonAuthenticationFailed, "OAuth2 token request failed (HTTP %d)", status)
	}
	return &failure.Error{Reason: v1alpha1.ReasonUnreachable, Err: err}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// statusError describes a non-2xx answer to a whole-directory request.
func statusError(what string, r *response) error {
	switch r.status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return failure.Errorf(v1alpha1.ReasonAuthenticationFailed, "%s: HTTP %d: the server refused the credentials", what, r.status)
	case http.StatusNotFound:
		return failure.Errorf(v1alpha1.ReasonInvalidConfig, "%s: HTTP 404: is the URL the base of the SCIM service?", what)
	}
	if retryable(r.status) {
		return failure.Errorf(v1alpha1.ReasonUnreachable, "%s: HTTP %d after retries", what, r.status)
	}
	return failure.Errorf(v1alpha1.ReasonDirectoryError, "%s: HTTP %d%s", what, r.status, scimTypeSuffix(r))
}

func scimTypeSuffix(r *response) string {
	// scimType is a keyword from RFC 7644 (uniqueness, invalidValue, ...);
	// the detail text may quote values, so it is never used.
	if t := r.scimType(); t != "" && len(t) <= 32 && isKeyword(t) {
		return " (" + t + ")"
	}
	return ""
}

func isKeyword(s string) bool {
	return !slices.ContainsFunc([]byte(s), func(b byte) bool {
		return !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z')
	})
}

func ok2xx(status int) bool { return status >= 200 && status < 300 }

func decode(r *response, v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return failure.Errorf(v1alpha1.ReasonSchemaMismatch, "decode SCIM response (HTTP %d): %s", r.status, safetext.Of(err))
	}
	return nil
}
