// Package deploy holds the Kubernetes manifests. deploy_test.go renders
// every overlay with kustomize and checks the objects; run_e2e_test.go
// applies them to a real kube-apiserver and runs the real binary as the
// overlay's ServiceAccount.
package deploy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/repo"
)

// The overlays as shipped: safe containers, least privilege, an image
// reference that is overridable and never a bare name, and access to
// exactly the example repository's environment namespaces.
func TestOverlaysRenderSafeObjects(t *testing.T) {
	for _, tc := range []struct {
		overlay  string
		replicas int64
		monitor  bool
		memory   string
	}{
		{"overlays/dev", 1, false, "512Mi"},
		{"overlays/prod", 2, true, "1Gi"},
		// The prod overlay with components/mlflow: modelsync is unchanged.
		{"examples/prod-with-mlflow", 2, true, "1Gi"},
	} {
		t.Run(tc.overlay, func(t *testing.T) {
			objs := render(t, tc.overlay)
			dep := find(objs, "Deployment", "modelsync-system", "modelsync")
			if dep == nil {
				t.Fatal("no Deployment modelsync-system/modelsync")
			}
			if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != tc.replicas {
				t.Errorf("replicas %d, want %d", r, tc.replicas)
			}
			pod, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
			if nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot"); !nonRoot {
				t.Error("pod does not require a non-root user")
			}
			c := container(t, dep)
			if ro, _, _ := unstructured.NestedBool(c, "securityContext", "readOnlyRootFilesystem"); !ro {
				t.Error("root filesystem is writable")
			}
			if esc, found, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation"); !found || esc {
				t.Error("privilege escalation allowed")
			}
			for _, f := range [][]string{{"resources", "requests", "cpu"}, {"resources", "limits", "memory"}, {"readinessProbe", "httpGet", "path"}, {"livenessProbe", "httpGet", "path"}} {
				if _, found, _ := unstructured.NestedFieldNoCopy(c, f...); !found {
					t.Errorf("container lacks %s", strings.Join(f, "."))
				}
			}
			checkMemory(t, c, tc.memory)
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			for _, want := range []string{"--leader-elect", "--kserve", "--kube-api-auth", "--listen=:8080", "--probe-listen=:8081"} {
				if !slices.Contains(args, want) {
					t.Errorf("args %v lack %s", args, want)
				}
			}
			// The image is an images: entry's work: a registry and a tag,
			// never the bare name the base uses.
			image, _, _ := unstructured.NestedString(c, "image")
			name, tag, _ := strings.Cut(image, ":")
			if !strings.Contains(name, "/") || tag == "" || tag == "latest" {
				t.Errorf("image %q: want <registry>/modelsync:<version> from the overlay's images: entry", image)
			}

			checkPorts(t, objs, dep, c)
			checkRBAC(t, objs)
			var bound []string
			for _, o := range objs {
				if o.GetKind() == "RoleBinding" && o.GetName() == "modelsync-inferenceservices" {
					bound = append(bound, o.GetNamespace())
				}
			}
			slices.Sort(bound)
			if want := exampleNamespaces(t); !slices.Equal(bound, want) {
				t.Errorf("InferenceService access in %v, want the example repository's environment namespaces %v", bound, want)
			}
			if got := find(objs, "ServiceMonitor", "modelsync-system", "modelsync") != nil; got != tc.monitor {
				t.Errorf("ServiceMonitor present %v, want %v", got, tc.monitor)
			}
		})
	}
}

