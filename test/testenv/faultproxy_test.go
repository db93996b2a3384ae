package testenv

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFaultProxy(t *testing.T) {
	var hits atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		// The proxy must keep the client's Host (S3 signs it).
		io.WriteString(w, r.Method+" "+r.URL.Path+" host="+r.Host)
	}))
	defer backend.Close()
	p, err := NewFaultProxy(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (*http.Response, string, error) {
		resp, err := client.Get(p.URL + path)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}

	resp, body, err := get("/ok")
	if err != nil || resp.StatusCode != 200 || body != "GET /ok host="+strings.TrimPrefix(p.URL, "http://") {
		t.Fatalf("pass-through: %v %q %v", resp, body, err)
	}

	p.Inject(Fault{Status: http.StatusServiceUnavailable, Times: 2, Match: func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Path, "/api/")
	}})
	for i := range 2 {
		resp, _, err := get("/api/x")
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("injected 503 #%d: %v %v", i, resp, err)
		}
	}
	if resp, _, err := get("/other"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("unmatched path: %v %v", resp, err)
	}
	if resp, _, err := get("/api/x"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after Times ran out: %v %v", resp, err)
	}

	before := hits.Load()
	p.Inject(Fault{DropConnection: true, Times: 1})
	if _, _, err := get("/drop"); err == nil {
		t.Fatal("dropped connection reported no error")
	}
	if hits.Load() != before {
		t.Fatal("dropped request reached the backend")
	}

	p.Inject(Fault{DropConnection: true, AfterForward: true, Times: 1})
	if _, _, err := get("/lost-reply"); err == nil {
		t.Fatal("dropped reply reported no error")
	}
	if hits.Load() != before+1 {
		t.Fatal("AfterForward request did not reach the backend")
	}

	p.Inject(Fault{Latency: 200 * time.Millisecond, Times: 1})
	start := time.Now()
	if resp, _, err := get("/slow"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("latency fault: %v %v", resp, err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("latency fault did not delay the request")
	}

	var got []string
	for _, r := range p.Requests() {
		s := r.Method + " " + r.Path + " " + http.StatusText(r.Status)
		if r.Dropped {
			s += " dropped"
		}
		got = append(got, s)
	}
	want := []string{
		"GET /ok OK", "GET /api/x Service Unavailable", "GET /api/x Service Unavailable",
		"GET /other OK", "GET /api/x OK", "GET /drop  dropped", "GET /lost-reply  dropped", "GET /slow OK",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("recorded requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTCPFaultProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "echo "+line)
			}()
		}
	}()
	p, err := NewTCPFaultProxy(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	roundTrip := func() (string, error) {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		if _, err := io.WriteString(c, "hi\n"); err != nil {
			return "", err
		}
		b, err := io.ReadAll(c)
		if err == nil && len(b) == 0 {
			err = io.ErrUnexpectedEOF
		}
		return string(b), err
	}
	if got, err := roundTrip(); err != nil || got != "echo hi\n" {
		t.Fatalf("pass-through: %q %v", got, err)
	}
	p.DropNext(1)
	if got, err := roundTrip(); err == nil {
		t.Fatalf("dropped connection answered %q", got)
	} else if !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
		t.Logf("drop surfaced as %v", err)
	}
	if got, err := roundTrip(); err != nil || got != "echo hi\n" {
		t.Fatalf("after the drop: %q %v", got, err)
	}
	if p.Connections() != 3 {
		t.Fatalf("connections = %d, want 3", p.Connections())
	}
}
