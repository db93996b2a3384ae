package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// StartMinIO starts a single-drive MinIO server with a fresh data directory.
//
// On one drive MinIO's REDUCED_REDUNDANCY parity defaults to 0 (the same as
// STANDARD), which is valid, so RRS is accepted and reported back without
// extra configuration; MINIO_STORAGE_CLASS_RRS=EC:0 is set anyway so a
// change in that default shows up as a startup error rather than as a test
// failing on storage classes. Archive classes (GLACIER, ...) are refused
// with InvalidStorageClass.
func StartMinIO(ctx context.Context, logDir string) (*S3, error) {
	bin, err := MinIOBin()
	if err != nil {
		return nil, err
	}
	logDir, err = ensureLogDir(logDir, "minio")
	if err != nil {
		return nil, err
	}
	timer := startTimer()
	s, err := startWithRetry(func() (*S3, error) {
		dataDir, err := os.MkdirTemp("", "modelsync-minio-")
		if err != nil {
			return nil, fmt.Errorf("testenv: minio data dir: %w", err)
		}
		ports, err := freePorts(2)
		if err != nil {
			os.RemoveAll(dataDir)
			return nil, err
		}
		s := &S3{
			Endpoint:  "http://127.0.0.1:" + strconv.Itoa(ports[0]),
			AccessKey: "modelsync",
			SecretKey: randomHex(16),
			Region:    "us-east-1",
			Kind:      "minio",
			dataDir:   dataDir,
		}
		p, err := launch(ctx, procSpec{
			name: "minio",
			path: bin,
			args: []string{
				"server", filepath.Join(dataDir, "data"),
				"--address", "127.0.0.1:" + strconv.Itoa(ports[0]),
				"--console-address", "127.0.0.1:" + strconv.Itoa(ports[1]),
				"--certs-dir", filepath.Join(dataDir, "certs"),
				"--quiet",
			},
			env: []string{
				"MINIO_ROOT_USER=" + s.AccessKey,
				"MINIO_ROOT_PASSWORD=" + s.SecretKey,
				"MINIO_REGION=" + s.Region,
				"MINIO_STORAGE_CLASS_RRS=EC:0",
				"MINIO_BROWSER=off",
				"MINIO_UPDATE=off",
				"MINIO_CALLHOME_ENABLE=off",
				"HOME=" + dataDir,
			},
			dir:    dataDir,
			logDir: logDir,
		}, dataDir, 60*time.Second, func(ctx context.Context) error {
			if err := httpOK(ctx, s.Endpoint+"/minio/health/ready", nil); err != nil {
				return err
			}
			// The health endpoint can answer before MinIO has loaded its
			// IAM state, while signed requests still get 503
			// (XMinioServerNotInitialized); tests begin with signed
			// requests, so one must have succeeded.
			_, err := s.Client(ctx).ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		})
		if err != nil {
			return nil, err
		}
		s.proc = p
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	s.ReadyIn = timer.elapsed()
	return s, nil
}
