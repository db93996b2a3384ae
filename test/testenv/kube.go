package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// ServiceClusterIPRange is the apiserver's --service-cluster-ip-range. No
// traffic ever goes there; it only has to be a valid range.
const ServiceClusterIPRange = "10.0.0.0/24"

// TestFieldManager is the server-side-apply field manager testenv uses for
// the objects it installs (the KServe CRD).
const TestFieldManager = "modelsync-testenv"

// InferenceServiceGVR is the KServe resource the tests use.
func InferenceServiceGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "serving.kserve.io", Version: "v1beta1", Resource: "inferenceservices"}
}

func crdGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
}

// Kube is a real etcd plus kube-apiserver (no controllers, no nodes) with
// the KServe InferenceService CRD installed. Authorization is RBAC; the
// RESTConfig and kubeconfig carry an admin client certificate in
// system:masters, so tests can also impersonate narrower users.
type Kube struct {
	RESTConfig     *rest.Config
	KubeconfigPath string
	ReadyIn        time.Duration // etcd + apiserver + CRD established
	// AuditLogPath is the apiserver's audit log (JSON lines), when
	// KubeOptions.AuditLog asked for one; AuditEvents reads it.
	AuditLogPath string

	etcd      *proc
	apiserver *proc
	dir       string
	pki       *kubePKI
}

// KubeOptions configure StartKubeWith.
type KubeOptions struct {
	// AuditLog makes kube-apiserver record every request it serves (level
	// Metadata, stage ResponseComplete, blocking mode: written before the
	// response) in Kube.AuditLogPath, so a test can see from the server's
	// side who sent which request.
	AuditLog bool
}

