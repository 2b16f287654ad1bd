package scimserver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Request is a request that passed through a Proxy.
type Request struct {
	Method string
	// Path is the URL path with its query.
	Path string
	Body []byte
	// Injected is the status the proxy answered itself, or 0 when the
	// request reached the server.
	Injected int
}

// Proxy is a reverse proxy in front of a Server that records requests and
// can answer the next requests with a failure instead of forwarding them,
// to test retries against the real server behind it.
type Proxy struct {
	// URL is the base URL of the proxy (plain HTTP on 127.0.0.1).
	URL string

	mu         sync.Mutex
	failLeft   int
	failStatus int
	retryAfter string
	requests   []Request
}

// NewProxy starts a proxy in front of s and closes it when the test ends.
func NewProxy(t testing.TB, s *Server) *Proxy {
	t.Helper()
	target, err := url.Parse(s.URL)
	if err != nil {
		t.Fatalf("parse server URL: %v", err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	if len(s.CAPEM) > 0 {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(s.CAPEM)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		rp.Transport = tr
	}
	p := &Proxy{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := Request{Method: r.Method, Path: r.URL.RequestURI(), Body: body}

		p.mu.Lock()
		if p.failLeft > 0 {
			p.failLeft--
			rec.Injected = p.failStatus
		}
		retryAfter := p.retryAfter
		p.requests = append(p.requests, rec)
		p.mu.Unlock()

		if rec.Injected != 0 {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(rec.Injected)
			_, _ = io.WriteString(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"`+http.StatusText(rec.Injected)+`"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p.URL = hs.URL
	return p
}

// FailNext makes the proxy answer the next n requests with status (429,
// 503, ...) and, when retryAfter is not empty, a Retry-After header.
func (p *Proxy) FailNext(n, status int, retryAfter string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failLeft, p.failStatus, p.retryAfter = n, status, retryAfter
}

// Requests returns the requests seen so far.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

// Reset forgets the requests seen so far.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = nil
}
