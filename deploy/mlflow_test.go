package deploy

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// mlflowExample is the kustomization that includes components/mlflow.
const mlflowExample = "examples/prod-with-mlflow"

// components/mlflow renders an MLflow server as it runs at scale (replicas
// on PostgreSQL, artifacts proxied to S3, basic auth) that is safe to run:
// non-root, read-only root filesystem with writable emptyDirs, no
// ServiceAccount token, probes and resources, every secret from a Secret
// reference and no Secret object (no value) in the repository.
func TestMLflowComponentRendersSafeServer(t *testing.T) {
	objs := render(t, mlflowExample)
	for _, o := range objs {
		if o.GetKind() == "Secret" {
			t.Errorf("rendered a Secret %s/%s: secret values never come from the repository", o.GetNamespace(), o.GetName())
		}
	}
	dep := find(objs, "Deployment", "mlflow", "mlflow")
	if dep == nil {
		t.Fatal("no Deployment mlflow/mlflow")
	}
	if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r < 2 {
		t.Errorf("replicas %d, want several", r)
	}
	pod, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
	if nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot"); !nonRoot {
		t.Error("pod does not require a non-root user")
	}
	if uid, _, _ := unstructured.NestedInt64(pod, "securityContext", "runAsUser"); uid == 0 {
		t.Error("pod runs as uid 0")
	}
	if automount, found, _ := unstructured.NestedBool(pod, "automountServiceAccountToken"); !found || automount {
		t.Error("pod mounts a ServiceAccount token")
	}
	sa := find(objs, "ServiceAccount", "mlflow", "mlflow")
	if sa == nil {
		t.Fatal("no ServiceAccount mlflow/mlflow")
	}
	if automount, found, _ := unstructured.NestedBool(sa.Object, "automountServiceAccountToken"); !found || automount {
		t.Error("ServiceAccount mlflow automounts its token")
	}
	if name, _, _ := unstructured.NestedString(pod, "serviceAccountName"); name != "mlflow" {
		t.Errorf("serviceAccountName %q, want mlflow", name)
	}
	for _, o := range objs {
		if (o.GetKind() == "RoleBinding" || o.GetKind() == "ClusterRoleBinding") && strings.Contains(o.GetName(), "mlflow") {
			t.Errorf("%s %s: MLflow needs no Kubernetes API access", o.GetKind(), o.GetName())
		}
	}

	c := container(t, dep)
	if ro, _, _ := unstructured.NestedBool(c, "securityContext", "readOnlyRootFilesystem"); !ro {
		t.Error("root filesystem is writable")
	}
	if esc, found, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation"); !found || esc {
		t.Error("privilege escalation allowed")
	}
	if drop, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "drop"); !slices.Equal(drop, []string{"ALL"}) {
		t.Errorf("capabilities drop %v, want ALL", drop)
	}
	for _, f := range [][]string{{"resources", "requests", "cpu"}, {"resources", "requests", "memory"}, {"resources", "limits", "cpu"}, {"resources", "limits", "memory"}} {
		if _, found, _ := unstructured.NestedFieldNoCopy(c, f...); !found {
			t.Errorf("container lacks %s", strings.Join(f, "."))
		}
	}
	for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
		path, _, _ := unstructured.NestedString(c, probe, "httpGet", "path")
		port, _, _ := unstructured.NestedString(c, probe, "httpGet", "port")
		if path != "/health" || port != "http" {
			t.Errorf("%s GET %s on port %q, want /health on http", probe, path, port)
		}
	}

	args, _, _ := unstructured.NestedStringSlice(c, "args")
	for _, want := range []string{"server", "--host=0.0.0.0", "--port=5000", "--serve-artifacts", "--app-name=basic-auth"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	for _, a := range args {
		if strings.Contains(a, "postgresql") || strings.Contains(a, "backend-store-uri") {
			t.Errorf("arg %q: the store URI carries a password and must come from the environment", a)
		}
	}

	// Every secret from a Secret key, every setting from the ConfigMap.
	env := map[string]map[string]any{}
	envs, _, _ := unstructured.NestedSlice(c, "env")
	for _, e := range envs {
		em := e.(map[string]any)
		env[em["name"].(string)] = em
	}
	secretFrom := map[string]string{
		"MLFLOW_BACKEND_STORE_URI":       "mlflow-db",
		"AWS_ACCESS_KEY_ID":              "mlflow-s3",
		"AWS_SECRET_ACCESS_KEY":          "mlflow-s3",
		"MLFLOW_S3_ENDPOINT_URL":         "mlflow-s3",
		"MLFLOW_FLASK_SERVER_SECRET_KEY": "mlflow-auth",
	}
	for name, secret := range secretFrom {
		got, _, _ := unstructured.NestedString(env[name], "valueFrom", "secretKeyRef", "name")
		key, _, _ := unstructured.NestedString(env[name], "valueFrom", "secretKeyRef", "key")
		if got != secret || key != name {
			t.Errorf("env %s from Secret %q key %q, want Secret %s key %s", name, got, key, secret, name)
		}
		if _, literal := env[name]["value"]; literal {
			t.Errorf("env %s has a literal value", name)
		}
	}
	cms := map[string]string{}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetNamespace() == "mlflow" {
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			for k, v := range data {
				cms[o.GetName()+"/"+k] = v
			}
		}
	}
	for _, name := range []string{"MLFLOW_ARTIFACTS_DESTINATION", "MLFLOW_SERVER_ALLOWED_HOSTS", "MLFLOW_WORKERS"} {
		cm, _, _ := unstructured.NestedString(env[name], "valueFrom", "configMapKeyRef", "name")
		key, _, _ := unstructured.NestedString(env[name], "valueFrom", "configMapKeyRef", "key")
		if _, ok := cms[cm+"/"+key]; !ok {
			t.Errorf("env %s from ConfigMap %s key %s, which the render does not have", name, cm, key)
		}
	}
	if dest, _, _ := unstructured.NestedString(env["MLFLOW_ARTIFACTS_DESTINATION"], "valueFrom", "configMapKeyRef", "name"); !strings.HasPrefix(cms[dest+"/artifactsDestination"], "s3://") {
		t.Errorf("artifacts destination %q, want s3://", cms[dest+"/artifactsDestination"])
	}
	// The Host check must admit the name modelsync's default tracking URI uses.
	var allowed string
	if cm, _, _ := unstructured.NestedString(env["MLFLOW_SERVER_ALLOWED_HOSTS"], "valueFrom", "configMapKeyRef", "name"); cm != "" {
		allowed = cms[cm+"/allowedHosts"]
	}
	if !slices.Contains(strings.Split(allowed, ","), "mlflow.mlflow.svc:5000") {
		t.Errorf("allowed hosts %q lack mlflow.mlflow.svc:5000, the base's mlflowTrackingURI", allowed)
	}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetNamespace() == "modelsync-system" {
			if uri, _, _ := unstructured.NestedString(o.Object, "data", "mlflowTrackingURI"); uri != "http://mlflow.mlflow.svc:5000" {
				t.Errorf("modelsync's mlflowTrackingURI %q does not reach the component's Service", uri)
			}
		}
	}

	// Writable paths are emptyDirs (bounded); the auth config is a read-only
	// Secret volume.
	mounts := map[string]map[string]any{}
	ms, _, _ := unstructured.NestedSlice(c, "volumeMounts")
	for _, m := range ms {
		mm := m.(map[string]any)
		mounts[mm["name"].(string)] = mm
	}
	vols := map[string]map[string]any{}
	vs, _, _ := unstructured.NestedSlice(pod, "volumes")
	for _, v := range vs {
		vm := v.(map[string]any)
		vols[vm["name"].(string)] = vm
	}
	for _, name := range []string{"home", "tmp"} {
		if _, ok := vols[name]["emptyDir"]; !ok || mounts[name] == nil {
			t.Errorf("volume %s: want a mounted emptyDir", name)
		}
		if limit, _, _ := unstructured.NestedString(vols[name], "emptyDir", "sizeLimit"); limit == "" {
			t.Errorf("emptyDir %s has no sizeLimit", name)
		}
	}
	if secret, _, _ := unstructured.NestedString(vols["auth"], "secret", "secretName"); secret != "mlflow-auth" || mounts["auth"]["readOnly"] != true {
		t.Errorf("auth config volume %v mounted %v: want Secret mlflow-auth, read-only", vols["auth"], mounts["auth"])
	}
	if p, _ := env["MLFLOW_AUTH_CONFIG_PATH"]["value"].(string); !strings.HasPrefix(p, mounts["auth"]["mountPath"].(string)+"/") {
		t.Errorf("MLFLOW_AUTH_CONFIG_PATH %q is not in the auth volume", p)
	}

	// The Service and the NetworkPolicy reach the port the container opens.
	svc := find(objs, "Service", "mlflow", "mlflow")
	if svc == nil {
		t.Fatal("no Service mlflow/mlflow")
	}
	sps, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	if len(sps) != 1 || sps[0].(map[string]any)["targetPort"] != "http" || sps[0].(map[string]any)["port"] != int64(5000) {
		t.Errorf("Service ports %v, want 5000 to the container's http port", sps)
	}
	if find(objs, "NetworkPolicy", "mlflow", "mlflow") == nil || find(objs, "PodDisruptionBudget", "mlflow", "mlflow") == nil {
		t.Error("no NetworkPolicy or PodDisruptionBudget for MLflow")
	}
	image, _, _ := unstructured.NestedString(c, "image")
	if name, tag, _ := strings.Cut(image, ":"); !strings.Contains(name, "/") || tag == "" || tag == "latest" {
		t.Errorf("image %q: want <registry>/mlflow:<version> from the images: entry", image)
	}
}
