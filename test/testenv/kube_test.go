package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func inferenceService(ns, name string, canary any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "serving.kserve.io/v1beta1",
		"kind":       "InferenceService",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"predictor": map[string]any{
				"canaryTrafficPercent": canary,
				"model": map[string]any{
					"modelFormat": map[string]any{"name": "sklearn"},
					"storageUri":  "s3://models/churn/1",
				},
			},
		},
	}}
}

func TestKubeAPIServer(t *testing.T) {
	k := NewKube(t)
	t.Logf("etcd + kube-apiserver + KServe CRD ready in %s", k.ReadyIn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(k.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(k.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := k.NewNamespace(ctx, "smoke")
	if err != nil {
		t.Fatal(err)
	}
	ns2, err := k.NewNamespace(ctx, "smoke")
	if err != nil || ns2 == ns {
		t.Fatalf("second namespace %q (%v) not distinct from %q", ns2, err, ns)
	}
	isvc := dyn.Resource(InferenceServiceGVR()).Namespace(ns)

	t.Run("CRD schema rejects a string canaryTrafficPercent", func(t *testing.T) {
		_, err := isvc.Create(ctx, inferenceService(ns, "bad", "10"), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("err = %v, want Invalid", err)
		}
		if !strings.Contains(err.Error(), "canaryTrafficPercent") {
			t.Fatalf("error does not name the field: %v", err)
		}
	})

	t.Run("valid InferenceService is accepted via server-side apply", func(t *testing.T) {
		obj := inferenceService(ns, "churn", int64(10))
		js, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		got, err := isvc.Patch(ctx, "churn", types.ApplyPatchType, js, metav1.PatchOptions{FieldManager: "modelsync", Force: &force})
		if err != nil {
			t.Fatal(err)
		}
		v, found, _ := unstructured.NestedInt64(got.Object, "spec", "predictor", "canaryTrafficPercent")
		if !found || v != 10 {
			t.Fatalf("stored canaryTrafficPercent = %v (found %v)", v, found)
		}
	})

	t.Run("Leases", func(t *testing.T) {
		holder := "modelsync-0"
		dur := int32(15)
		l, err := cs.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "modelsync-leader"},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Optimistic concurrency: an update on a stale resourceVersion fails.
		l.Spec.HolderIdentity = ptrTo("modelsync-1")
		if _, err := cs.CoordinationV1().Leases(ns).Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		l.Spec.HolderIdentity = ptrTo("modelsync-2")
		if _, err := cs.CoordinationV1().Leases(ns).Update(ctx, l, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
			t.Fatalf("stale lease update: err = %v, want Conflict", err)
		}
	})

	t.Run("Events", func(t *testing.T) {
		_, err := cs.CoreV1().Events(ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{GenerateName: "churn."},
			InvolvedObject: corev1.ObjectReference{APIVersion: "serving.kserve.io/v1beta1", Kind: "InferenceService", Namespace: ns, Name: "churn"},
			Reason:         "Synced",
			Message:        "applied version 1",
			Type:           corev1.EventTypeNormal,
			Source:         corev1.EventSource{Component: "modelsync"},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=churn"})
		if err != nil || len(evs.Items) != 1 || evs.Items[0].Reason != "Synced" {
			t.Fatalf("events = %+v, %v", evs, err)
		}
	})

	t.Run("kubeconfig works", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", k.KubeconfigPath)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kc.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RBAC denies an impersonated user without roles", func(t *testing.T) {
		cfg := *k.RESTConfig
		cfg.Impersonate.UserName = "nobody"
		kc, err := kubernetes.NewForConfig(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kc.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("err = %v, want Forbidden", err)
		}
	})
}

// The audit log names who sent each request: a user of UserRESTConfig
// shows up under its own name, apart from the admin's requests.
func TestKubeAuditLogNamesTheUser(t *testing.T) {
	k := NewKubeWith(t, KubeOptions{AuditLog: true})
	ctx := t.Context()
	cfg, err := k.UserRESTConfig("replica-x", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	cfg.UserAgent = "testenv-audit/replica-x"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := k.NewNamespace(ctx, "audit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "by-x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A kubeconfig for a user without groups: RBAC denies, the audit log
	// still records the attempt.
	path, err := k.UserKubeconfig("nobody-x")
	if err != nil {
		t.Fatal(err)
	}
	ncfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	ncs, err := kubernetes.NewForConfig(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ncs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "by-nobody"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("user without groups: err = %v, want Forbidden", err)
	}
	evs, err := k.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	var byX, byNobody, nsCreate bool
	for _, e := range evs {
		if !e.IsWrite() || e.ObjectRef == nil {
			continue
		}
		switch {
		case e.User.Username == "replica-x" && e.ObjectRef.Resource == "configmaps" && e.ObjectRef.Namespace == ns && e.Code() == 201:
			byX = e.UserAgent == "testenv-audit/replica-x"
		case e.User.Username == "nobody-x" && e.ObjectRef.Resource == "configmaps" && e.Code() == 403:
			byNobody = true
		case e.User.Username == "modelsync-testenv-admin" && e.ObjectRef.Resource == "namespaces" && e.ObjectRef.Name == ns:
			nsCreate = true
		}
	}
	if !byX || !byNobody || !nsCreate {
		var lines []string
		for _, e := range evs {
			if e.IsWrite() {
				lines = append(lines, e.String())
			}
		}
		t.Fatalf("audit log: configmap by replica-x %v, denied one by nobody-x %v, namespace by admin %v; writes:\n%s", byX, byNobody, nsCreate, strings.Join(lines, "\n"))
	}
}
