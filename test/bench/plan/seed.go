package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/target/kserve"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/bench/internal/converged"
	"github.com/modelsync/modelsync/test/testenv"
)

// artifactBucket and artifactURI are where the seeded registry says each
// version's files are (converged.SeedMLflow writes this source).
const artifactBucket = "models"

func artifactURI(model string, version int) string {
	return fmt.Sprintf("s3://%s/%s/%d", artifactBucket, model, version)
}

// seedLocator answers what MLflow's get-download-uri answers for the
// seeded registry, so seeding needs no registry request. The children use
// the real locator: if the two disagree, the plans are not empty and the
// bench fails.
type seedLocator struct{}

func (seedLocator) ArtifactURI(_ context.Context, model string, version int) (string, error) {
	return artifactURI(model, version), nil
}

// desiredState computes the desired state of the repository at dir, which
// must hold n models and no errors.
func desiredState(ctx context.Context, dir, cache string, n int) (*reconciler.DesiredState, error) {
	r, err := repo.New(ctx, repo.Options{URL: dir, CacheDir: cache})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	snap, err := r.Sync(ctx)
	if err != nil {
		return nil, err
	}
	d, err := reconciler.ComputeDesiredWith(snap, "main", reconciler.DesiredOptions{})
	if err != nil {
		return nil, err
	}
	if len(d.Models) != n || len(d.Errors) > 0 {
		return nil, fmt.Errorf("desired state has %d models and errors %v, want %d and none", len(d.Models), d.Errors, n)
	}
	return d, nil
}

// onlyEnvironments is d with only the named environments (all when envs is
// empty), in the models and the repository configuration: a KServe target
// serving fewer environments than the registry has.
func onlyEnvironments(d *reconciler.DesiredState, envs []string) *reconciler.DesiredState {
	if len(envs) == 0 {
		return d
	}
	out := *d
	cfg := *d.Config
	cfg.Environments = slices.DeleteFunc(slices.Clone(cfg.Environments), func(e manifest.Environment) bool { return !slices.Contains(envs, e.Name) })
	out.Config = &cfg
	out.Models = make([]reconciler.DesiredModel, len(d.Models))
	for i, m := range d.Models {
		m.Environments = slices.DeleteFunc(slices.Clone(m.Environments), func(e reconciler.DesiredEnv) bool { return !slices.Contains(envs, e.Environment) })
		out.Models[i] = m
	}
	return &out
}

// seedKServe creates every environment namespace and, with workers
// concurrent clients, one InferenceService per model and environment: the
// target's own render, server-side applied as field manager modelsync
// (what the target's Apply sends for a new object). With status it also
// adds what KServe's controller writes: its finalizer and a rolled-out
// Knative-mode status. It returns the objects created.
func seedKServe(ctx context.Context, base *rest.Config, d *reconciler.DesiredState, workers int, status bool) (int, error) {
	rc := rest.CopyConfig(base)
	rc.QPS, rc.Burst = 5000, 10000
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return 0, err
	}
	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	for _, e := range d.Config.Environments {
		ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": e.Namespace}}}
		if _, err := dyn.Resource(nsGVR).Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return 0, fmt.Errorf("creating namespace %s: %w", e.Namespace, err)
		}
	}
	type job struct{ m, e int }
	var jobs []job
	for mi, m := range d.Models {
		for ei := range m.Environments {
			jobs = append(jobs, job{mi, ei})
		}
	}
	policy := d.Config.Serving
	isvcs := testenv.InferenceServiceGVR()
	err = converged.Parallel(ctx, len(jobs), workers, func(ctx context.Context, i int) error {
		m := &d.Models[jobs[i].m]
		env := &m.Environments[jobs[i].e]
		r, err := kserve.Render(ctx, m, env, policy, seedLocator{})
		if err != nil {
			return err
		}
		res := dyn.Resource(isvcs).Namespace(r.Namespace)
		if _, err := res.Apply(ctx, r.Name, r.InferenceService, metav1.ApplyOptions{FieldManager: kserve.FieldManager, Force: true}); err != nil {
			return fmt.Errorf("applying %s/%s (model %s, %s v%d): %w", r.Namespace, r.Name, m.Name, env.Environment, env.Version, err)
		}
		if !status {
			return nil
		}
		fin := []byte(`{"metadata":{"finalizers":["inferenceservice.finalizers"]}}`)
		if _, err := res.Patch(ctx, r.Name, k8stypes.MergePatchType, fin, metav1.PatchOptions{FieldManager: "manager"}); err != nil {
			return fmt.Errorf("adding the finalizer to %s/%s: %w", r.Namespace, r.Name, err)
		}
		body, err := knativeStatus(r.Name, r.Namespace, env.Version)
		if err != nil {
			return err
		}
		if _, err := res.Patch(ctx, r.Name, k8stypes.MergePatchType, body, metav1.PatchOptions{FieldManager: "manager"}, "status"); err != nil {
			return fmt.Errorf("writing the status of %s/%s: %w", r.Namespace, r.Name, err)
		}
		return nil
	})
	return len(jobs), err
}