// checkPorts follows every port reference to a port the container opens:
// probes, Service targetPorts, the ServiceMonitor's endpoint and the
// NetworkPolicy. Probes and metrics are on the probe listener only, and
// the NetworkPolicy admits it from the monitoring namespace only.
func checkPorts(t *testing.T, objs []*unstructured.Unstructured, dep *unstructured.Unstructured, c map[string]any) {
	t.Helper()
	ports := map[string]int64{}
	cps, _, _ := unstructured.NestedSlice(c, "ports")
	for _, p := range cps {
		pm := p.(map[string]any)
		ports[pm["name"].(string)] = pm["containerPort"].(int64)
	}
	if ports["http"] != 8080 || ports["metrics"] != 8081 {
		t.Errorf("container ports %v, want http 8080 and metrics 8081", ports)
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if p, _, _ := unstructured.NestedString(c, probe, "httpGet", "port"); p != "metrics" {
			t.Errorf("%s on port %q, want the probe listener (metrics)", probe, p)
		}
	}
	svc := find(objs, "Service", "modelsync-system", "modelsync")
	if svc == nil {
		t.Fatal("no Service")
	}
	svcPorts := map[string]bool{}
	sps, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	for _, p := range sps {
		pm := p.(map[string]any)
		svcPorts[pm["name"].(string)] = true
		if _, ok := ports[pm["targetPort"].(string)]; !ok {
			t.Errorf("Service port %v targets a port the container does not open", pm)
		}
	}
	if sm := find(objs, "ServiceMonitor", "modelsync-system", "modelsync"); sm != nil {
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		for _, e := range eps {
			if p := e.(map[string]any)["port"]; p != "metrics" || !svcPorts["metrics"] {
				t.Errorf("ServiceMonitor scrapes port %v, want the Service's metrics port", p)
			}
		}
	}
	np := find(objs, "NetworkPolicy", "modelsync-system", "modelsync")
	if np == nil {
		t.Fatal("no NetworkPolicy")
	}
	if sel, _, _ := unstructured.NestedStringMap(np.Object, "spec", "podSelector", "matchLabels"); !maps.Equal(sel, map[string]string{"app.kubernetes.io/name": "modelsync"}) {
		t.Errorf("NetworkPolicy selects %v", sel)
	}
	rules, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
	from := map[string]string{}
	for _, r := range rules {
		rm := r.(map[string]any)
		peers, _, _ := unstructured.NestedSlice(rm, "from")
		who := "anywhere"
		if len(peers) > 0 {
			ns, _, _ := unstructured.NestedStringMap(peers[0].(map[string]any), "namespaceSelector", "matchLabels")
			who = "namespace " + ns["kubernetes.io/metadata.name"]
			if len(peers) != 1 || len(ns) != 1 {
				t.Errorf("NetworkPolicy peers %v: want one namespace selected by name", peers)
			}
		}
		rps, _, _ := unstructured.NestedSlice(rm, "ports")
		for _, p := range rps {
			name, _ := p.(map[string]any)["port"].(string)
			if _, ok := ports[name]; !ok {
				t.Errorf("NetworkPolicy admits port %q the container does not open", name)
			}
			from[name] = who
		}
	}
	if want := map[string]string{"http": "anywhere", "metrics": "namespace monitoring"}; !maps.Equal(from, want) {
		t.Errorf("NetworkPolicy admits %v, want %v", from, want)
	}
}

// checkRBAC: no wildcard, no Secrets, Pods or Namespaces, and the only
// cluster-wide binding is the one API authentication needs.
func checkRBAC(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRoleBinding":
			ref, _, _ := unstructured.NestedString(o.Object, "roleRef", "name")
			if ref != "system:auth-delegator" {
				t.Errorf("cluster-wide binding %s to %s: access must be per namespace", o.GetName(), ref)
			}
		case "Role", "ClusterRole":
			rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
			for _, r := range rules {
				rule := r.(map[string]any)
				for _, field := range []string{"verbs", "resources", "apiGroups"} {
					vals, _, _ := unstructured.NestedStringSlice(rule, field)
					if slices.Contains(vals, "*") {
						t.Errorf("%s %s grants * %s", o.GetKind(), o.GetName(), field)
					}
					if field == "resources" && slices.ContainsFunc(vals, func(v string) bool { return v == "secrets" || v == "pods" || v == "namespaces" }) {
						t.Errorf("%s %s grants %v", o.GetKind(), o.GetName(), vals)
					}
				}
			}
		}
	}
}

