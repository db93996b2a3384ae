package testenv

import (
	"encoding/json"
	"testing"
)

// A review is asked with a create but changes nothing: tests that count a
// standby's or a ServiceAccount's writes must not count it.
func TestAuditEventIsWrite(t *testing.T) {
	for line, want := range map[string]bool{
		`{"verb":"create","objectRef":{"resource":"selfsubjectaccessreviews","apiGroup":"authorization.k8s.io"}}`: false,
		`{"verb":"create","objectRef":{"resource":"tokenreviews","apiGroup":"authentication.k8s.io"}}`:            false,
		`{"verb":"create","objectRef":{"resource":"configmaps","namespace":"ns"}}`:                                true,
		`{"verb":"patch","objectRef":{"resource":"inferenceservices","namespace":"ns"}}`:                          true,
		`{"verb":"get","objectRef":{"resource":"configmaps","namespace":"ns"}}`:                                   false,
	} {
		var e AuditEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if got := e.IsWrite(); got != want {
			t.Errorf("%s: IsWrite = %v, want %v", line, got, want)
		}
	}
}