// auditPolicy records who did what to which object, without bodies.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
`

// StartKube starts etcd and kube-apiserver on free loopback ports with a
// fresh PKI and data directory, and installs the KServe CRD.
func StartKube(ctx context.Context, logDir string) (*Kube, error) {
	return StartKubeWith(ctx, logDir, KubeOptions{})
}

// StartKubeWith is StartKube with options.
func StartKubeWith(ctx context.Context, logDir string, opts KubeOptions) (*Kube, error) {
	binDir, err := KubeBinDir()
	if err != nil {
		return nil, err
	}
	crdPath, err := KServeCRDPath()
	if err != nil {
		return nil, err
	}
	logDir, err = ensureLogDir(logDir, "kube")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "modelsync-kube-")
	if err != nil {
		return nil, fmt.Errorf("testenv: kube dir: %w", err)
	}
	k := &Kube{dir: dir}
	ok := false
	defer func() {
		if !ok {
			_ = k.Close()
		}
	}()
	timer := startTimer()
	pki, err := writePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	k.pki = pki
	var auditArgs []string
	if opts.AuditLog {
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return nil, fmt.Errorf("testenv: audit policy: %w", err)
		}
		// In the log directory, so a failed test keeps it.
		f, err := os.CreateTemp(logDir, "kube-apiserver-audit-*.log")
		if err != nil {
			return nil, fmt.Errorf("testenv: audit log: %w", err)
		}
		f.Close()
		k.AuditLogPath = f.Name()
		auditArgs = []string{
			"--audit-policy-file=" + policy,
			"--audit-log-path=" + k.AuditLogPath,
			"--audit-log-format=json",
			"--audit-log-mode=blocking",
		}
	}

	etcdURL := ""
	k.etcd, err = startWithRetry(func() (*proc, error) {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		p, err := startProc(procSpec{
			name: "etcd",
			path: filepath.Join(binDir, "etcd"),
			args: []string{
				"--name=default",
				"--data-dir=" + filepath.Join(dir, "etcd"),
				"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
				"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
				"--initial-cluster=default=" + peer,
				// Throwaway data: durability only costs time.
				"--unsafe-no-fsync",
				"--log-level=warn",
			},
			dir:    dir,
			logDir: logDir,
		})
		if err != nil {
			return nil, err
		}
		if err := waitReady(ctx, p, 60*time.Second, func(ctx context.Context) error {
			var h struct {
				Health string `json:"health"`
			}
			if err := getJSON(ctx, client+"/health", &h); err != nil {
				return err
			}
			if h.Health != "true" {
				return fmt.Errorf("etcd health %q", h.Health)
			}
			return nil
		}); err != nil {
			_ = p.Close()
			return nil, err
		}
		etcdURL = client
		return p, nil
	})
	if err != nil {
		return nil, err
	}

	k.apiserver, err = startWithRetry(func() (*proc, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := startProc(procSpec{
			name: "kube-apiserver",
			path: filepath.Join(binDir, "kube-apiserver"),
			args: append([]string{
				"--etcd-servers=" + etcdURL,
				"--bind-address=127.0.0.1",
				"--advertise-address=127.0.0.1",
				// The lease reconciler refuses a loopback advertise address,
				// and nothing here needs the kubernetes Service endpoints.
				"--endpoint-reconciler-type=none",
				"--secure-port=" + strconv.Itoa(port),
				"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
				"--tls-cert-file=" + pki.servingCert,
				"--tls-private-key-file=" + pki.servingKey,
				"--client-ca-file=" + pki.caCert,
				"--authorization-mode=RBAC",
				"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
				"--service-account-key-file=" + pki.saKey,
				"--service-account-signing-key-file=" + pki.saKey,
				"--service-cluster-ip-range=" + ServiceClusterIPRange,
				// No controller-manager creates default service accounts.
				"--disable-admission-plugins=ServiceAccount",
				"--allow-privileged=true",
				// Bootstrapping flow-control objects adds startup time and
				// nothing the tests look at.
				"--enable-priority-and-fairness=false",
				"--profiling=false",
				"--v=1",
			}, auditArgs...),
			dir:    dir,
			logDir: logDir,
		})
		if err != nil {
			return nil, err
		}
		k.RESTConfig = &rest.Config{
			Host: "https://127.0.0.1:" + strconv.Itoa(port),
			TLSClientConfig: rest.TLSClientConfig{
				CAData:   pki.caPEM,
				CertData: pki.adminCertPEM,
				KeyData:  pki.adminKeyPEM,
			},
			QPS:   200,
			Burst: 400,
		}
		cs, err := kubernetes.NewForConfig(k.RESTConfig)
		if err != nil {
			_ = p.Close()
			return nil, fmt.Errorf("testenv: kube client: %w", err)
		}
		if err := waitReady(ctx, p, 120*time.Second, func(ctx context.Context) error {
			body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			if err != nil {
				return fmt.Errorf("%w: %s", err, body)
			}
			return nil
		}); err != nil {
			_ = p.Close()
			return nil, err
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}

	k.KubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(k.KubeconfigPath, k.RESTConfig); err != nil {
		return nil, err
	}
	if err := k.installCRD(ctx, crdPath); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, k.apiserver.tail())
	}
	k.ReadyIn = timer.elapsed()
	ok = true
	return k, nil
}

// installCRD server-side-applies every CRD in path and waits until each is
// Established and served by discovery (a CR created before discovery knows
// the resource gets a 404).
func (k *Kube) installCRD(ctx context.Context, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("testenv: read CRD %s: %w", path, err)
	}
	dyn, err := dynamic.NewForConfig(k.RESTConfig)
	if err != nil {
		return fmt.Errorf("testenv: dynamic client: %w", err)
	}
	cs, err := kubernetes.NewForConfig(k.RESTConfig)
	if err != nil {
		return fmt.Errorf("testenv: kube client: %w", err)
	}
	type served struct{ groupVersion, plural string }
	var want []served
	var names []string
	for _, doc := range splitYAML(raw) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("testenv: CRD %s: %w", path, err)
		}
		var u unstructured.Unstructured
		if err := u.UnmarshalJSON(js); err != nil {
			return fmt.Errorf("testenv: CRD %s: %w", path, err)
		}
		if u.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if _, err := dyn.Resource(crdGVR()).Patch(ctx, u.GetName(), types.ApplyPatchType, js,
			metav1.PatchOptions{FieldManager: TestFieldManager, Force: ptrTo(true)}); err != nil {
			return fmt.Errorf("testenv: apply CRD %s: %w", u.GetName(), err)
		}
		names = append(names, u.GetName())
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
		versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
		for _, v := range versions {
			vm, _ := v.(map[string]any)
			if s, _ := vm["served"].(bool); s {
				name, _ := vm["name"].(string)
				want = append(want, served{group + "/" + name, plural})
			}
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("testenv: %s holds no CustomResourceDefinition", path)
	}
	err = poll(ctx, 60*time.Second, func(ctx context.Context) error {
		for _, n := range names {
			crd, err := dyn.Resource(crdGVR()).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			established := false
			for _, c := range conds {
				cm, _ := c.(map[string]any)
				if cm["type"] == "Established" && cm["status"] == "True" {
					established = true
				}
			}
			if !established {
				return fmt.Errorf("CRD %s not Established yet", n)
			}
		}
		for _, w := range want {
			list, err := cs.Discovery().ServerResourcesForGroupVersion(w.groupVersion)
			if err != nil {
				return err
			}
			found := false
			for _, r := range list.APIResources {
				found = found || r.Name == w.plural
			}
			if !found {
				return fmt.Errorf("%s %s not in discovery yet", w.groupVersion, w.plural)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The apiserver builds a CRD's serving state (schema validators for the
	// 2 MB KServe schema) on the first request; take that hit here, not in
	// the first test's deadline.
	for _, w := range want {
		gv, err := schema.ParseGroupVersion(w.groupVersion)
		if err != nil {
			return err
		}
		if _, err := dyn.Resource(gv.WithResource(w.plural)).Namespace("default").List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			return fmt.Errorf("testenv: warm up %s %s: %w", w.groupVersion, w.plural, err)
		}
	}
	return nil
}

// NewNamespace creates a namespace named prefix-<random> and returns the name.
func (k *Kube) NewNamespace(ctx context.Context, prefix string) (string, error) {
	cs, err := kubernetes.NewForConfig(k.RESTConfig)
	if err != nil {
		return "", fmt.Errorf("testenv: kube client: %w", err)
	}
	name := UniqueName(strings.ToLower(prefix))
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("testenv: create namespace %s: %w", name, err)
	}
	return name, nil
}

// Close stops kube-apiserver, then etcd, and deletes all state.
func (k *Kube) Close() error {
	var errs []error
	if k.apiserver != nil {
		errs = append(errs, k.apiserver.Close())
	}
	if k.etcd != nil {
		errs = append(errs, k.etcd.Close())
	}
	errs = append(errs, os.RemoveAll(k.dir))
	return errors.Join(errs...)
}

func (k *Kube) logPaths() []string {
	var ps []string
	for _, p := range []*proc{k.etcd, k.apiserver} {
		if p != nil {
			ps = append(ps, p.LogPath)
		}
	}
	return ps
}

// NewKube starts a Kube for one test.
func NewKube(tb testing.TB) *Kube {
	tb.Helper()
	return NewKubeWith(tb, KubeOptions{})
}

// NewKubeWith starts a Kube with options for one test.
func NewKubeWith(tb testing.TB, opts KubeOptions) *Kube {
	tb.Helper()
	RequireE2E(tb)
	k, err := StartKubeWith(tbContext(tb), tbLogDir(tb), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tbCleanup(tb, k.Close, k.logPaths)
	return k
}

// UserRESTConfig returns a client configuration that authenticates as user
// in groups with a client certificate of its own, so the audit log tells
// its requests from everyone else's. Give it "system:masters" for full
// rights; without groups RBAC allows it nothing.
func (k *Kube) UserRESTConfig(user string, groups ...string) (*rest.Config, error) {
	certPEM, keyPEM, err := k.pki.clientCert(user, groups)
	if err != nil {
		return nil, fmt.Errorf("testenv: client certificate for %s: %w", user, err)
	}
	cfg := rest.CopyConfig(k.RESTConfig)
	cfg.CertData, cfg.KeyData = certPEM, keyPEM
	return cfg, nil
}

// UserKubeconfig writes a kubeconfig for UserRESTConfig(user, groups...)
// and returns its path.
func (k *Kube) UserKubeconfig(user string, groups ...string) (string, error) {
	cfg, err := k.UserRESTConfig(user, groups...)
	if err != nil {
		return "", err
	}
	path := filepath.Join(k.dir, "kubeconfig-"+UniqueName("user"))
	if err := writeKubeconfig(path, cfg); err != nil {
		return "", err
	}
	return path, nil
}

// AuditEvent is one audit log entry, the fields tests look at.
type AuditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	UserAgent string `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
	StageTimestamp           time.Time `json:"stageTimestamp"`
}

