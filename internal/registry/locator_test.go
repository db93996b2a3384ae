package registry

import "testing"

func TestMapProxiedURI(t *testing.T) {
	for _, tc := range []struct{ uri, dest, want, err string }{
		{"s3://bucket/a/b", "", "s3://bucket/a/b", ""},
		{"mlflow-artifacts:/1/abc/artifacts/model", "s3://mlflow/artifacts/", "s3://mlflow/artifacts/1/abc/artifacts/model", ""},
		{"mlflow-artifacts://127.0.0.1:5000/1/abc/artifacts/model", "s3://mlflow/artifacts", "s3://mlflow/artifacts/1/abc/artifacts/model", ""},
		{"mlflow-artifacts:/1/x", "", "", "set the server's artifacts destination"},
	} {
		got, err := MapProxiedURI(tc.uri, tc.dest, "churn", 3)
		if tc.err != "" {
			if err == nil || !contains(err.Error(), tc.err) || !contains(err.Error(), "model churn version 3") {
				t.Errorf("%s: err = %v", tc.uri, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q %v, want %q", tc.uri, got, err, tc.want)
		}
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))) }
