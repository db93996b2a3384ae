package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// Fault is one failure the FaultProxy injects into matching requests.
type Fault struct {
	// Status, when non-zero, is returned instead of the target's answer.
	Status int
	// Times is how many matching requests get the fault; 0 means every
	// matching request until Reset.
	Times int
	// Latency delays the request before anything else happens (or before it
	// is forwarded, when the fault has neither Status nor DropConnection).
	Latency time.Duration
	// DropConnection closes the client's connection without an answer.
	DropConnection bool
	// AfterForward applies Status or DropConnection only after the target
	// has handled the request, so the side effect happened but the client
	// never learns of it (a lost reply to a non-idempotent POST).
	AfterForward bool
	// Match selects requests; nil matches all. It must not read the body.
	Match func(*http.Request) bool
}

// RecordedRequest is one request as seen by the proxy.
type RecordedRequest struct {
	Method string
	Path   string
	// Status is what the client got; 0 when the connection was dropped.
	Status   int
	Injected bool // a Fault decided the outcome
	Dropped  bool
}

// FaultProxy is an HTTP reverse proxy in front of a real server that injects
// 5xx answers, latency and dropped connections. It keeps the client's Host
// header so S3 signatures stay valid through it.
type FaultProxy struct {
	URL string // http://127.0.0.1:<port>

	target *url.URL
	rp     *httputil.ReverseProxy
	srv    *http.Server
	done   chan struct{}

	mu       sync.Mutex
	faults   []*activeFault
	requests []RecordedRequest
	inFlight int
	idle     *sync.Cond // signalled when inFlight drops to 0
}

type activeFault struct {
	Fault
	left int // remaining uses; -1 = unlimited
}

// NewFaultProxy starts a proxy on a free loopback port that forwards to
// target (an http:// base URL).
func NewFaultProxy(target string) (*FaultProxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("testenv: fault proxy target %q: want an http(s) base URL", target)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testenv: fault proxy listen: %w", err)
	}
	p := &FaultProxy{URL: "http://" + l.Addr().String(), target: u, done: make(chan struct{})}
	p.idle = sync.NewCond(&p.mu)
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "testenv fault proxy: target unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(l)
	}()
	return p, nil
}

// Inject adds a fault. Faults are tried in the order they were injected; the
// first one that matches and has uses left applies.
func (p *FaultProxy) Inject(f Fault) {
	left := f.Times
	if left <= 0 {
		left = -1
	}
	p.mu.Lock()
	p.faults = append(p.faults, &activeFault{Fault: f, left: left})
	p.mu.Unlock()
}

// Reset removes all faults and forgets recorded requests.
func (p *FaultProxy) Reset() {
	p.mu.Lock()
	p.faults = nil
	p.requests = nil
	p.mu.Unlock()
}

// Requests returns the requests seen so far, oldest first.
func (p *FaultProxy) Requests() []RecordedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]RecordedRequest(nil), p.requests...)
}

func (p *FaultProxy) take(r *http.Request) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.faults {
		if f.Match != nil && !f.Match(r) {
			continue
		}
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
			}
		}
		return f.Fault, true
	}
	return Fault{}, false
}

func (p *FaultProxy) record(rr RecordedRequest) {
	p.mu.Lock()
	p.requests = append(p.requests, rr)
	p.mu.Unlock()
}

