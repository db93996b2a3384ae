package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// MotoOptions configures a moto server.
type MotoOptions struct {
	// RestoreDelay is how long a RestoreObject on a GLACIER/DEEP_ARCHIVE
	// object stays in progress (x-amz-restore ongoing-request="true", GET
	// refused with InvalidObjectState). Zero restores at once.
	RestoreDelay time.Duration
}

// motoShim runs moto's own server entry point after one adjustment: moto's
// "time" progression for s3::keyrestore counts from the object's creation
// (or its last state change), and an object that has not been read since its
// restore request still reports the initial state, which its headers treat
// as restored. Starting the clock at the restore request makes the delay
// mean "from RestoreObject", as on AWS. The delay itself is moto's
// documented state-manager setting, applied by StartMoto through
// /moto-api/state-manager/set-transition.
const motoShim = `
import datetime, sys
from moto.s3 import models as _m

_orig_restore = _m.FakeKey.restore

def _restore(self, days):
    first = self._expiry is None
    _orig_restore(self, days)
    if first:
        self._status = "IN_PROGRESS"
        self._time_progressed = datetime.datetime.now()

_m.FakeKey.restore = _restore

from moto.server import main
sys.exit(main(sys.argv[1:]))
`

// StartMoto starts moto's standalone server (in-memory state).
func StartMoto(ctx context.Context, logDir string, opts MotoOptions) (*S3, error) {
	bin, err := MotoBin()
	if err != nil {
		return nil, err
	}
	python := filepath.Join(filepath.Dir(bin), "python")
	if _, err := os.Stat(python); err != nil {
		return nil, &NotInstalledError{What: "moto's python", Step: "moto", Err: err}
	}
	logDir, err = ensureLogDir(logDir, "moto")
	if err != nil {
		return nil, err
	}
	timer := startTimer()
	s, err := startWithRetry(func() (*S3, error) {
		dataDir, err := os.MkdirTemp("", "modelsync-moto-")
		if err != nil {
			return nil, fmt.Errorf("testenv: moto dir: %w", err)
		}
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dataDir)
			return nil, err
		}
		s := &S3{
			Endpoint:  "http://127.0.0.1:" + strconv.Itoa(port),
			AccessKey: "testing",
			SecretKey: "testing",
			Region:    "us-east-1",
			Kind:      "moto",
			dataDir:   dataDir,
		}
		p, err := launch(ctx, procSpec{
			name: "moto",
			path: python,
			args: []string{"-c", motoShim, "-H", "127.0.0.1", "-p", strconv.Itoa(port)},
			env: []string{
				"AWS_DEFAULT_REGION=" + s.Region,
				"AWS_ACCESS_KEY_ID=" + s.AccessKey,
				"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
				"PYTHONUNBUFFERED=1",
				"HOME=" + dataDir,
			},
			dir:    dataDir,
			logDir: logDir,
		}, dataDir, 60*time.Second, func(ctx context.Context) error {
			return httpOK(ctx, s.Endpoint+"/moto-api/data.json", nil)
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
	if opts.RestoreDelay > 0 {
		if err := s.setRestoreDelay(ctx, opts.RestoreDelay); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	s.ReadyIn = timer.elapsed()
	return s, nil
}

// setRestoreDelay uses moto's state manager: the s3::keyrestore model
// advances from IN_PROGRESS to RESTORED once d has passed.
func (s *S3) setRestoreDelay(ctx context.Context, d time.Duration) error {
	body, err := json.Marshal(map[string]any{
		"model_name": "s3::keyrestore",
		"transition": map[string]any{"progression": "time", "seconds": d.Seconds()},
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"/moto-api/state-manager/set-transition", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("testenv: moto set restore delay: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("testenv: moto set restore delay: %s", resp.Status)
	}
	return nil
}
