package apiauth

import (
	"context"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestTokensFile(t *testing.T) {
	st := NewStaticTokens()
	err := st.ReadTokensFile("tokens.csv", strings.NewReader("# ops\n\n ci-token-0123456789abc , ci \nalice-token-0123456789,alice\n"))
	if err != nil || st.Len() != 2 {
		t.Fatalf("read: %v, %d tokens", err, st.Len())
	}
	for tok, want := range map[string]string{"ci-token-0123456789abc": "token:ci", "alice-token-0123456789": "token:alice", "alice-token-012345678": "", "": ""} {
		id, ok, err := st.Authenticate(context.Background(), tok)
		if err != nil || ok != (want != "") || id.Name != want {
			t.Errorf("%q: %+v %v %v, want %q", tok, id, ok, err, want)
		}
	}
	for body, want := range map[string]string{
		"no-comma-token-0123456789":  "tokens.csv:1: want \"token,name\"",
		"ok-token-0123456789abc,a b": "tokens.csv:1: API token name \"a b\"",
		"# x\nshort,bob":             "tokens.csv:2: API token for \"bob\" is 5 characters",
		",nobody":                    "tokens.csv:1: empty API token",
	} {
		err := NewStaticTokens().ReadTokensFile("tokens.csv", strings.NewReader(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", body, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "short") {
			t.Errorf("%q: error quotes the token: %v", body, err)
		}
	}
}

// The Kubernetes provider asks the API server once per token and per
// decision within the TTL, and again after it; its caches stay bounded
// under a flood of distinct tokens.
func TestKubernetesReviewsAreCachedAndBounded(t *testing.T) {
	cs := fake.NewClientset()
	var reviews, sars int
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews++
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
		tr.Status = authnv1.TokenReviewStatus{Authenticated: tr.Spec.Token == "good", User: authnv1.UserInfo{Username: "alice", Groups: []string{"ops"}}}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sars++
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
		ra := sar.Spec.ResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "alice" && ra.Group == Group && ra.Namespace == "ms" && ra.Resource == "pins" && ra.Verb == "create"
		return true, sar, nil
	})
	now := time.Unix(0, 0)
	k, err := NewKubernetes(KubernetesOptions{Client: cs, Namespace: "ms", CacheTTL: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		id, ok, err := k.Authenticate(ctx, "good")
		if err != nil || !ok || id.Name != "alice" {
			t.Fatalf("good token: %+v %v %v", id, ok, err)
		}
		if d, err := k.Authorize(ctx, id, Attributes{Verb: "create", Resource: "pins"}); err != nil || !d.Allowed {
			t.Fatalf("pin: %+v %v", d, err)
		}
		if d, err := k.Authorize(ctx, id, Attributes{Verb: "create", Resource: "reconciles"}); err != nil || d.Allowed || !strings.Contains(d.Reason, "namespace ms") {
			t.Fatalf("reconcile: %+v %v", d, err)
		}
	}
	if _, ok, _ := k.Authenticate(ctx, "bad"); ok {
		t.Fatal("bad token authenticated")
	}
	if reviews != 2 || sars != 2 {
		t.Fatalf("%d TokenReviews and %d SubjectAccessReviews within the TTL, want 2 and 2", reviews, sars)
	}
	now = now.Add(2 * time.Minute)
	if _, ok, _ := k.Authenticate(ctx, "good"); !ok || reviews != 3 {
		t.Fatalf("after the TTL: ok=%v reviews=%d", ok, reviews)
	}
	for i := range 3 * maxCached {
		_, _, _ = k.Authenticate(ctx, "flood-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String())
	}
	if n := len(k.tokens); n > maxCached {
		t.Fatalf("token cache holds %d answers, bound %d", n, maxCached)
	}
}
