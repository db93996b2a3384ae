package kserve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

type healthCase struct {
	File     string       `json:"file"`
	Status   HealthStatus `json:"status"`
	Reason   string       `json:"reason"`
	Message  string       `json:"message"`
	Progress *struct {
		DeploymentMode  string `json:"deploymentMode"`
		LatestReady     string `json:"latestReady"`
		RolledOut       string `json:"rolledOut"`
		LatestPercent   int64  `json:"latestPercent"`
		PreviousPercent int64  `json:"previousPercent"`
	} `json:"progress"`
}

func loadObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u
}

// TestHealthFixtures runs the fixture table in testdata/health: object
// shapes as KServe documents them, with the health Argo CD's rule gives.
func TestHealthFixtures(t *testing.T) {
	raw, err := os.ReadFile("testdata/health/cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []healthCase
	if err := yaml.UnmarshalStrict(raw, &cases); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/health/*.yaml")
	if len(cases) != len(files)-1 {
		t.Fatalf("%d cases for %d fixtures: every fixture needs a case", len(cases), len(files)-1)
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.File, ".yaml"), func(t *testing.T) {
			obj := loadObject(t, filepath.Join("testdata/health", tc.File))
			status, reason, msg := Health(obj)
			if status != tc.Status {
				t.Errorf("status = %s, want %s (reason %q, message %q)", status, tc.Status, reason, msg)
			}
			if tc.Reason != "" && reason != tc.Reason {
				t.Errorf("reason = %q, want %q", reason, tc.Reason)
			}
			if !strings.Contains(msg, tc.Message) {
				t.Errorf("message = %q, want it to contain %q", msg, tc.Message)
			}
			if p := tc.Progress; p != nil {
				got := ProgressOf(obj)
				if got.DeploymentMode != p.DeploymentMode && p.DeploymentMode != "" ||
					got.LatestReadyRevision != p.LatestReady || got.LatestRolledoutRevision != p.RolledOut ||
					got.LatestPercent() != p.LatestPercent || got.PreviousPercent() != p.PreviousPercent {
					t.Errorf("progress = %+v (latest %d%%, previous %d%%), want %+v", got, got.LatestPercent(), got.PreviousPercent(), *p)
				}
			}
		})
	}
}

func TestHealthMissing(t *testing.T) {
	if s, _, _ := Health(nil); s != Missing {
		t.Fatalf("nil object: %s", s)
	}
}
