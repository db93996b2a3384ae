package apiauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Kubernetes authenticates bearer tokens with a TokenReview and authorizes
// their holders with a SubjectAccessReview, so the cluster's own users,
// ServiceAccounts and RBAC decide who may pin or reconcile — the pattern of
// kube-rbac-proxy and aggregated API servers. The ServiceAccount running
// modelsync needs create on tokenreviews and subjectaccessreviews (the
// built-in ClusterRole system:auth-delegator).
//
// A route's Attributes become resource attributes {group modelsync.io,
// resource, verb} in Namespace: grant them with a Role there.
type Kubernetes struct {
	client    kubernetes.Interface
	namespace string
	// Audiences, when set, are required of reviewed tokens.
	audiences []string
	ttl       time.Duration
	now       func() time.Time

	mu     sync.Mutex
	tokens map[[sha256.Size]byte]cachedIdentity
	grants map[string]cachedDecision
}

type cachedIdentity struct {
	id      Identity
	ok      bool
	expires time.Time
}

type cachedDecision struct {
	d       Decision
	expires time.Time
}

// KubernetesOptions configure the provider.
type KubernetesOptions struct {
	Client kubernetes.Interface
	// Namespace is where SubjectAccessReviews ask about modelsync.io
	// resources (the namespace modelsync runs in).
	Namespace string
	Audiences []string
	// CacheTTL bounds how long an answer is reused (default 10s): a revoked
	// token or a removed RoleBinding stops working within it.
	CacheTTL time.Duration
	Now      func() time.Time
}

// maxCached bounds each answer cache; beyond it expired answers are dropped
// and, if none expired, the cache starts over. A flood of random tokens
// costs API calls, not memory.
const maxCached = 4096

// NewKubernetes returns the provider.
func NewKubernetes(o KubernetesOptions) (*Kubernetes, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("kubernetes API authentication needs a Kubernetes client")
	}
	if o.Namespace == "" {
		return nil, fmt.Errorf("kubernetes API authorization needs the namespace to ask about")
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Kubernetes{client: o.Client, namespace: o.Namespace, audiences: o.Audiences, ttl: o.CacheTTL, now: o.Now,
		tokens: map[[sha256.Size]byte]cachedIdentity{}, grants: map[string]cachedDecision{}}, nil
}

func (k *Kubernetes) Name() string { return "kubernetes" }

// Authenticate sends the token to the API server's TokenReview. The cache
// is keyed by the token's digest, never the token.
func (k *Kubernetes) Authenticate(ctx context.Context, token string) (Identity, bool, error) {
	key := sha256.Sum256([]byte(token))
	now := k.now()
	k.mu.Lock()
	if c, hit := k.tokens[key]; hit && now.Before(c.expires) {
		k.mu.Unlock()
		return c.id, c.ok, nil
	}
	k.mu.Unlock()
	tr, err := k.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: k.audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, false, fmt.Errorf("TokenReview: %w", err)
	}
	var id Identity
	ok := tr.Status.Authenticated
	if ok {
		u := tr.Status.User
		id = Identity{Name: u.Username, UID: u.UID, Groups: u.Groups}
		if len(u.Extra) > 0 {
			id.Extra = make(map[string][]string, len(u.Extra))
			for k, v := range u.Extra {
				id.Extra[k] = v
			}
		}
	}
	k.mu.Lock()
	if len(k.tokens) >= maxCached {
		pruneExpired(k.tokens, now, func(c cachedIdentity) time.Time { return c.expires })
	}
	k.tokens[key] = cachedIdentity{id: id, ok: ok, expires: now.Add(k.ttl)}
	k.mu.Unlock()
	return id, ok, nil
}

// Authorize asks a SubjectAccessReview whether id may do attrs on
// modelsync.io resources in the namespace.
func (k *Kubernetes) Authorize(ctx context.Context, id Identity, attrs Attributes) (Decision, error) {
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%v", id.UID, id.Name, attrs, id.Groups)
	now := k.now()
	k.mu.Lock()
	if c, hit := k.grants[key]; hit && now.Before(c.expires) {
		k.mu.Unlock()
		return c.d, nil
	}
	k.mu.Unlock()
	extra := make(map[string]authzv1.ExtraValue, len(id.Extra))
	for k, v := range id.Extra {
		extra[k] = v
	}
	sar, err := k.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{
			User: id.Name, UID: id.UID, Groups: id.Groups, Extra: extra,
			ResourceAttributes: &authzv1.ResourceAttributes{Namespace: k.namespace, Verb: attrs.Verb, Group: Group, Resource: attrs.Resource},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return Decision{}, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	d := Decision{Allowed: sar.Status.Allowed && !sar.Status.Denied, Reason: sar.Status.Reason}
	if !d.Allowed && d.Reason == "" {
		d.Reason = fmt.Sprintf("no RBAC rule grants it in namespace %s", k.namespace)
	}
	k.mu.Lock()
	if len(k.grants) >= maxCached {
		pruneExpired(k.grants, now, func(c cachedDecision) time.Time { return c.expires })
	}
	k.grants[key] = cachedDecision{d: d, expires: now.Add(k.ttl)}
	k.mu.Unlock()
	return d, nil
}

func pruneExpired[K comparable, V any](m map[K]V, now time.Time, expires func(V) time.Time) {
	for k, v := range m {
		if !now.Before(expires(v)) {
			delete(m, k)
		}
	}
	if len(m) >= maxCached {
		clear(m)
	}
}
