package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMissingBinaryNamesTheDepsStep(t *testing.T) {
	t.Setenv("MODELSYNC_MINIO", filepath.Join(t.TempDir(), "no-such-minio"))
	_, err := StartMinIO(context.Background(), t.TempDir())
	if !IsNotInstalled(err) {
		t.Fatalf("err = %v, want a NotInstalledError", err)
	}
	if want := "MinIO not installed: run `make deps` (test/deps/deps.sh minio)"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}

	// With neither the variable nor a cache env file, the message still
	// names the step.
	t.Setenv("MODELSYNC_MLFLOW2", "")
	t.Setenv("MODELSYNC_CACHE", t.TempDir())
	_, err = StartMLflow(context.Background(), MLflowOptions{Major: 2, LogDir: t.TempDir()})
	if !IsNotInstalled(err) || !strings.Contains(err.Error(), "(test/deps/deps.sh mlflow2)") {
		t.Fatalf("err = %v, want the mlflow2 deps step", err)
	}
}

func TestCacheEnvFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MODELSYNC_CACHE", dir)
	t.Setenv("MODELSYNC_MOTO", "")
	if got := CacheDir(); got != dir {
		t.Fatalf("CacheDir = %q, want %q", got, dir)
	}
	bin := filepath.Join(dir, "moto_server")
	writeFile(t, bin, "#!/bin/sh\n")
	writeFile(t, filepath.Join(dir, "env"), "# written by deps.sh\nMODELSYNC_MOTO="+bin+"\n")
	got, err := MotoBin()
	if err != nil || got != bin {
		t.Fatalf("MotoBin = %q, %v; want %q", got, err, bin)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}
