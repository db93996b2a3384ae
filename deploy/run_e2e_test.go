package deploy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/test/fixture"
	"github.com/modelsync/modelsync/test/testenv"
)

// The example repository's InferenceServices (namespace/name), every model
// in every environment it runs in, and its MLflow aliases but llama's prod:
// that one runs a canary, which starts once KServe reports the stable
// version rolled out, and no KServe controller runs here.
var (
	exampleServices = []string{
		"models-dev/customer-churn-predictor", "models-staging/customer-churn-predictor", "models-prod/customer-churn-predictor",
		"models-dev/llama2-7b-alpaca", "models-staging/llama2-7b-alpaca", "models-prod/llama2-7b-alpaca",
		"models-dev/fraud-detector-xgb",
	}
	exampleAliases = map[string]map[string]int{
		"customer-churn-predictor": {"dev": 5, "staging": 4, "prod": 3},
		"llama2-7b-alpaca":         {"dev": 4, "staging": 4},
		"fraud-detector-xgb":       {"dev": 2},
	}
)

// pruned is the model the test removes from Git, with prune: true, to make
// modelsync delete its InferenceService.
const pruned = "fraud-detector-xgb"

// installCase is one way to install modelsync from deploy/.
type installCase struct {
	name string
	// resource is the deploy/ directory the installer's kustomization
	// builds on, with components added.
	resource   string
	components []string
	// preCreate: the operator creates the environment namespaces first
	// (the overlays' RoleBindings live in them).
	preCreate bool
	// github: components/github-webhooks is on.
	github bool
}

var installCases = []installCase{
	{name: "dev", resource: "overlays/dev", components: []string{"components/github-webhooks"}, preCreate: true, github: true},
	{name: "prod", resource: "overlays/prod", preCreate: true},
	{name: "create-namespaces", resource: "base", components: []string{"components/create-namespaces"}},
}

// Each way to install modelsync from deploy/, done as the install section
// says (an installer's kustomization setting image and ConfigMap values,
// the Secret created by hand, namespaces pre-created where the overlay
// expects them), applied to a real kube-apiserver with RBAC, and the real
// binary run as the Deployment says (its args, env, ports and volumes) with
// the ServiceAccount's token: it syncs the example repository into KServe
// and MLflow, holds the Lease, records Events, answers probes, metrics,
// webhooks and the API on the ports the Service and ServiceMonitor name,
// prunes after a restart; the API server saw no forbidden request from
// it, and every permission the install grants it was used.
func TestInstallRunsAsServiceAccount(t *testing.T) {
	testenv.RequireE2E(t)
	bin := modelsyncBinary(t)
	ml := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	registry, err := mlflowclient.New(mlflowclient.Config{TrackingURI: ml.URL, Username: ml.Username, Password: ml.Password})
	if err != nil {
		t.Fatal(err)
	}
	fixture.RegisterExample(t, registry, fixture.RegisterOptions{})
	gitsrv := testenv.NewGitServer(t)
	example := fixture.ExampleRepo(t)
	env := &runEnv{bin: bin, ml: ml, registry: registry, git: gitsrv, example: example}
	for _, c := range installCases {
		t.Run(c.name, func(t *testing.T) { env.run(t, c) })
	}
}

// runEnv is what the install cases share: the binary, MLflow with the
// example's models, the Git server and the example repository.
type runEnv struct {
	bin      string
	ml       *testenv.MLflow
	registry *mlflowclient.Client
	git      *testenv.GitServer
	example  string
}

