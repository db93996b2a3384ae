package serve

import (
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The analysis keeps its records in ConfigMaps; an identity the deploy
// base's RBAC does not let near them must run without analysis instead of
// failing every canary's reconcile on a 403.
func TestMissingRecordAccess(t *testing.T) {
	for _, tc := range []struct {
		allowed map[string]bool
		want    string
	}{
		{allowed: map[string]bool{"get": true, "create": true, "update": true, "delete": true}, want: ""},
		{allowed: map[string]bool{}, want: "get"},
		{allowed: map[string]bool{"get": true, "create": true}, want: "update"},
	} {
		kc := fake.NewSimpleClientset()
		var asked []string
		kc.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
			r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
			ra := r.Spec.ResourceAttributes
			if ra == nil || ra.Resource != "configmaps" || ra.Namespace != "ns1" {
				t.Fatalf("review of %+v, want configmaps in ns1", ra)
			}
			asked = append(asked, ra.Verb)
			r.Status.Allowed = tc.allowed[ra.Verb]
			return true, r, nil
		})
		got, err := missingRecordAccess(kc, "ns1")
		if err != nil || got != tc.want {
			t.Fatalf("allowed %v: missing %q, %v; want %q (asked %v)", tc.allowed, got, err, tc.want, asked)
		}
	}
}
