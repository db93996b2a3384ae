package advisory

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{"Scikit_Learn": "scikit-learn", "scikit.learn": "scikit-learn", "a-_.b": "a-b", "NumPy": "numpy"} {
		if got := NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRangesAndVersions(t *testing.T) {
	db, err := LoadDir("testdata/osv")
	if err != nil {
		t.Fatal(err)
	}
	if db.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (the withdrawn record and the npm package left out)", db.Len())
	}
	cases := []struct {
		name, version string
		want          []string
	}{
		{"scikit-learn", "1.4.2", []string{"PYSEC-2024-1"}},
		{"SCIKIT.learn", "1.4.2", []string{"PYSEC-2024-1"}}, // PEP 503 spelling
		{"scikit-learn", "1.5.0", nil},                      // fixed is exclusive
		{"scikit-learn", "1.5.0.post1", nil},
		{"scikit-learn", "1.6.0rc1", []string{"PYSEC-2024-1"}}, // pre-release ordering
		{"scikit-learn", "1.6.0b2", nil},
		{"scikit-learn", "1.6.1", []string{"PYSEC-2024-1"}}, // last_affected inclusive
		{"scikit-learn", "1.6.1.post1", nil},
		{"scikit-learn", "1.10.0", nil}, // numeric, not lexical: 1.10 > 1.6.1
		{"scikit-learn", "0.24.2", []string{"PYSEC-2024-1"}},
		{"scikit-learn", "0.024.2", []string{"PYSEC-2024-1"}}, // PEP 440 equality of explicit versions
		{"numpy", "1.21.9", []string{"GHSA-aaaa-bbbb-cccc"}},
		{"numpy", "1.22.0", nil},
		{"numpy", "1.24.0", nil},
		{"numpy", "1.26.3", []string{"GHSA-aaaa-bbbb-cccc"}},
		{"numpy", "1.26.4", nil},
		{"numpy", "1!1.0", nil}, // epoch 1 is above every epoch-0 fix
		{"requests", "2.0.0", nil},
	}
	for _, c := range cases {
		var got []string
		for _, r := range db.Lookup(c.name, c.version) {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s %s: %v, want %v", c.name, c.version, got, c.want)
		}
	}
}

