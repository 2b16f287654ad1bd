package scimserver

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestStartServesServiceProviderConfigOverTLS(t *testing.T) {
	s := Start(t, Options{Token: "tok", TLS: true, BulkMaxOperations: 7})
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") {
		t.Fatalf("URL = %q, want https on 127.0.0.1", s.URL)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", s.URL+"/ServiceProviderConfig", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"maxOperations":7`) {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}

	req, _ = http.NewRequest("GET", s.URL+"/Users", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: status %d, want 401", resp.StatusCode)
	}
}

func TestProxyInjectsFailuresThenForwards(t *testing.T) {
	s := Start(t, Options{})
	p := NewProxy(t, s)
	p.FailNext(2, http.StatusTooManyRequests, "1")
	var codes []int
	for range 3 {
		resp, err := http.Get(p.URL + "/Users")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After = %q", resp.Header.Get("Retry-After"))
		}
	}
	if codes[0] != 429 || codes[1] != 429 || codes[2] != 200 {
		t.Fatalf("codes = %v, want [429 429 200]", codes)
	}
	if got := len(p.Requests()); got != 3 {
		t.Fatalf("recorded %d requests, want 3", got)
	}
}
