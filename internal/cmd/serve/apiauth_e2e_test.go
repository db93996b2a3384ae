package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/test/fixture"
	"github.com/modelsync/modelsync/test/testenv"
)

// The controller API takes Kubernetes tokens: TokenReview says who the
// caller is, a SubjectAccessReview on modelsync.io resources says what it
// may do, and the audit log names that identity. Static tokens work beside
// it. The probes and metrics have their own listener, and the API is not
// on it.
func TestServeAPIAuthenticatesWithKubernetes(t *testing.T) {
	ctx := context.Background()
	kube := testenv.NewKube(t)
	ml := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: ml.URL})
	if err != nil {
		t.Fatal(err)
	}
	fixture.RegisterExample(t, admin, fixture.RegisterOptions{})
	cs, err := kubernetes.NewForConfig(kube.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "modelsync-system"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// oncall may pin; viewer may only read the status.
	token := func(sa string, rules ...rbacv1.PolicyRule) string {
		t.Helper()
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa}, Rules: rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: sa},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	oncall := token("oncall",
		rbacv1.PolicyRule{APIGroups: []string{"modelsync.io"}, Resources: []string{"pins"}, Verbs: []string{"create", "delete", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{"modelsync.io"}, Resources: []string{"status"}, Verbs: []string{"get"}})
	viewer := token("viewer", rbacv1.PolicyRule{APIGroups: []string{"modelsync.io"}, Resources: []string{"status"}, Verbs: []string{"get"}})

	env := map[string]string{"MLFLOW_TRACKING_URI": ml.URL, "MODELSYNC_CACHE_DIR": t.TempDir(), serve.EnvAPIToken: testAPIToken, serve.EnvPodNamespace: ns}
	var audit, logs syncBuffer
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &audit, ErrOut: &logs}, func(k string) string { return env[k] }, "")
	f.Flags.Kubeconfig = kube.KubeconfigPath
	addr, probeAddr := make(chan string, 1), make(chan string, 1)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(runCtx, &serve.Options{Factory: f, Listen: "127.0.0.1:0", ProbeListen: "127.0.0.1:0", KubeAPIAuth: true,
			Interval: time.Hour, ResyncInterval: time.Hour, Concurrency: 2,
			Repo:     cmdutil.RepoFlags{URL: fixture.ExampleRepo(t), Branch: "main"},
			OnListen: func(a string) { addr <- a }, OnProbeListen: func(a string) { probeAddr <- a }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var base, probes string
	for base == "" || probes == "" {
		select {
		case a := <-addr:
			base = "http://" + a
		case a := <-probeAddr:
			probes = "http://" + a
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, logs.String())
		}
	}
	call := func(method, url, bearer, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Wait for the first fetch, so a pin is checked against Git.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := call(http.MethodGet, probes+"/readyz", "", ""); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready:\n%s", logs.String())
		}
	}
	pin := `{"model":"customer-churn-predictor","environment":"prod","version":1}`
	for _, tc := range []struct {
		name, method, path, bearer, body string
		want                             int
	}{
		{"no token", http.MethodGet, "/api/v1/status", "", "", http.StatusUnauthorized},
		{"a token Kubernetes does not know", http.MethodGet, "/api/v1/status", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "", http.StatusUnauthorized},
		{"viewer reads", http.MethodGet, "/api/v1/status", viewer, "", http.StatusOK},
		{"viewer lists pins", http.MethodGet, "/api/v1/pins", viewer, "", http.StatusForbidden},
		{"viewer pins", http.MethodPost, "/api/v1/pins", viewer, pin, http.StatusForbidden},
		{"viewer reconciles", http.MethodPost, "/api/v1/reconcile", viewer, `{"model":"customer-churn-predictor"}`, http.StatusForbidden},
		{"oncall pins", http.MethodPost, "/api/v1/pins", oncall, pin, http.StatusCreated},
		{"oncall lists pins", http.MethodGet, "/api/v1/pins", oncall, "", http.StatusOK},
		{"oncall may not reconcile", http.MethodPost, "/api/v1/reconcile", oncall, `{"model":"customer-churn-predictor"}`, http.StatusForbidden},
		{"oncall unpins", http.MethodDelete, "/api/v1/pins/customer-churn-predictor/prod", oncall, "", http.StatusNoContent},
		{"static token reconciles", http.MethodPost, "/api/v1/reconcile", testAPIToken, `{"model":"customer-churn-predictor"}`, http.StatusAccepted},
	} {
		if code, body := call(tc.method, base+tc.path, tc.bearer, tc.body); code != tc.want {
			t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, code, body, tc.want)
		}
	}
	// The probe listener serves probes and metrics, not the API; the API
	// listener does not serve metrics.
	if code, _ := call(http.MethodGet, probes+"/metrics", "", ""); code != http.StatusOK {
		t.Errorf("GET /metrics on the probe listener: %d", code)
	}
	if code, _ := call(http.MethodGet, probes+"/api/v1/status", testAPIToken, ""); code != http.StatusNotFound {
		t.Errorf("GET /api/v1/status on the probe listener: %d", code)
	}
	if code, _ := call(http.MethodGet, base+"/metrics", "", ""); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the API listener: %d", code)
	}

	// The audit log names the authenticated callers and every refusal.
	want := map[string]bool{
		"pin system:serviceaccount:modelsync-system:oncall applied":                     false,
		"unpin system:serviceaccount:modelsync-system:oncall applied":                   false,
		"reconcile-requested token:default queued":                                      false,
		"api POST /api/v1/pins system:serviceaccount:modelsync-system:viewer forbidden": false,
		"api GET /api/v1/status anonymous unauthenticated":                              false,
	}
	for _, line := range strings.Split(audit.String(), "\n") {
		var e controller.AuditEntry
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		key := fmt.Sprintf("%s %s %s", e.Action, e.Actor, e.Result)
		if _, ok := want[key]; ok {
			want[key] = true
		}
		if strings.Contains(line, oncall) || strings.Contains(line, viewer) || strings.Contains(line, testAPIToken) {
			t.Errorf("audit line holds a token: %s", line)
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("audit log lacks %q:\n%s", k, audit.String())
		}
	}
	if l := logs.String(); strings.Contains(l, oncall) || strings.Contains(l, viewer) || strings.Contains(l, testAPIToken) {
		t.Error("the log holds a token")
	}
}
