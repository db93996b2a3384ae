package serve

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/prometheus"
	"github.com/modelsync/modelsync/internal/rollback"
	"github.com/modelsync/modelsync/reconciler"
)

// Write-back modes of --canary-write-back.
const (
	// WriteBackAuto (the default) opens pull requests when GitHub
	// credentials are configured, else commits to the branch, and says
	// which at startup.
	WriteBackAuto   = "auto"
	WriteBackPR     = "pr"
	WriteBackDirect = "direct"
	WriteBackOff    = "off"
)

var inferenceServices = schema.GroupVersionResource{Group: "serving.kserve.io", Version: "v1beta1", Resource: "inferenceservices"}

// buildAnalysis wires the canary analysis: records in ConfigMaps of the
// controller's namespace, arms read from each InferenceService's status,
// one Prometheus client per provider, MLflow runs when MLflow is set, and
// the write-back to Git --canary-write-back asks for.
func buildAnalysis(opts *Options, kc kubernetes.Interface, dyn dynamic.Interface, log *slog.Logger) (*controller.AnalysisOptions, error) {
	f := opts.Factory
	ns := firstNonEmpty(f.Getenv(EnvPodNamespace), opts.LeaderElectionNamespace, "modelsync-system")
	if missing, err := missingRecordAccess(kc, ns); err != nil {
		return nil, fmt.Errorf("canary analysis: checking access to its records in namespace %s: %w", ns, err)
	} else if missing != "" {
		// Without its records an analysis could not keep its evidence
		// across restarts, and every canary's reconcile would fail on a
		// 403: run without analysis (canaries stay at Git's weight) and say
		// how to turn it on.
		log.Warn("canary analysis is off: this identity may not "+missing+" configmaps in namespace "+ns+
			" (install deploy/components/canary-analysis); canaries stay at the weight in Git", "namespace", ns)
		return nil, nil
	}
	evs := &evaluators{byKey: map[string]*canary.Evaluator{}, getenv: f.Getenv}
	ao := &controller.AnalysisOptions{
		SpecFor: func(model string, env reconciler.DesiredEnv) (canary.Spec, bool, error) {
			s, ok, err := canary.SpecFor(model, env, model)
			if err != nil || !ok {
				return s, ok, err
			}
			s = s.WithAddress(opts.PrometheusURL)
			if s.Provider.Address == "" {
				return s, true, fmt.Errorf("model %s environment %s: no Prometheus address (canary.analysis.provider.address, modelsync.yaml analysis.prometheus.address or serve --prometheus-url)", model, env.Environment)
			}
			return s, true, nil
		},
		// A list by name rather than a get: the environment ClusterRole
		// already grants list (the KServe target's informers use it).
		Revisions: func(ctx context.Context, namespace, name string) (canary.Revisions, error) {
			l, err := dyn.Resource(inferenceServices).Namespace(namespace).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
			if err != nil {
				return canary.Revisions{}, err
			}
			if len(l.Items) != 1 {
				return canary.Revisions{}, fmt.Errorf("inferenceservice %s/%s: %w (not found)", namespace, name, canary.ErrNoRevisions)
			}
			return canary.RevisionsOf(&l.Items[0])
		},
		Evaluator: evs,
		Store:     &controller.ConfigMapStore{Client: kc, Namespace: ns},
	}
	if f.HasMLflow() {
		mc, err := f.MLflow()
		if err != nil {
			return nil, fmt.Errorf("canary analysis runs in MLflow: %w", err)
		}
		ao.Recorder = canary.NewRunRecorder(mc)
	}
	mode, note, err := chooseWriteBack(opts.CanaryWriteBack, githubConfigured(opts))
	if err != nil {
		return nil, err
	}
	if note != "" {
		log.Info(note)
	}
	if mode == WriteBackOff {
		log.Warn("canary outcomes are not written back to Git (--canary-write-back off): a promotion or rollback holds until a person changes Git")
		return ao, nil
	}
	w := &rollback.CanaryWriter{URL: opts.Repo.URL, Branch: opts.Repo.Branch, Auth: gitsource.AuthFromEnv(f.Getenv),
		Direct: mode == WriteBackDirect, Author: func() rollback.Signature {
			return rollback.Signature{Name: firstNonEmpty(f.Getenv("GIT_AUTHOR_NAME"), controller.ActorController),
				Email: firstNonEmpty(f.Getenv("GIT_AUTHOR_EMAIL"), controller.ActorController+"@localhost"), When: time.Now()}
		}}
	if !w.Direct {
		// Fail at startup, as `modelsync rollback` fails before its push:
		// a write-back that cannot open its pull request would only hold
		// every outcome until a person noticed.
		owner, name, err := githubRepoOf(opts)
		if err != nil {
			return nil, fmt.Errorf("canary write-back by pull request: no GitHub repository (set --github-repository, or --canary-write-back direct or off): %w", err)
		}
		if f.GitHubFlags.APIURL == "" && f.GitHubFlags.Transport == nil {
			f.GitHubFlags = cmdutil.GitHubFlags{APIURL: opts.GitHubAPIURL, AppID: opts.AppID, InstallationID: opts.InstallationID,
				AppKeyFile: opts.AppKeyFile, Transport: opts.Transport}
		}
		client, err := f.GitHub()
		if err != nil {
			return nil, fmt.Errorf("canary write-back by pull request: the GitHub client: %w", err)
		}
		w.GitHub, w.Owner, w.Name = client.REST(), owner, name
	}
	ao.WriteBack = w
	return ao, nil
}

