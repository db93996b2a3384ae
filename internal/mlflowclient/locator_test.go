package mlflowclient

import (
	"strings"
	"testing"
)

func TestMapProxiedURI(t *testing.T) {
	for _, tc := range []struct{ uri, dest, want, err string }{
		{"s3://bucket/a/b", "", "s3://bucket/a/b", ""},
		{"mlflow-artifacts:/1/abc/artifacts/model", "s3://mlflow/artifacts/", "s3://mlflow/artifacts/1/abc/artifacts/model", ""},
		{"mlflow-artifacts://127.0.0.1:5000/1/abc/artifacts/model", "s3://mlflow/artifacts", "s3://mlflow/artifacts/1/abc/artifacts/model", ""},
		{"mlflow-artifacts:/1/x", "", "", "set the server's artifacts destination"},
	} {
		got, err := MapProxiedURI(tc.uri, tc.dest, "churn", 3)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "model churn version 3") {
				t.Errorf("%s: err = %v", tc.uri, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q %v, want %q", tc.uri, got, err, tc.want)
		}
	}
}
