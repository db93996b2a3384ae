package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NotInstalledError says which `make deps` step installs a missing server.
// Tests fail (they do not skip) on it, so its text tells how to fix the machine.
type NotInstalledError struct {
	What string // e.g. "kube-apiserver"
	Step string // argument to test/deps/deps.sh
	Err  error  // what was looked at and not found
}

func (e *NotInstalledError) Error() string {
	return fmt.Sprintf("testenv: %s not installed: run `make deps` (test/deps/deps.sh %s): %v", e.What, e.Step, e.Err)
}

func (e *NotInstalledError) Unwrap() error { return e.Err }

// CacheDir is where test/deps/deps.sh installs everything.
func CacheDir() string {
	if d := os.Getenv("MODELSYNC_CACHE"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "modelsync")
}

// depsVar resolves one MODELSYNC_* location: the environment wins, then
// $CACHE/env as written by deps.sh. The path must exist.
func depsVar(name, what, step string) (string, error) {
	v := os.Getenv(name)
	src := "$" + name
	if v == "" {
		envFile := filepath.Join(CacheDir(), "env")
		vals, err := readEnvFile(envFile)
		if err != nil {
			return "", &NotInstalledError{What: what, Step: step, Err: fmt.Errorf("%s unset and %w", name, err)}
		}
		v = vals[name]
		src = envFile
		if v == "" {
			return "", &NotInstalledError{What: what, Step: step, Err: fmt.Errorf("%s unset and not in %s", name, envFile)}
		}
	}
	if _, err := os.Stat(v); err != nil {
		return "", &NotInstalledError{What: what, Step: step, Err: fmt.Errorf("%s (from %s): %w", v, src, err)}
	}
	return v, nil
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		vals[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return vals, sc.Err()
}

// pathTool finds a tool installed system-wide (Prometheus and git come from
// Debian packages, not the cache).
func pathTool(name, step string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", &NotInstalledError{What: name, Step: step, Err: err}
	}
	return p, nil
}

// KubeBinDir returns the directory holding kube-apiserver and etcd.
func KubeBinDir() (string, error) {
	d, err := depsVar("MODELSYNC_KUBE_BIN", "kube-apiserver and etcd", "kube")
	if err != nil {
		return "", err
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(d, b)); err != nil {
			return "", &NotInstalledError{What: b, Step: "kube", Err: err}
		}
	}
	return d, nil
}

// KServeCRDPath returns the upstream InferenceService CRD manifest.
func KServeCRDPath() (string, error) {
	return depsVar("MODELSYNC_KSERVE_CRD", "KServe InferenceService CRD", "kserve-crd")
}

// MLflowBin returns the mlflow executable for major version 3 or 2.
func MLflowBin(major int) (string, error) {
	switch major {
	case 3:
		return depsVar("MODELSYNC_MLFLOW3", "MLflow 3", "mlflow3")
	case 2:
		return depsVar("MODELSYNC_MLFLOW2", "MLflow 2", "mlflow2")
	default:
		return "", fmt.Errorf("testenv: MLflow major version %d: only 2 and 3 are installed", major)
	}
}

// MLflowFloorBin returns the mlflow executable of the oldest supported
// release (MLFLOW2_FLOOR_VERSION in test/deps/versions.env).
func MLflowFloorBin() (string, error) {
	return depsVar("MODELSYNC_MLFLOW2_FLOOR", "MLflow 2 (oldest supported)", "mlflow2-floor")
}

// MinIOBin returns the minio server executable.
func MinIOBin() (string, error) { return depsVar("MODELSYNC_MINIO", "MinIO", "minio") }

// MotoBin returns the moto_server executable.
func MotoBin() (string, error) { return depsVar("MODELSYNC_MOTO", "moto", "moto") }

// ScanPythonBin returns the Python of the artifact scanner's corpus venv
// (scikit-learn, joblib, NumPy, XGBoost, safetensors, ONNX, picklescan and
// modelscan; `deps.sh scanpy`).
func ScanPythonBin() (string, error) {
	return depsVar("MODELSYNC_SCANPY", "the scanner corpus' Python", "scanpy")
}

// RequireE2E skips the test only when MODELSYNC_SKIP_E2E=1. A missing server
// is not a reason to skip: the launchers fail with the `make deps` step.
func RequireE2E(tb testing.TB) {
	tb.Helper()
	if os.Getenv("MODELSYNC_SKIP_E2E") == "1" {
		tb.Skip("MODELSYNC_SKIP_E2E=1: integration test skipped")
	}
}

// IsNotInstalled reports whether err comes from a missing `make deps` step.
func IsNotInstalled(err error) bool {
	var ni *NotInstalledError
	return errors.As(err, &ni)
}

// ChromiumPath returns the headless Chromium the dashboard's browser tests
// drive (Debian's chromium package, installed by the chromium step).
func ChromiumPath() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return pathTool("chromium", "chromium")
}
