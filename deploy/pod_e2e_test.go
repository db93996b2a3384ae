package deploy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// This file plays the kubelet for the rendered Deployment's one container:
// it resolves the environment the way a pod gets it (ConfigMap and Secret
// keys read from the API server, the downward API, $(VAR) references in
// args), maps volume mounts to temporary directories and container ports
// to free loopback ports, and runs the real binary with nothing else in
// its environment.

// modelsyncBinary builds cmd/modelsync into the test's temporary directory.
func modelsyncBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "modelsync")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/modelsync/modelsync/cmd/modelsync").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// pod is the Deployment's container, resolved for one run on this host.
type pod struct {
	namespace string
	// container is the rendered container spec.
	container corev1.Container
	// service is the rendered Service in front of it (may be nil).
	service *corev1.Service
	args    []string
	env     []string
	// envMap is the container's environment as the kubelet resolved it.
	envMap map[string]string
	// ports maps each containerPort to the loopback port it runs on here.
	ports map[int32]int
	// root holds the volumes, the working directory and HOME.
	root, workdir string
}

// newPod resolves dep's container against the cluster's ConfigMaps and
// Secrets (read with the admin client cs, as the kubelet would read them).
// kubeconfig stands in for the mounted ServiceAccount token.
func newPod(t *testing.T, ctx context.Context, cs kubernetes.Interface, dep *unstructured.Unstructured, svc *unstructured.Unstructured, kubeconfig string) *pod {
	t.Helper()
	var spec corev1.PodSpec
	tmpl, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) > 0 {
		t.Fatalf("want exactly one container and no init containers, got %d and %d", len(spec.Containers), len(spec.InitContainers))
	}
	p := &pod{namespace: dep.GetNamespace(), container: spec.Containers[0], ports: map[int32]int{}, envMap: map[string]string{}, root: t.TempDir()}
	if svc != nil {
		p.service = &corev1.Service{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(svc.Object, p.service); err != nil {
			t.Fatal(err)
		}
	}
	c := p.container
	if len(c.Command) > 0 {
		t.Fatalf("container command %v: the image's entrypoint is the binary; only args are expected", c.Command)
	}
	// An empty directory as working directory and HOME: the image's root
	// filesystem is read-only, so nothing may be written there; stop()
	// checks it stayed empty.
	p.workdir = filepath.Join(p.root, "root")
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = filepath.Join(p.root, "volumes", m.Name)
	}
	for _, d := range append([]string{p.workdir}, valuesOf(mounts)...) {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	remap := func(s string) string {
		for mp, dir := range mounts {
			if s == mp || strings.HasPrefix(s, mp+"/") {
				return dir + strings.TrimPrefix(s, mp)
			}
		}
		return s
	}

	secrets := map[string]*corev1.Secret{}
	configMaps := map[string]*corev1.ConfigMap{}
	secret := func(name string) (*corev1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		s, err := cs.CoreV1().Secrets(p.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		secrets[name] = s
		return s, nil
	}
	configMap := func(name string) (*corev1.ConfigMap, error) {
		if c, ok := configMaps[name]; ok {
			return c, nil
		}
		c, err := cs.CoreV1().ConfigMaps(p.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		configMaps[name] = c
		return c, nil
	}
	set := func(k, v string) {
		p.envMap[k] = v
		p.env = append(p.env, k+"="+remap(v))
	}
	optional := func(b *bool) bool { return b != nil && *b }
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := configMap(from.ConfigMapRef.Name)
			if err != nil && !(apierrors.IsNotFound(err) && optional(from.ConfigMapRef.Optional)) {
				t.Fatalf("the pod would not start: envFrom ConfigMap %s: %v", from.ConfigMapRef.Name, err)
			}
			if cm != nil {
				for k, v := range cm.Data {
					set(from.Prefix+k, v)
				}
			}
		case from.SecretRef != nil:
			s, err := secret(from.SecretRef.Name)
			if err != nil && !(apierrors.IsNotFound(err) && optional(from.SecretRef.Optional)) {
				t.Fatalf("the pod would not start: envFrom Secret %s: %v", from.SecretRef.Name, err)
			}
			if s != nil {
				for k, v := range s.Data {
					set(from.Prefix+k, string(v))
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, p.envMap))
			continue
		}
		switch vf := e.ValueFrom; {
		case vf.FieldRef != nil:
			switch vf.FieldRef.FieldPath {
			case "metadata.namespace":
				set(e.Name, p.namespace)
			case "metadata.name":
				set(e.Name, dep.GetName()+"-0")
			case "spec.serviceAccountName":
				set(e.Name, spec.ServiceAccountName)
			default:
				t.Fatalf("%s: fieldRef %s is not emulated", e.Name, vf.FieldRef.FieldPath)
			}
		case vf.ConfigMapKeyRef != nil:
			ref := vf.ConfigMapKeyRef
			cm, err := configMap(ref.Name)
			if err != nil && !(apierrors.IsNotFound(err) && optional(ref.Optional)) {
				t.Fatalf("the pod would not start: %s: ConfigMap %s: %v", e.Name, ref.Name, err)
			}
			if cm == nil {
				continue
			}
			v, ok := cm.Data[ref.Key]
			if !ok && !optional(ref.Optional) {
				t.Fatalf("the pod would not start: %s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			if ok {
				set(e.Name, v)
			}
		case vf.SecretKeyRef != nil:
			ref := vf.SecretKeyRef
			s, err := secret(ref.Name)
			if err != nil && !(apierrors.IsNotFound(err) && optional(ref.Optional)) {
				t.Fatalf("the pod would not start: %s: Secret %s: %v", e.Name, ref.Name, err)
			}
			if s == nil {
				continue
			}
			v, ok := s.Data[ref.Key]
			if !ok && !optional(ref.Optional) {
				t.Fatalf("the pod would not start: %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			if ok {
				set(e.Name, string(v))
			}
		default:
			t.Fatalf("%s: valueFrom %+v is not emulated", e.Name, vf)
		}
	}

	for _, cp := range c.Ports {
		p.ports[cp.ContainerPort] = freePort(t)
	}
	// Listen addresses name a container port: each runs on its loopback
	// stand-in, so probes and Service ports can be followed to it.
	hostPort := regexp.MustCompile(`^([^:/]*):(\d+)$`)
	for _, a := range c.Args {
		a = expand(a, p.envMap)
		name, value, isFlag := strings.Cut(a, "=")
		if !isFlag || !strings.HasPrefix(name, "--") {
			name, value = "", a
		}
		if m := hostPort.FindStringSubmatch(value); m != nil {
			n, _ := strconv.Atoi(m[2])
			if local, ok := p.ports[int32(n)]; ok {
				value = "127.0.0.1:" + strconv.Itoa(local)
			}
		}
		value = remap(value)
		if name != "" {
			a = name + "=" + value
		} else {
			a = value
		}
		p.args = append(p.args, a)
	}

	p.env = append(p.env, "KUBECONFIG="+kubeconfig, "HOME="+p.workdir)
	// The image is FROM scratch: no programs to run. An empty PATH makes
	// any attempt to execute one fail here as it would there.
	empty := filepath.Join(p.root, "empty-path")
	if err := os.MkdirAll(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	p.env = append(p.env, "PATH="+empty)
	if dir, ok := mounts["/tmp"]; ok {
		p.env = append(p.env, "TMPDIR="+dir)
	}
	return p
}

func valuesOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// expand replaces $(VAR) with the variable's value as Kubernetes does for
// env values and args: $$ is a literal $, and a reference to an undefined
// variable stays as written.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// containerPort resolves a port name or number of the container.
func (p *pod) containerPort(t *testing.T, name string) int32 {
	t.Helper()
	for _, cp := range p.container.Ports {
		if cp.Name == name || strconv.Itoa(int(cp.ContainerPort)) == name {
			return cp.ContainerPort
		}
	}
	t.Fatalf("the container opens no port %q", name)
	return 0
}

// url is the base URL of a container port (by name) on this host.
func (p *pod) url(t *testing.T, port string) string {
	t.Helper()
	return "http://127.0.0.1:" + strconv.Itoa(p.ports[p.containerPort(t, port)])
}

// serviceURL follows the Service port named name to its target port.
func (p *pod) serviceURL(t *testing.T, name string) string {
	t.Helper()
	if p.service == nil {
		t.Fatal("no Service")
	}
	for _, sp := range p.service.Spec.Ports {
		if sp.Name == name {
			return p.url(t, sp.TargetPort.String())
		}
	}
	t.Fatalf("the Service has no port %q", name)
	return ""
}

// proc is one run of the binary.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (p *pod) start(t *testing.T, bin, name string) *proc {
	t.Helper()
	logPath := filepath.Join(p.root, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, p.args...)
	cmd.Env = p.env
	cmd.Dir = p.workdir
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { r.err = cmd.Wait(); f.Close(); close(r.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("%s %s: last lines of its log:\n%s", name, strings.Join(p.args, " "), strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return r
}

// exited reports whether the process ended, and its log when it did.
func (r *proc) exited() (bool, string) {
	select {
	case <-r.done:
		b, _ := os.ReadFile(r.log)
		return true, fmt.Sprintf("exited (%v):\n%s", r.err, b)
	default:
		return false, ""
	}
}

// stop sends SIGTERM, as the kubelet does, and requires a clean exit
// within the pod's default grace period.
func (r *proc) stop(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30 s after SIGTERM")
	}
	if r.err != nil {
		b, _ := os.ReadFile(r.log)
		t.Fatalf("exit after SIGTERM: %v\n%s", r.err, b)
	}
}

func (r *proc) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(r.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