// knativeStatus is the status KServe's controller writes for an
// InferenceService in Knative mode whose only revision rolled out.
func knativeStatus(name, ns string, version int) ([]byte, error) {
	rev := fmt.Sprintf("%s-predictor-%05d", name, version)
	var conds []any
	for _, typ := range []string{"IngressReady", "LatestDeploymentReady", "PredictorConfigurationReady", "PredictorReady", "PredictorRouteReady", "Ready", "RoutesReady"} {
		conds = append(conds, map[string]any{"type": typ, "status": "True", "severity": "Info", "lastTransitionTime": "2026-09-01T10:00:00Z"})
	}
	host := name + "." + ns
	st := map[string]any{
		"observedGeneration": 1,
		"deploymentMode":     "Serverless",
		"url":                "http://" + host + ".example.com",
		"address":            map[string]any{"url": "http://" + host + ".svc.cluster.local/v1/models/" + name + ":predict"},
		"conditions":         conds,
		"components": map[string]any{"predictor": map[string]any{
			"latestCreatedRevision":   rev,
			"latestReadyRevision":     rev,
			"latestRolledoutRevision": rev,
			"traffic":                 []any{map[string]any{"revisionName": rev, "percent": 100, "latestRevision": true}},
			"url":                     "http://" + name + "-predictor." + ns + ".example.com",
			"address":                 map[string]any{"url": "http://" + name + "-predictor." + ns + ".svc.cluster.local"},
		}},
		"modelStatus": map[string]any{
			"transitionStatus": "UpToDate",
			"states":           map[string]any{"activeModelState": "Loaded", "targetModelState": "Loaded"},
			"copies":           map[string]any{"failedCopies": 0, "totalCopies": 1},
		},
	}
	return json.Marshal(map[string]any{"status": st})
}

// seedS3 writes objects files under every referenced version's prefix in
// the artifact bucket with workers concurrent clients, in STANDARD: the
// class the lifecycle gives a version an environment references. It
// returns the objects written.
func seedS3(ctx context.Context, srv *testenv.S3, d *reconciler.DesiredState, objects, workers int) (int, error) {
	if err := srv.MakeBucket(ctx, artifactBucket, false); err != nil {
		return 0, err
	}
	c := srv.Client(ctx)
	var keys []string
	names := []string{"MLmodel", "model.pkl", "conda.yaml", "requirements.txt", "python_env.yaml"}
	for _, m := range d.Models {
		for _, v := range m.ReferencedVersions() {
			prefix := strings.TrimPrefix(artifactURI(m.RegisteredModel, v), "s3://"+artifactBucket+"/")
			for i := range objects {
				name := strconv.Itoa(i)
				if i < len(names) {
					name = names[i]
				}
				keys = append(keys, prefix+"/"+name)
			}
		}
	}
	err := converged.Parallel(ctx, len(keys), workers, func(ctx context.Context, i int) error {
		_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(artifactBucket), Key: aws.String(keys[i]),
			Body: strings.NewReader("artifact " + keys[i] + "\n"), StorageClass: types.StorageClassStandard})
		if err != nil {
			return fmt.Errorf("writing s3://%s/%s: %w", artifactBucket, keys[i], err)
		}
		return nil
	})
	return len(keys), err
}
