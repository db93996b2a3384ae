// Package kserve is modelsync's KServe target (reconciler.Target named
// "kserve"). Per model and environment it renders the model's kustomization,
// sets what the model manifest decides, and keeps one InferenceService (and
// any serving.extraKinds objects) true to Git with server-side apply as field
// manager "modelsync".
//
// # Rendering
//
// Only models/<name>/ is copied into kustomize's in-memory file system, and
// every file access goes through a guard that refuses paths outside it, so a
// kustomization cannot read another model's files or the host's. A file is
// refused from its size before it is read (Config.MaxModelBytes, default 32
// MiB for the whole folder; Config.MaxModelFiles, default 2000 files).
//
// Before kustomize runs, every reference of every kustomization (and every
// file path of a builtin generator or transformer configuration) must be
// provably local: a relative path of plain file-name characters, inside the
// model folder, present there. Kustomize would clone anything its URL parser
// accepts with the git program, before looking at the file system, so
// nothing else is handed to it: with serving.allowRemoteBases off no process
// is started and nothing touches the disk. With it on, only https:// URLs of
// a host in serving.remoteBaseHosts pass, with ref/version values git cannot
// take for options and submodules=false; the kustomizations of such a clone
// are vetted as they are read, and the clone directories kustomize makes in
// the system temporary directory are removed when the build ends.
// overlays/<env> under (or beside) the serving directory is built when
// present. Kustomize output is cached per commit.
//
// # Canary (Knative mode)
//
// A canary points spec.predictor.model at the canary version with
// spec.predictor.canaryTrafficPercent = weight; KServe sends the rest to the
// last rolled-out revision. Because KServe copies ISVC labels and annotations
// into the Knative revision template, modelsync keeps them stable unless the
// model itself changes: label modelsync.dev/version names the version the
// predictor points at (the canary during a canary), and the
// modelsync.dev/revision annotation names the Git revision that last changed
// the served spec. So a weight change and a promotion change only the
// percentage and create no revision.
//
//   - A new object with a canary is created with the stable version first;
//     the canary starts once KServe reports a rolled-out revision, since the
//     first revision always takes 100%.
//   - Promotion (canary removed, version = former canary) removes the
//     percentage.
//   - Rollback (canary removed, version unchanged) is two actions in one
//     plan: set-canary-traffic to 0 (all traffic back to the last rolled-out
//     revision, no new revision), then apply-inferenceservice restoring the
//     stable model with the percentage held at 0 and annotation
//     modelsync.dev/rollback-of naming the canary revision. Dropping the
//     percentage at once would route 100% to the latest *ready* revision,
//     which until the restored revision is ready is the canary being rolled
//     back; a later plan removes the percentage once
//     status.components.predictor shows a newer revision ready, and waits
//     (a reconciler.Wait) until then.
//   - Standard/RawDeployment mode ignores canaryTrafficPercent silently, so
//     a canary there is refused (rendered annotation, live
//     status.deploymentMode, or Config.DefaultDeploymentMode).
//
// # Observing, drift and conflicts
//
// Each environment namespace gets two informers per resource: full objects
// labelled app.kubernetes.io/managed-by=modelsync, and metadata of all others
// (to notice an unlabelled object of a desired name, which is never taken
// over or pruned). A resync reads only these caches: it compares the fields
// modelsync sets (and those its managedFields say it owned) with the live
// object, and only on a difference makes a server-side dry-run apply, which
// also validates against the CRD schema. A quiet cluster costs no request.
// A differing field last written by another manager's update (kubectl
// edit/patch) is drift and is taken back with force; a field another manager
// applies is a conflict, reported with its name unless
// serving.forceConflicts is set.
//
// Pruning deletes managed objects whose model or environment left Git only
// when the repository sets prune, never for a model that failed to resolve,
// and never everything at once unless Config.AllowEmpty.
package kserve
