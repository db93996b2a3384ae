// Package deploy holds the Kubernetes manifests; this test renders every
// overlay with kustomize and checks the objects, then creates them on a real
// kube-apiserver so the API server's own validation runs too.
package deploy

import (
	"context"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/modelsync/modelsync/test/testenv"
)

func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range res.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	return nil
}

func TestOverlaysRenderSafeObjects(t *testing.T) {
	for _, tc := range []struct {
		overlay    string
		replicas   int64
		namespaces []string
		monitor    bool
	}{
		{"overlays/dev", 1, []string{"models-dev"}, false},
		{"overlays/prod", 2, []string{"models-dev", "models-staging", "models-prod"}, true},
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
			containers, _, _ := unstructured.NestedSlice(pod, "containers")
			c := containers[0].(map[string]any)
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
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			if !slices.Contains(args, "--leader-elect") {
				t.Errorf("args %v lack --leader-elect", args)
			}
			var bound []string
			for _, o := range objs {
				switch o.GetKind() {
				case "ClusterRoleBinding":
					t.Errorf("cluster-wide binding %s: access must be per namespace", o.GetName())
				case "Role", "ClusterRole":
					rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
					for _, r := range rules {
						rule := r.(map[string]any)
						for _, field := range []string{"verbs", "resources", "apiGroups"} {
							vals, _, _ := unstructured.NestedStringSlice(rule, field)
							if slices.Contains(vals, "*") {
								t.Errorf("%s %s grants * %s", o.GetKind(), o.GetName(), field)
							}
							if field == "resources" && (slices.Contains(vals, "secrets") || slices.Contains(vals, "pods")) {
								t.Errorf("%s %s grants %v", o.GetKind(), o.GetName(), vals)
							}
						}
					}
				case "RoleBinding":
					if o.GetName() == "modelsync-inferenceservices" {
						bound = append(bound, o.GetNamespace())
					}
				}
			}
			slices.Sort(bound)
			want := slices.Clone(tc.namespaces)
			slices.Sort(want)
			if !slices.Equal(bound, want) {
				t.Errorf("InferenceService access in %v, want %v", bound, want)
			}
			if got := find(objs, "ServiceMonitor", "modelsync-system", "modelsync") != nil; got != tc.monitor {
				t.Errorf("ServiceMonitor present %v, want %v", got, tc.monitor)
			}
		})
	}
}

// The rendered objects are accepted by a real API server (the
// ServiceMonitor CRD is not installed there and is checked above only).
func TestOverlaysApplyToRealAPIServer(t *testing.T) {
	kube := testenv.NewKube(t)
	dyn := dynamic.NewForConfigOrDie(kube.RESTConfig)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(kube.RESTConfig)))
	ctx := context.Background()
	objs := render(t, "overlays/prod")
	// Namespaces first; the environment namespaces come from the models repo.
	for _, ns := range []string{"models-dev", "models-staging", "models-prod"} {
		nsObj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		objs = append([]*unstructured.Unstructured{nsObj}, objs...)
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return boolRank(a.GetKind() != "Namespace") - boolRank(b.GetKind() != "Namespace")
	})
	for _, o := range objs {
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
		if _, err := ri.Create(ctx, o, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Errorf("create %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