// IsWrite reports whether the request asked to change state: create,
// update, patch, delete or deletecollection (whatever the answer was).
func (e AuditEvent) IsWrite() bool {
	switch e.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		// A review (access or token) is a question sent as a create; the
		// API server stores nothing.
		return e.ObjectRef == nil || !reviewResources[e.ObjectRef.Resource]
	}
	return false
}

// reviewResources are the authentication and authorization APIs whose
// create only asks.
var reviewResources = map[string]bool{
	"selfsubjectaccessreviews": true, "subjectaccessreviews": true, "localsubjectaccessreviews": true,
	"selfsubjectrulesreviews": true, "selfsubjectreviews": true, "tokenreviews": true,
}

// Resource is "resource[/subresource] namespace/name" for messages.
func (e AuditEvent) Resource() string {
	if e.ObjectRef == nil {
		return e.RequestURI
	}
	r := e.ObjectRef.Resource
	if e.ObjectRef.Subresource != "" {
		r += "/" + e.ObjectRef.Subresource
	}
	return r + " " + e.ObjectRef.Namespace + "/" + e.ObjectRef.Name
}

// Code is the response status code (0 when the request got none).
func (e AuditEvent) Code() int {
	if e.ResponseStatus == nil {
		return 0
	}
	return e.ResponseStatus.Code
}

