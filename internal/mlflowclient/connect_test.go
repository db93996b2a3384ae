package mlflowclient_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/mlflowclient"
)

// TestRefusedServerFailsWithinConnectTimeout: with the default retry budget
// (7 resends, backoff up to a minute) a refused connection used to be
// retried for 30–80 s; resends of requests that never reached the server
// stop at the connect timeout, and the error names the server (without its
// credentials) and the cause.
func TestRefusedServerFailsWithinConnectTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := mlflowclient.New(mlflowclient.Config{TrackingURI: "http://ci:pw-not-to-print@" + addr, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.GetRegisteredModel(context.Background(), "churn")
	took := time.Since(start)
	t.Logf("refused port: first error after %s: %v", took.Round(10*time.Millisecond), err)
	if err == nil {
		t.Fatal("no error from a refused port")
	}
	for _, want := range []string{"http://" + addr, "connection refused", "connect timeout 2s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "pw-not-to-print") {
		t.Errorf("error shows the password: %v", err)
	}
	if took > 10*time.Second {
		t.Errorf("took %s with a 2s connect timeout", took)
	}
}

// TestCapabilitiesFromServerVersion: the probe is sent once per client and
// a 2.x server is known not to take multi-model version searches before any
// is sent; a server without /version is assumed to take them.
func TestCapabilitiesFromServerVersion(t *testing.T) {
	for _, tc := range []struct {
		version string // "" = no /version route
		multi   bool
	}{{"2.9.2", false}, {"2.22.5", false}, {"3.17.2", true}, {"", true}} {
		var probes atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/version" && tc.version != "" {
				probes.Add(1)
				w.Write([]byte(tc.version))
				return
			}
			probes.Add(1)
			http.NotFound(w, r)
		}))
		c, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			caps, err := c.Capabilities(context.Background())
			if err != nil || caps.MultiModelVersionSearch != tc.multi || caps.ServerVersion != tc.version {
				t.Errorf("%q: %+v %v, want multi-model search %t", tc.version, caps, err, tc.multi)
			}
		}
		if n := probes.Load(); n != 1 {
			t.Errorf("%q: %d probes for 3 calls, want 1", tc.version, n)
		}
		c.NoteNoMultiModelVersionSearch()
		if caps, _ := c.Capabilities(context.Background()); caps.MultiModelVersionSearch {
			t.Errorf("%q: a refusal is not remembered", tc.version)
		}
		srv.Close()
	}
}