// Every variable the Deployment and the components set is one modelsync
// reads or an argument uses; every Secret key is named after its variable, and every
// ConfigMap key the Deployment needs (not optional) is in the ConfigMap.
func TestDeploymentEnvIsWhatServeReads(t *testing.T) {
	// What the code reads, asked of the code where it reads through getenv.
	reads := map[string]bool{}
	rec := func(k string) string { reads[k] = true; return "" }
	mlflowclient.ConfigFromEnv(rec)
	gitsource.AuthFromEnv(rec)
	repo.DefaultCacheDir(rec)
	for _, k := range []string{serve.EnvWebhookSecret, serve.EnvRepository, serve.EnvGenericWebhookSecret,
		cmdutil.EnvGitHubToken, cmdutil.EnvGitHubAPIURL,
		// The API token and the pod's namespace (--api-authz-namespace's
		// default) are read by serve's API authentication.
		serve.EnvAPIToken, serve.EnvPodNamespace} {
		reads[k] = true
	}
	for _, tc := range []struct{ name, kustomization string }{
		{"overlays/prod", ""},
		{"overlays/dev with github-webhooks", "resources: [../deploy/overlays/dev]\ncomponents: [../deploy/components/github-webhooks]\n" +
			"configMapGenerator:\n- {name: modelsync, namespace: modelsync-system, behavior: merge, literals: [githubRepository=acme/models]}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var objs []*unstructured.Unstructured
			if tc.kustomization == "" {
				objs = render(t, tc.name)
			} else {
				objs = renderInstall(t, "", tc.kustomization)
			}
			cm := findKind(t, objs, "ConfigMap")
			data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
			c := container(t, findKind(t, objs, "Deployment"))
			if envFrom, found, _ := unstructured.NestedSlice(c, "envFrom"); found {
				t.Errorf("envFrom %v: every key of the source would become a variable", envFrom)
			}
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			inArgs := func(name string) bool {
				return slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "$("+name+")") })
			}
			env, _, _ := unstructured.NestedSlice(c, "env")
			for _, e := range env {
				em := e.(map[string]any)
				name := em["name"].(string)
				if !reads[name] && !inArgs(name) {
					t.Errorf("the Deployment sets %s, which modelsync does not read and no argument uses", name)
				}
				if ref, ok, _ := unstructured.NestedMap(em, "valueFrom", "secretKeyRef"); ok && ref["key"] != name {
					t.Errorf("%s comes from Secret key %v: name the key after the variable", name, ref["key"])
				}
				if ref, ok, _ := unstructured.NestedMap(em, "valueFrom", "configMapKeyRef"); ok {
					if ref["name"] != cm.GetName() {
						t.Errorf("%s reads ConfigMap %v, not the generated %s", name, ref["name"], cm.GetName())
					}
					if _, has := data[ref["key"].(string)]; !has && ref["optional"] != true {
						t.Errorf("%s needs ConfigMap key %v, which the ConfigMap lacks", name, ref["key"])
					}
				}
			}
		})
	}
}

// checkMemory: the container's memory request equals its limit, want, and
// nothing overrides the soft memory limit serve derives from it (90% of the
// cgroup's limit): neither --memory-limit nor GOMEMLIMIT is set, so the
// collector's bound follows the limit when an operator raises it.
func checkMemory(t *testing.T, c map[string]any, want string) {
	t.Helper()
	req, _, _ := unstructured.NestedFieldNoCopy(c, "resources", "requests", "memory")
	lim, _, _ := unstructured.NestedFieldNoCopy(c, "resources", "limits", "memory")
	if fmt.Sprint(req) != want || fmt.Sprint(lim) != want {
		t.Errorf("memory request %v and limit %v, want both %s", req, lim, want)
	}
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	for _, a := range args {
		if strings.HasPrefix(a, "--memory-limit") {
			t.Errorf("args set %s: the soft memory limit should follow the container's limit", a)
		}
	}
	env, _, _ := unstructured.NestedSlice(c, "env")
	for _, e := range env {
		if e.(map[string]any)["name"] == "GOMEMLIMIT" {
			t.Error("env sets GOMEMLIMIT: the soft memory limit should follow the container's limit")
		}
	}
}
