package serve_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/test/testenv"
)

// editFile replaces old with new in one file of the working copy; the test
// fails when old is not there, so a fixture change cannot go unnoticed.
func editFile(t *testing.T, w *testenv.Workdir, rel, old, new string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.Dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s has no %q", rel, old)
	}
	w.WriteFile(rel, strings.Replace(string(b), old, new, 1))
}

// testAPIToken is the API token serve processes of these tests accept
// ($MODELSYNC_API_TOKEN).
const testAPIToken = "serve-test-token-0123456789"

// apiGet sends an authenticated GET to a serve process.
func apiGet(url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testAPIToken)
	return http.DefaultClient.Do(req)
}

// status reads GET /api/v1/status of a serve process.
func (p *serveProc) status(t *testing.T) (controller.Status, error) {
	t.Helper()
	resp, err := apiGet(p.url + "/api/v1/status")
	if err != nil {
		return controller.Status{}, err
	}
	defer resp.Body.Close()
	var st controller.Status
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /api/v1/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// row finds one model/environment row of a status.
func row(st controller.Status, model, env string) (controller.StatusRow, bool) {
	for _, r := range st.Rows {
		if r.Model == model && r.Environment == env {
			return r, true
		}
	}
	return controller.StatusRow{}, false
}

// attempted reports whether every row of the status has been looked at
// (planned, applied, held or failed) at least once.
func attempted(st controller.Status) (bool, string) {
	if !st.Ready || len(st.Rows) == 0 {
		return false, fmt.Sprintf("ready=%v rows=%d fetchError=%q", st.Ready, len(st.Rows), st.FetchError)
	}
	for _, r := range st.Rows {
		if r.State == controller.StateUnknown {
			return false, r.Model + "/" + r.Environment + " not reconciled yet"
		}
	}
	return true, ""
}

// fullPasses counts the full passes (every model re-planned) the process
// has started, from its log. Only used to pace the test; what the passes
// did is asserted on the servers.
func (p *serveProc) fullPasses(t *testing.T) int {
	t.Helper()
	f, err := os.Open(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"msg":"desired state computed"`) && strings.Contains(line, `"full":true`) {
			n++
		}
	}
	return n
}

// auditEntries reads modelsync's own audit log (--audit-log).
func auditEntries(t *testing.T, path string) []controller.AuditEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []controller.AuditEntry
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e controller.AuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			continue // a line being written
		}
		out = append(out, e)
	}
	return out
}

// auditText lists audit entries one per line, for failure messages.
func auditText(es []controller.AuditEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %s %s/%s %s %s->%s %s\n", e.Time.Format(time.TimeOnly), e.Model, e.Environment, e.Action, e.From, e.To, e.Result)
	}
	return b.String()
}

// runModelsync runs the modelsync binary once and returns its output.
func runModelsync(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// poll calls cond until it holds or d passes; it returns the last detail
// and whether cond held. Callers decide what a timeout means.
func poll(d time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(d)
	var detail string
	for {
		ok, det := cond()
		if ok {
			return true, det
		}
		detail = det
		if time.Now().After(deadline) {
			return false, detail
		}
		time.Sleep(200 * time.Millisecond)
	}
}
