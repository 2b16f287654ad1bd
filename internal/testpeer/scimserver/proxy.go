package scimserver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/internal/testpeer/tcpproxy"
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
	faults     []*faultRule
	requests   []Request
}

// Fault is a failure the proxy makes of a request it forwards.
type Fault int

const (
	// FaultReset closes the connection before any answer, as a server
	// or load balancer that drops it does.
	FaultReset Fault = iota + 1
	// FaultEmptyPage forwards a listing and answers with its Resources
	// emptied, totalResults kept: a page lost by a broken server.
	FaultEmptyPage
	// FaultTruncated forwards the request and answers with the first
	// half of the body: JSON cut short.
	FaultTruncated
	// FaultResetAfter forwards the request, then closes the connection
	// instead of answering: the server did the work, the client never
	// heard.
	FaultResetAfter
	// FaultStall holds the request for the stall duration before
	// forwarding it (or until the client gives up).
	FaultStall
	// FaultEcho answers 400 itself, with a SCIM error whose detail
	// quotes the request's body, as servers that name the value they
	// refuse do.
	FaultEcho
	// FaultGarbled answers 201 itself, with the request's body made
	// invalid JSON: a server whose answer cannot be decoded.
	FaultGarbled
)

type faultRule struct {
	left  int
	match func(method, path string, body []byte) bool
	fault Fault
	stall time.Duration
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
		var fault *faultRule
		for _, f := range p.faults {
			if f.left > 0 && f.match(r.Method, rec.Path, body) {
				f.left--
				fault = f
				break
			}
		}
		retryAfter := p.retryAfter
		p.requests = append(p.requests, rec)
		p.mu.Unlock()

		if fault != nil && rec.Injected == 0 {
			serveFault(w, r, rp, fault)
			return
		}

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

// ClearFaults forgets the faults not yet made.
func (p *Proxy) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// FaultNext makes the proxy apply fault to the next n requests for which
// match (given the method and the path with its query) is true.
func (p *Proxy) FaultNext(n int, match func(method, path string) bool, fault Fault) {
	p.faultNext(&faultRule{left: n, match: func(m, path string, _ []byte) bool { return match(m, path) }, fault: fault})
}

// FaultNextBody is FaultNext with a match that also sees the request's
// body.
func (p *Proxy) FaultNextBody(n int, match func(method, path string, body []byte) bool, fault Fault) {
	p.faultNext(&faultRule{left: n, match: match, fault: fault})
}

// StallNext holds the next n matching requests for d before forwarding
// them.
func (p *Proxy) StallNext(n int, match func(method, path string) bool, d time.Duration) {
	p.faultNext(&faultRule{left: n, match: func(m, path string, _ []byte) bool { return match(m, path) }, fault: FaultStall, stall: d})
}

func (p *Proxy) faultNext(f *faultRule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, f)
}

// Method matches requests of one method.
func Method(m string) func(string, string) bool {
	return func(method, _ string) bool { return method == m }
}

func serveFault(w http.ResponseWriter, r *http.Request, rp http.Handler, f *faultRule) {
	switch f.fault {
	case FaultReset:
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic("scimserver: the proxy cannot hijack the connection")
		}
		if conn, _, err := hj.Hijack(); err == nil {
			tcpproxy.Reset(conn)
		}
		return
	case FaultResetAfter:
		rp.ServeHTTP(httptest.NewRecorder(), r)
		serveFault(w, r, rp, &faultRule{fault: FaultReset})
		return
	case FaultEcho:
		detail, _ := json.Marshal("invalid value in " + string(requestBody(r)))
		w.Header().Set("Content-Type", "application/scim+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidValue","detail":`+string(detail)+`}`)
		return
	case FaultGarbled:
		w.Header().Set("Content-Type", "application/scim+json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(append([]byte(`{"id":`), requestBody(r)...))
		return
	case FaultStall:
		select {
		case <-time.After(f.stall):
		case <-r.Context().Done():
			return
		}
		rp.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	switch f.fault {
	case FaultEmptyPage:
		var page map[string]any
		if json.Unmarshal(body, &page) == nil {
			page["Resources"] = []any{}
			body, _ = json.Marshal(page)
		}
	case FaultTruncated:
		body = body[:len(body)/2]
	}
	for k, v := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// requestBody is r's body, which stays readable.
func requestBody(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b
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