func (e AuditEvent) String() string {
	return fmt.Sprintf("%s %s %s by %s (%s) -> %d", e.RequestReceivedTimestamp.Format(time.RFC3339Nano), e.Verb, e.Resource(), e.User.Username, e.UserAgent, e.Code())
}

// AuditEvents reads the audit log written so far, in the order the
// apiserver wrote it. It needs KubeOptions.AuditLog.
func (k *Kube) AuditEvents() ([]AuditEvent, error) {
	if k.AuditLogPath == "" {
		return nil, errors.New("testenv: kube-apiserver runs without an audit log (KubeOptions.AuditLog)")
	}
	b, err := os.ReadFile(k.AuditLogPath)
	if err != nil {
		return nil, fmt.Errorf("testenv: audit log: %w", err)
	}
	var out []AuditEvent
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e AuditEvent
		if err := json.Unmarshal(line, &e); err != nil {
			// The last line may be half written.
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func ptrTo[T any](v T) *T { return &v }

// poll retries f until it succeeds or the timeout passes.
func poll(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := 20 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: gave up after %s: %w", timeout, err)
		case <-time.After(interval):
		}
		if interval < 250*time.Millisecond {
			interval = interval * 3 / 2
		}
	}
}

// splitYAML splits a multi-document YAML stream on "---" lines.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(cur.Bytes())) > 0 {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if t := bytes.TrimRight(line, " \t\r\n"); bytes.Equal(t, []byte("---")) {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

type kubePKI struct {
	caCert, servingCert, servingKey, saKey string
	caPEM, adminCertPEM, adminKeyPEM       []byte

	// The CA itself, to issue more client certificates (UserRESTConfig).
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// clientCert issues a client certificate for user in groups.
func (p *kubePKI) clientCert(user string, groups []string) (certPEM, keyPEM []byte, err error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	cert, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: user, Organization: groups},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), keyPEM, nil
}

// newKey generates an ECDSA P-256 key (fast to make) and its PEM form.
func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// writePKI creates a CA, a serving certificate for 127.0.0.1, an admin
// client certificate in system:masters and a service-account signing key.
// ECDSA keeps generation fast.
func writePKI(dir string) (*kubePKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("testenv: pki dir: %w", err)
	}
	now := time.Now()
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
		return n
	}
	caKey, _, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("testenv: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "modelsync-testenv-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("testenv: CA cert: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	issue := func(tmpl *x509.Certificate) ([]byte, []byte, error) {
		key, keyPEM, err := newKey()
		if err != nil {
			return nil, nil, err
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
	}
	servingPEM, servingKeyPEM, err := issue(&x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: serving cert: %w", err)
	}
	adminPEM, adminKeyPEM, err := issue(&x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "modelsync-testenv-admin", Organization: []string{"system:masters"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: admin cert: %w", err)
	}
	_, saKeyPEM, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("testenv: service-account key: %w", err)
	}
	p := &kubePKI{
		caCert:       filepath.Join(dir, "ca.crt"),
		servingCert:  filepath.Join(dir, "apiserver.crt"),
		servingKey:   filepath.Join(dir, "apiserver.key"),
		saKey:        filepath.Join(dir, "sa.key"),
		caPEM:        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		adminCertPEM: adminPEM,
		adminKeyPEM:  adminKeyPEM,
		ca:           caCert,
		caKey:        caKey,
	}
	for path, data := range map[string][]byte{
		p.caCert: p.caPEM, p.servingCert: servingPEM, p.servingKey: servingKeyPEM, p.saKey: saKeyPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("testenv: write %s: %w", filepath.Base(path), err)
		}
	}
	return p, nil
}

func writeKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["testenv"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "testenv"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("testenv: write kubeconfig: %w", err)
	}
	return nil
}