func (e *runEnv) run(t *testing.T, c installCase) {
	ctx := t.Context()
	e.resetAliases(t)
	kube := testenv.NewKubeWith(t, testenv.KubeOptions{AuditLog: true})
	cs := kubernetes.NewForConfigOrDie(kube.RESTConfig)
	dyn := dynamic.NewForConfigOrDie(kube.RESTConfig)

	repoName := "models-" + c.name
	if _, err := e.git.NewBareRepo(repoName); err != nil {
		t.Fatal(err)
	}
	gitIn(t, e.example, "push", "-q", e.git.AuthHTTPURL(repoName), "main", "--tags")

	// The installer's kustomization: image, settings, components.
	var gh *githubtest.Server
	if c.github {
		gh = githubtest.New(t, "acme", "models", "ghp_deploy")
	}
	kust := installKustomization(t, c, e.git.HTTPURL+repoName+".git", e.ml.URL, gh)
	objs := renderInstall(t, c.resource, kust)
	dep := findKind(t, objs, "Deployment")
	if img, _, _ := unstructured.NestedString(container(t, dep), "image"); img != installImage {
		t.Fatalf("image %q, want the installer's %q: the images: entry cannot be overridden", img, installImage)
	}

	// The operator's part: environment namespaces, then the objects, then
	// the Secret.
	if c.preCreate {
		for _, ns := range exampleNamespaces(t) {
			if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	applyAll(t, kube, dyn, objs)
	secret := map[string]string{
		"MODELSYNC_GIT_USERNAME":   e.git.Username,
		"MODELSYNC_GIT_PASSWORD":   e.git.Password,
		"MODELSYNC_WEBHOOK_SECRET": "generic-" + testenv.UniqueName("secret"),
		"MODELSYNC_API_TOKEN":      "api-" + testenv.UniqueName("token"),
	}
	if c.github {
		secret["MODELSYNC_GITHUB_WEBHOOK_SECRET"] = "github-" + testenv.UniqueName("secret")
		secret["GITHUB_TOKEN"] = gh.Token
	}
	if _, err := cs.CoreV1().Secrets(dep.GetNamespace()).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "modelsync"}, StringData: secret}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The pod: the ServiceAccount's token, as the kubelet mounts it.
	saName, _, _ := unstructured.NestedString(dep.Object, "spec", "template", "spec", "serviceAccountName")
	user := "system:serviceaccount:" + dep.GetNamespace() + ":" + saName
	kubeconfig := tokenKubeconfig(t, kube, cs, dep.GetNamespace(), saName)
	p := newPod(t, ctx, cs, dep, find(objs, "Service", dep.GetNamespace(), "modelsync"), kubeconfig)
	leaseNS := p.envMap["POD_NAMESPACE"]

	first := p.start(t, e.bin, "first")
	waitFor(t, "the example synced into KServe and MLflow", 3*time.Minute, first, func() (bool, string) {
		if miss := missingServices(t, dyn, exampleServices); len(miss) > 0 {
			return false, fmt.Sprintf("InferenceServices missing: %v", miss)
		}
		if miss := e.missingAliases(t); len(miss) > 0 {
			return false, fmt.Sprintf("aliases missing: %v", miss)
		}
		return true, ""
	})
	waitFor(t, "the Lease held and Events recorded", time.Minute, first, func() (bool, string) {
		lease, err := cs.CoordinationV1().Leases(leaseNS).Get(ctx, "modelsync-controller", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return false, "Lease has no holder"
		}
		for _, ns := range exampleNamespaces(t) {
			evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			if !slices.ContainsFunc(evs.Items, func(ev corev1.Event) bool { return ev.Source.Component == "modelsync-controller" }) {
				return false, "no modelsync Event in " + ns
			}
		}
		return true, ""
	})

	// Probes and metrics where the Deployment and the ServiceMonitor look.
	for _, probe := range []*corev1.Probe{p.container.ReadinessProbe, p.container.LivenessProbe} {
		if code, body := get(t, p.url(t, probe.HTTPGet.Port.String())+probe.HTTPGet.Path, ""); code != http.StatusOK {
			t.Errorf("probe %s on port %s: %d %s", probe.HTTPGet.Path, probe.HTTPGet.Port.String(), code, body)
		}
	}
	if code, body := get(t, p.serviceURL(t, "metrics")+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "modelsync_") {
		t.Errorf("/metrics on the Service's metrics port (the ServiceMonitor's): %d", code)
	}
	// The http port is open to anyone (NetworkPolicy): metrics stay off it.
	if code, _ := get(t, p.serviceURL(t, "http")+"/metrics", ""); code != http.StatusNotFound {
		t.Errorf("/metrics on the Service's http port: %d, want 404 (it belongs to the probe listener)", code)
	}

	// Webhooks on the Service's http port, with the Secret's keys.
	body := []byte(`{"ref":"refs/heads/main"}`)
	if code := post(t, p.serviceURL(t, "http")+"/webhooks/generic", body, map[string]string{
		"X-Modelsync-Signature": sign(secret["MODELSYNC_WEBHOOK_SECRET"], body)}); code != http.StatusAccepted {
		t.Errorf("POST /webhooks/generic signed with the Secret's MODELSYNC_WEBHOOK_SECRET: %d", code)
	}
	if c.github {
		ping := []byte(`{"zen":"Design for failure.","hook_id":1}`)
		if code := post(t, p.serviceURL(t, "http")+"/webhooks/github", ping, map[string]string{
			"X-GitHub-Event": "ping", "X-GitHub-Delivery": testenv.UniqueName("delivery"),
			"X-Hub-Signature-256": sign(secret["MODELSYNC_GITHUB_WEBHOOK_SECRET"], ping)}); code != http.StatusOK {
			t.Errorf("GitHub ping on /webhooks/github: %d", code)
		}
	}

	t.Run("API authentication", func(t *testing.T) {
		checkAPIAuth(t, kube, cs, p, secret["MODELSYNC_API_TOKEN"])
	})

	// Prune: the model leaves Git with prune: true; the restarted process's
	// first pass (a full one) deletes its InferenceService. The restart
	// also hands the Lease over.
	w := testenv.NewWorkdir(t, e.git.AuthHTTPURL(repoName))
	cfg, err := os.ReadFile(filepath.Join(w.Dir, "modelsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cfg, []byte("\nprune: false\n")) {
		t.Fatal("the example's modelsync.yaml has no prune: false")
	}
	w.WriteFile("modelsync.yaml", strings.Replace(string(cfg), "\nprune: false\n", "\nprune: true\n", 1))
	w.Remove("models/" + pruned)
	w.Commit("retire " + pruned)
	w.Push("main")
	first.stop(t)
	second := p.start(t, e.bin, "second")
	kept := slices.DeleteFunc(slices.Clone(exampleServices), func(s string) bool { return strings.HasSuffix(s, "/"+pruned) })
	waitFor(t, pruned+" pruned by the restarted process", 2*time.Minute, second, func() (bool, string) {
		if miss := missingServices(t, dyn, kept); len(miss) > 0 {
			t.Fatalf("InferenceServices of models still in Git are gone: %v", miss)
		}
		if left := missingServices(t, dyn, []string{"models-dev/" + pruned}); len(left) == 0 {
			return false, pruned + " still there"
		}
		return true, ""
	})
	second.stop(t)

	for _, r := range []*proc{first, second} {
		for _, line := range strings.Split(r.logText(t), "\n") {
			// The API subtest's intruder is denied by the binary itself and
			// audited as such; that is the API working, not a missing grant.
			if strings.Contains(line, `"actor":"system:serviceaccount:release:intruder"`) && strings.Contains(line, `"action":"api `) {
				continue
			}
			if strings.Contains(strings.ToLower(line), "forbidden") {
				t.Errorf("the binary logged a forbidden request: %s", line)
			}
		}
	}
	if entries, err := os.ReadDir(p.workdir); err != nil || len(entries) > 0 {
		t.Errorf("the binary wrote outside its volumes (the image's root filesystem is read-only): %v %v", entries, err)
	}
	checkAudit(t, kube, cs, objs, user)
}

// installImage is the image the installer's kustomization sets.
const installImage = "example.invalid/ml-platform/modelsync:v1.2.3"

// installKustomization is what the install section tells a person to
// write: the deploy/ directory as resource, the image, the ConfigMap
// values merged into the generated ConfigMap.
func installKustomization(t *testing.T, c installCase, repoURL, mlflowURL string, gh *githubtest.Server) string {
	t.Helper()
	// The images: entry to override matches what the resource renders.
	img, _, _ := unstructured.NestedString(container(t, findKind(t, render(t, c.resource), "Deployment")), "image")
	name, _, _ := strings.Cut(img, ":")
	newName, newTag, _ := strings.Cut(installImage, ":")
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../deploy/%s\n", c.resource)
	if len(c.components) > 0 {
		b.WriteString("components:\n")
		for _, comp := range c.components {
			fmt.Fprintf(&b, "  - ../deploy/%s\n", comp)
		}
	}
	fmt.Fprintf(&b, "images:\n  - name: %s\n    newName: %s\n    newTag: %s\n", name, newName, newTag)
	fmt.Fprintf(&b, "configMapGenerator:\n  - name: modelsync\n    namespace: modelsync-system\n    behavior: merge\n    literals:\n      - repo=%s\n      - branch=main\n      - mlflowTrackingURI=%s\n", repoURL, mlflowURL)
	if gh != nil {
		fmt.Fprintf(&b, "      - githubRepository=%s/%s\n      - githubAPIURL=%s\n", gh.Owner, gh.Repo, gh.URL)
	}
	return b.String()
}

// applyAll creates the objects as `kubectl apply` would, Namespaces first.
// Only the ServiceMonitor is skipped: its CRD comes with the Prometheus
// Operator, which the test apiserver does not have.
func applyAll(t *testing.T, kube *testenv.Kube, dyn dynamic.Interface, objs []*unstructured.Unstructured) {
	t.Helper()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(kube.RESTConfig)))
	sorted := slices.Clone(objs)
	slices.SortStableFunc(sorted, func(a, b *unstructured.Unstructured) int {
		return boolRank(a.GetKind() != "Namespace") - boolRank(b.GetKind() != "Namespace")
	})
	for _, o := range sorted {
		if o.GetKind() == "ServiceMonitor" {
			continue
		}
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if o.GetNamespace() != "" {
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if _, err := ri.Create(t.Context(), o, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("create %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tokenKubeconfig writes a kubeconfig carrying a token of the
// ServiceAccount from the TokenRequest API: what a pod's mounted token is.
func tokenKubeconfig(t *testing.T, kube *testenv.Kube, cs kubernetes.Interface, ns, sa string) string {
	t.Helper()
	token := saToken(t, cs, ns, sa)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cluster"] = &clientcmdapi.Cluster{Server: kube.RESTConfig.Host, CertificateAuthorityData: kube.RESTConfig.CAData}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "sa", Namespace: ns}
	kc.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func saToken(t *testing.T, cs kubernetes.Interface, ns, sa string) string {
	t.Helper()
	expiry := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

// checkAPIAuth calls the API as the install section describes: a caller
// with a Kubernetes token bound to the modelsync-api-operator Role, one
// without, none at all, and the Secret's static token.
func checkAPIAuth(t *testing.T, kube *testenv.Kube, cs kubernetes.Interface, p *pod, staticToken string) {
	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "release"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []string{"release-manager", "intruder"} {
		if _, err := cs.CoreV1().ServiceAccounts("release").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// kubectl -n modelsync-system create rolebinding modelsync-api-operator
	//   --role=modelsync-api-operator --serviceaccount=release:release-manager
	if _, err := cs.RbacV1().RoleBindings(p.namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "modelsync-api-operator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "modelsync-api-operator"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "release-manager", Namespace: "release"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	operator, intruder := saToken(t, cs, "release", "release-manager"), saToken(t, cs, "release", "intruder")
	api := p.serviceURL(t, "http") + "/api/v1"
	reconcile := []byte(`{"model":"customer-churn-predictor"}`)
	for _, tc := range []struct {
		who, token string
		want       int
	}{
		{"no credential", "", http.StatusUnauthorized},
		{"a token nobody issued", "not-a-token", http.StatusUnauthorized},
		{"a ServiceAccount without the Role", intruder, http.StatusForbidden},
		{"a ServiceAccount bound to modelsync-api-operator", operator, http.StatusAccepted},
		{"the Secret's MODELSYNC_API_TOKEN", staticToken, http.StatusAccepted},
	} {
		h := map[string]string{"Content-Type": "application/json"}
		if tc.token != "" {
			h["Authorization"] = "Bearer " + tc.token
		}
		if code := post(t, api+"/reconcile", reconcile, h); code != tc.want {
			t.Errorf("POST /api/v1/reconcile as %s: %d, want %d", tc.who, code, tc.want)
		}
	}
	if code, body := get(t, api+"/status", operator); code != http.StatusOK {
		t.Errorf("GET /api/v1/status as the operator: %d %s", code, body)
	}
	if code, _ := get(t, api+"/status", intruder); code != http.StatusForbidden {
		t.Errorf("GET /api/v1/status as a ServiceAccount without the Role: %d, want 403", code)
	}
}

// checkAudit reads the API server's audit log: the ServiceAccount got no
// 403, and every permission its bindings grant was used at least once
// (a grant never used is a grant to drop).
func checkAudit(t *testing.T, kube *testenv.Kube, cs kubernetes.Interface, objs []*unstructured.Unstructured, user string) {
	t.Helper()
	grants := grantsOf(t, cs, objs, user)
	if len(grants) == 0 {
		t.Fatalf("nothing grants %s anything", user)
	}
	var unused []string
	var forbidden []string
	// Watches are recorded when they end, which is after the process
	// exited; give the API server a moment to write them.
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := kube.AuditEvents()
		if err != nil {
			t.Fatal(err)
		}
		var mine []testenv.AuditEvent
		forbidden = forbidden[:0]
		for _, e := range evs {
			if e.User.Username != user {
				continue
			}
			mine = append(mine, e)
			if e.Code() == http.StatusForbidden {
				forbidden = append(forbidden, e.String())
			}
		}
		unused = unusedGrants(grants, mine)
		if len(unused) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(forbidden) > 0 {
		t.Errorf("the API server refused %d requests of %s:\n  %s", len(forbidden), user, strings.Join(forbidden, "\n  "))
	}
	if len(unused) > 0 {
		t.Errorf("granted to %s and never used (drop them, or exercise them here):\n  %s", user, strings.Join(unused, "\n  "))
	}
}

// grant is one verb on one resource that one binding gives the user.
type grant struct {
	role, binding   string
	namespace       string // empty: cluster-wide
	group, resource string
	verb            string
	names           []string
}

func grantsOf(t *testing.T, cs kubernetes.Interface, objs []*unstructured.Unstructured, user string) []grant {
	t.Helper()
	var out []grant
	for _, o := range objs {
		if o.GetKind() != "RoleBinding" && o.GetKind() != "ClusterRoleBinding" {
			continue
		}
		subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
		bound := false
		for _, s := range subjects {
			sm := s.(map[string]any)
			if sm["kind"] == "ServiceAccount" && "system:serviceaccount:"+fmt.Sprint(sm["namespace"])+":"+fmt.Sprint(sm["name"]) == user {
				bound = true
			}
		}
		if !bound {
			continue
		}
		kind, _, _ := unstructured.NestedString(o.Object, "roleRef", "kind")
		name, _, _ := unstructured.NestedString(o.Object, "roleRef", "name")
		var rules []rbacv1.PolicyRule
		// The roles as the API server has them: built-in ones included.
		if kind == "Role" {
			r, err := cs.RbacV1().Roles(o.GetNamespace()).Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rules = r.Rules
		} else {
			r, err := cs.RbacV1().ClusterRoles().Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rules = r.Rules
		}
		ns := ""
		if o.GetKind() == "RoleBinding" {
			ns = o.GetNamespace()
		}
		for _, r := range rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						out = append(out, grant{role: kind + " " + name, binding: o.GetKind() + " " + strings.TrimPrefix(o.GetNamespace()+"/"+o.GetName(), "/"),
							namespace: ns, group: g, resource: res, verb: v, names: r.ResourceNames})
					}
				}
			}
		}
	}
	return out
}

// uses reports whether the request e exercised grant g. A server-side
// apply that created its object (201) needed "create" besides "patch". An
// informer's initial list is a streaming watch (sendInitialEvents=true)
// where the API server supports it, a LIST where it does not: both need
// "list", so the streaming watch counts as its use.
func (g grant) uses(e testenv.AuditEvent) bool {
	if e.ObjectRef == nil || e.Code() < 200 || e.Code() > 299 {
		return false
	}
	r := e.ObjectRef
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	if r.APIGroup != g.group || res != g.resource || (g.namespace != "" && r.Namespace != g.namespace) {
		return false
	}
	if len(g.names) > 0 && !slices.Contains(g.names, r.Name) {
		return false
	}
	switch {
	case e.Verb == g.verb:
		return true
	case g.verb == "create":
		return e.Verb == "patch" && e.Code() == http.StatusCreated
	case g.verb == "list":
		return e.Verb == "watch" && strings.Contains(e.RequestURI, "sendInitialEvents=true")
	}
	return false
}

// unusedGrants lists, per role and verb, the grants no request used in any
// namespace the role is bound in, and the bindings not used at all.
func unusedGrants(grants []grant, evs []testenv.AuditEvent) []string {
	usedRule := map[string]bool{}
	usedBinding := map[string]bool{}
	for _, g := range grants {
		key := fmt.Sprintf("%s: %s %s.%s", g.role, g.verb, g.resource, g.group)
		if len(g.names) > 0 {
			key += " " + strings.Join(g.names, ",")
		}
		if _, ok := usedRule[key]; !ok {
			usedRule[key] = false
		}
		if _, ok := usedBinding[g.binding]; !ok {
			usedBinding[g.binding] = false
		}
		for _, e := range evs {
			if g.uses(e) {
				usedRule[key] = true
				usedBinding[g.binding] = true
				break
			}
		}
	}
	var out []string
	for k, used := range usedRule {
		if !used {
			out = append(out, k)
		}
	}
	for b, used := range usedBinding {
		if !used {
			out = append(out, b+": nothing it grants was used")
		}
	}
	sort.Strings(out)
	return out
}

// resetAliases deletes the example's aliases, so each install case syncs
// them afresh.
func (e *runEnv) resetAliases(t *testing.T) {
	t.Helper()
	for model, aliases := range exampleAliases {
		for alias := range aliases {
			if _, err := e.registry.EnsureDeleteAlias(t.Context(), model, alias); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func (e *runEnv) missingAliases(t *testing.T) []string {
	t.Helper()
	var out []string
	for model, want := range exampleAliases {
		live, err := e.registry.ReadAliases(t.Context(), model)
		if err != nil {
			t.Fatal(err)
		}
		for alias, v := range want {
			if live[alias] != v {
				out = append(out, fmt.Sprintf("%s %s=v%d (live v%d)", model, alias, v, live[alias]))
			}
		}
	}
	sort.Strings(out)
	return out
}

// missingServices lists the managed InferenceServices of want that do not exist.
func missingServices(t *testing.T, dyn dynamic.Interface, want []string) []string {
	t.Helper()
	list, err := dyn.Resource(testenv.InferenceServiceGVR()).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=modelsync"})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	live := map[string]bool{}
	if list != nil {
		for _, o := range list.Items {
			live[o.GetNamespace()+"/"+o.GetName()] = true
		}
	}
	var out []string
	for _, w := range want {
		if !live[w] {
			out = append(out, w)
		}
	}
	return out
}

// waitFor polls cond until it holds; the process exiting or the time
// running out fails the test with the last detail.
func waitFor(t *testing.T, what string, d time.Duration, r *proc, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if done, log := r.exited(); done {
			t.Fatalf("waiting for %s: the binary %s", what, log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, detail)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func post(t *testing.T, url string, body []byte, headers map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	code, _ := do(t, req)
	return code
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", args[0], err, out)
	}
}