// githubConfigured reports whether serve has GitHub credentials: a token
// or a GitHub App, by flag or variable.
func githubConfigured(opts *Options) bool {
	g := opts.Factory.Getenv
	return g(cmdutil.EnvGitHubToken) != "" || opts.AppID != 0 || opts.AppKeyFile != "" ||
		g(cmdutil.EnvGitHubAppID) != "" || g(cmdutil.EnvGitHubAppKeyFile) != ""
}

// chooseWriteBack resolves --canary-write-back like `modelsync rollback`
// chooses: pull requests where GitHub credentials are configured, and an
// explicit pr without them is an error at startup, not a write-back that
// fails at the first outcome. The default auto falls back to a direct
// commit, as Flux's image automation commits to its branch, and note says
// so once at startup; a protected branch then shows every refused push in
// status and events, and the outcome holds meanwhile.
func chooseWriteBack(mode string, github bool) (resolved, note string, err error) {
	switch mode {
	case WriteBackAuto, "":
		if github {
			return WriteBackPR, "canary outcomes are written back to Git as pull requests (GitHub credentials configured; --canary-write-back auto)", nil
		}
		return WriteBackDirect, "canary outcomes are committed directly to the environment's branch: no GitHub credentials for pull requests " +
			"(configure GitHub for pull requests, or --canary-write-back off; --canary-write-back auto)", nil
	case WriteBackPR:
		if !github {
			return "", "", fmt.Errorf("--canary-write-back pr opens pull requests and needs GitHub credentials ($%s or a GitHub App); configure them, or choose --canary-write-back direct or off",
				cmdutil.EnvGitHubToken)
		}
		return WriteBackPR, "", nil
	case WriteBackDirect, WriteBackOff:
		return mode, "", nil
	}
	return "", "", fmt.Errorf("--canary-write-back %q: want auto, pr, direct or off", mode)
}

// evaluators keeps one Evaluator per Prometheus provider: canaries may
// name different ones, and a client per provider keeps its connections.
type evaluators struct {
	mu     sync.Mutex
	byKey  map[string]*canary.Evaluator
	getenv func(string) string
}

func (e *evaluators) get(s canary.Spec) (*canary.Evaluator, error) {
	p := s.Provider
	key := strings.Join([]string{p.Address, p.BearerTokenEnv, p.UsernameEnv, p.PasswordEnv, p.CAFile, fmt.Sprint(p.InsecureSkipVerify)}, "\x00")
	e.mu.Lock()
	defer e.mu.Unlock()
	if ev, ok := e.byKey[key]; ok {
		return ev, nil
	}
	p.Getenv = e.getenv
	c, err := prometheus.New(p)
	if err != nil {
		return nil, fmt.Errorf("canary analysis of model %s environment %s: %w", s.Model, s.Environment, err)
	}
	ev := canary.NewEvaluator(c)
	e.byKey[key] = ev
	return ev, nil
}

func (e *evaluators) Look(ctx context.Context, s canary.Spec, revs canary.Revisions, st analysis.State, now time.Time) (analysis.State, analysis.Decision, error) {
	ev, err := e.get(s)
	if err != nil {
		return st, analysis.Decision{}, err
	}
	return ev.Look(ctx, s, revs, st, now)
}

func (e *evaluators) Advance(s canary.Spec, st analysis.State, now time.Time) (analysis.State, error) {
	ev, err := e.get(s)
	if err != nil {
		return st, err
	}
	return ev.Advance(s, st, now)
}

func (e *evaluators) Verify(ctx context.Context, s canary.Spec, promoted, previous string, promotedAt, now time.Time) (analysis.Decision, error) {
	ev, err := e.get(s)
	if err != nil {
		return analysis.Decision{}, err
	}
	return ev.Verify(ctx, s, promoted, previous, promotedAt, now)
}

// recordVerbs are what the ConfigMap store of canary records does.
var recordVerbs = []string{"get", "create", "update", "delete"}

// missingRecordAccess asks the API server (a SelfSubjectAccessReview each,
// which every authenticated identity may make) whether this identity may
// keep canary records in ns, and returns the first verb it may not use.
func missingRecordAccess(kc kubernetes.Interface, ns string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, verb := range recordVerbs {
		r, err := kc.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Resource: "configmaps"}},
		}, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		if !r.Status.Allowed {
			return verb, nil
		}
	}
	return "", nil
}