// WaitIdle blocks until no request is being handled or d has passed, and
// reports whether the proxy went idle. A request the proxy had begun to
// forward runs to completion at the target even when its client died (see
// serve), so after a client is killed and WaitIdle returns true, the
// target's state holds everything that client will ever have written.
func (p *FaultProxy) WaitIdle(d time.Duration) bool {
	timer := time.AfterFunc(d, func() {
		p.mu.Lock()
		p.idle.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(d)
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inFlight > 0 {
		if !time.Now().Before(deadline) {
			return false
		}
		p.idle.Wait()
	}
	return true
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.inFlight++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		if p.inFlight == 0 {
			p.idle.Broadcast()
		}
		p.mu.Unlock()
	}()
	// Once a request is forwarded it finishes at the target even if the
	// client goes away, so a test that kills a client knows, after
	// WaitIdle, exactly what reached the target. (A client that dies during
	// injected latency is still seen through the original context: its
	// request is dropped and never forwarded.)
	clientGone := r.Context().Done()
	r = r.WithContext(context.WithoutCancel(r.Context()))
	rec := RecordedRequest{Method: r.Method, Path: r.URL.Path}
	f, ok := p.take(r)
	if !ok {
		p.forward(w, r, rec)
		return
	}
	rec.Injected = true
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-clientGone:
			t.Stop()
			rec.Dropped = true
			p.record(rec)
			return
		}
	}
	if f.AfterForward && (f.Status != 0 || f.DropConnection) {
		// Let the target act on the request; throw its answer away.
		p.rp.ServeHTTP(&discardWriter{h: http.Header{}}, r)
	}
	switch {
	case f.DropConnection:
		rec.Dropped = true
		p.record(rec)
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			// RST instead of FIN: the client sees a reset mid-request.
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	case f.Status != 0:
		rec.Status = f.Status
		p.record(rec)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, "testenv fault proxy: injected failure\n")
	default:
		p.forward(w, r, rec)
	}
}

// forward proxies to the target and records the request as soon as the
// status is known, before the client can see the answer: a test that calls
// Requests right after its response arrives must find it.
func (p *FaultProxy) forward(w http.ResponseWriter, r *http.Request, rec RecordedRequest) {
	sw := &statusWriter{ResponseWriter: w, onStatus: func(code int) {
		rec.Status = code
		p.record(rec)
	}}
	p.rp.ServeHTTP(sw, r)
	sw.status() // records 200 if the target wrote nothing at all
}

// Close stops the proxy and closes open connections.
func (p *FaultProxy) Close() error {
	err := p.srv.Close()
	<-p.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

type statusWriter struct {
	http.ResponseWriter
	code     int
	onStatus func(int)
}

func (s *statusWriter) setCode(code int) {
	if s.code == 0 {
		s.code = code
		s.onStatus(code)
	}
}

func (s *statusWriter) WriteHeader(code int) {
	if code >= 200 { // 1xx (e.g. 100 Continue) precede the real status
		s.setCode(code)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.setCode(http.StatusOK)
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) status() int {
	s.setCode(http.StatusOK)
	return s.code
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// TCPFaultProxy forwards raw TCP connections to a target address and can
// drop the next N of them, for protocols that are not HTTP (git://, etcd).
type TCPFaultProxy struct {
	Addr string // 127.0.0.1:<port>

	target string
	l      net.Listener
	wg     sync.WaitGroup

	mu    sync.Mutex
	drop  int
	conns map[net.Conn]struct{}
	seen  int
}

// NewTCPFaultProxy starts a raw TCP proxy in front of target (host:port).
func NewTCPFaultProxy(target string) (*TCPFaultProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testenv: tcp fault proxy listen: %w", err)
	}
	p := &TCPFaultProxy{Addr: l.Addr().String(), target: target, l: l, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// DropNext makes the proxy reset the next n accepted connections.
func (p *TCPFaultProxy) DropNext(n int) {
	p.mu.Lock()
	p.drop += n
	p.mu.Unlock()
}

// Connections is how many connections the proxy accepted so far.
func (p *TCPFaultProxy) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen
}

// DropAll resets every connection that is open now.
func (p *TCPFaultProxy) DropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		resetConn(c)
	}
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (p *TCPFaultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.seen++
		if p.drop > 0 {
			p.drop--
			p.mu.Unlock()
			resetConn(c)
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.pipe(c)
	}
}

func (p *TCPFaultProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		return
	}
	defer up.Close()
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, up)
		p.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(c, up)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	wg.Wait()
}

// Close stops accepting, resets open connections and waits for the copiers.
func (p *TCPFaultProxy) Close() error {
	err := p.l.Close()
	p.DropAll()
	p.wg.Wait()
	return err
}