func TestLoadDirRefusesBrokenRecord(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte(`{"summary":"no id"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(dir)
	var re *RecordError
	if err == nil || !strings.Contains(err.Error(), "x.json") || !asRecordError(err, &re) {
		t.Fatalf("err = %v, want a RecordError naming x.json", err)
	}
}

func asRecordError(err error, re **RecordError) bool {
	for err != nil {
		if e, ok := err.(*RecordError); ok {
			*re = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestSeverity(t *testing.T) {
	db, _ := LoadDir("testdata/osv")
	r := db.Lookup("numpy", "1.21.0")[0]
	if l, s := r.RecordSeverity(); l != SeverityCritical || s != 9.8 {
		t.Errorf("CVSS 3.1 AV:N/AC:L/PR:N/UI:N/C:H/I:H/A:H = %s %.1f, want critical 9.8 (the vector wins over the text)", l, s)
	}
	r = &Record{ID: "X", DatabaseSpecific: map[string]any{"severity": "MODERATE"}}
	if l, _ := r.RecordSeverity(); l != SeverityMedium {
		t.Errorf("MODERATE = %s", l)
	}
	if l, _ := (&Record{ID: "Y"}).RecordSeverity(); l != SeverityUnknown {
		t.Errorf("none = %s", l)
	}
}

func TestAllowListExpiry(t *testing.T) {
	db, _ := LoadDir("testdata/osv")
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	c := &Checker{DB: db, Now: func() time.Time { return now }, Allow: []Allow{
		{ID: "CVE-2024-0001", Expires: now.Add(24 * time.Hour), Reason: "not reachable: we never unpickle user input"}, // by alias
		{ID: "GHSA-aaaa-bbbb-cccc", Expires: now, Reason: "upgrade planned"},                                           // expires now: no longer applies
	}}
	reqs := ParseRequirementsTxt([]byte("scikit-learn==1.4.2\nnumpy==1.21.0\npandas>=2\n"), "requirements.txt")
	res, err := c.Check(context.Background(), "churn", reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Vulnerabilities) != 2 {
		t.Fatalf("vulnerabilities %+v", res.Vulnerabilities)
	}
	for _, v := range res.Vulnerabilities {
		switch v.ID {
		case "PYSEC-2024-1":
			if !v.Allowed || v.AllowReason == "" {
				t.Errorf("%s not allowed by its alias entry: %+v", v.ID, v)
			}
		case "GHSA-aaaa-bbbb-cccc":
			if v.Allowed {
				t.Errorf("%s allowed by an expired entry", v.ID)
			}
		}
	}
	if len(res.ExpiredAllows) != 1 || res.ExpiredAllows[0].ID != "GHSA-aaaa-bbbb-cccc" {
		t.Errorf("expired allows %+v", res.ExpiredAllows)
	}
	if len(res.Unpinned) != 1 || res.Unpinned[0].Name != "pandas" {
		t.Errorf("unpinned %+v", res.Unpinned)
	}
	// An entry for another model does not apply.
	c.Allow[0].Models = []string{"fraud"}
	res, _ = c.Check(context.Background(), "churn", reqs)
	for _, v := range res.Vulnerabilities {
		if v.Allowed {
			t.Errorf("%s allowed by an entry for another model", v.ID)
		}
	}
}

func TestRequirementsParsing(t *testing.T) {
	txt := "# comment\n-r other.txt\n--index-url https://x/simple\nnumpy==1.26.4  # pinned\nscikit-learn[alldeps] == 1.5.2 ; python_version>'3.8'\n" +
		"torch==2.1.*\nxgboost===2.0.3\npandas\nmlflow>=2,<3\nfoo @ https://x/foo.whl\nlong-name==\\\n  1.0\n"
	got := ParseRequirementsTxt([]byte(txt), "model/requirements.txt")
	type nv struct {
		name, version string
		pinned        bool
		line          int
	}
	var have []nv
	for _, r := range got {
		have = append(have, nv{r.Name, r.Version, r.Pinned, r.Line})
	}
	want := []nv{{"numpy", "1.26.4", true, 4}, {"scikit-learn", "1.5.2", true, 5}, {"torch", "", false, 6}, {"xgboost", "2.0.3", true, 7},
		{"pandas", "", false, 8}, {"mlflow", "", false, 9}, {"long-name", "1.0", true, 11}}
	if !slices.Equal(have, want) {
		t.Errorf("requirements.txt:\n got %v\nwant %v", have, want)
	}

	conda := `name: mlflow-env
channels: [conda-forge]
dependencies:
- python=3.10.12
- conda-forge::numpy=1.26.4=py310h
- scipy>=1.11
- libgcc 13.2.0
- pip<=23.0
- pip:
  - mlflow==2.22.0
  - cloudpickle
`
	reqs, err := ParseCondaYAML([]byte(conda), "model/conda.yaml")
	if err != nil {
		t.Fatal(err)
	}
	have = nil
	for _, r := range reqs {
		have = append(have, nv{r.Name, r.Version, r.Pinned, r.Line})
	}
	want = []nv{{"numpy", "1.26.4", true, 5}, {"scipy", "", false, 6}, {"libgcc", "13.2.0", true, 7}, {"mlflow", "2.22.0", true, 10}, {"cloudpickle", "", false, 11}}
	if !slices.Equal(have, want) {
		t.Errorf("conda.yaml:\n got %v\nwant %v", have, want)
	}

	pyenv := "python: 3.10.12\nbuild_dependencies:\n- pip==23.0\n- setuptools\ndependencies:\n- -r requirements.txt\n"
	reqs, err = ParsePythonEnv([]byte(pyenv), "model/python_env.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || !reqs[0].Pinned || reqs[1].Pinned || reqs[1].Name != "setuptools" {
		t.Errorf("python_env.yaml: %+v", reqs)
	}
	if _, err := ParseCondaYAML([]byte("dependencies: 3\n"), "c.yaml"); err == nil {
		t.Error("a conda.yaml whose dependencies is no list was accepted")
	}
}

func TestOnlineQueryBatch(t *testing.T) {
	rec := `{"id":"GHSA-on-line","affected":[{"package":{"ecosystem":"PyPI","name":"flask"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.2.5"}]}]}],"database_specific":{"severity":"HIGH"}}`
	var batches, gets int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/querybatch":
			batches++
			var q struct {
				Queries []batchQuery `json:"queries"`
			}
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &q)
			var res []map[string]any
			for _, qq := range q.Queries {
				if qq.Package.Name == "flask" {
					res = append(res, map[string]any{"vulns": []map[string]string{{"id": "GHSA-on-line"}}})
				} else {
					res = append(res, map[string]any{})
				}
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"results": res})
		case r.URL.Path == "/v1/vulns/GHSA-on-line":
			gets++
			_, _ = io.WriteString(w, rec)
		case r.URL.Path == "/v1/vulns/huge":
			_, _ = io.WriteString(w, strings.Repeat(" ", 2048))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := &Checker{DB: NewDB(nil), Online: &Client{BaseURL: srv.URL}}
	reqs := ParseRequirementsTxt([]byte("Flask==2.2.4\nnumpy==1.26.4\n"), "requirements.txt")
	res, err := c.Check(context.Background(), "m", reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Vulnerabilities) != 1 || res.Vulnerabilities[0].ID != "GHSA-on-line" || res.Vulnerabilities[0].Severity != SeverityHigh || !res.Online {
		t.Fatalf("%+v", res)
	}
	if batches != 1 || gets != 1 {
		t.Errorf("batches %d gets %d, want 1 and 1", batches, gets)
	}
	// Size limit.
	small := &Client{BaseURL: "http://user:secret@" + strings.TrimPrefix(srv.URL, "http://"), MaxBodyBytes: 1024}
	err = small.do(context.Background(), http.MethodGet, "/v1/vulns/huge", nil, new(Record))
	if err == nil || !strings.Contains(err.Error(), "larger than 1024") || strings.Contains(err.Error(), "secret") {
		t.Errorf("err = %v, want a size error without the password", err)
	}
	// Timeout.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) }))
	defer slow.Close()
	c.Online = &Client{BaseURL: slow.URL, Timeout: 100 * time.Millisecond}
	start := time.Now()
	if _, err := c.Check(context.Background(), "m", reqs); err == nil || time.Since(start) > 1500*time.Millisecond {
		t.Errorf("err = %v after %v, want a timeout within 100 ms", err, time.Since(start))
	}
}
