package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MLflowOptions configures a tracking/registry server.
type MLflowOptions struct {
	Major int // 3 or 2
	// Floor starts the oldest supported release (2.9.2, the first with
	// registered-model aliases) instead of the newest 2.x; Major must be 2.
	Floor     bool
	BasicAuth bool // --app-name basic-auth with a generated admin password
	// S3, when set, holds the artifacts (in Bucket, created if missing;
	// a unique bucket when Bucket is empty). Otherwise artifacts go to a
	// local directory served by the server (--serve-artifacts).
	S3     *S3
	Bucket string
	LogDir string
	// Backend is the backend store: BackendSQLite (the default, a file
	// copied from the migrated template) or BackendPostgres (a PostgreSQL
	// cluster of the server's own, as MLflow runs at scale; the server
	// migrates its empty database at start).
	Backend Backend
	// PostgresDurable keeps the PostgreSQL backend's fsync and synchronous
	// commit on, as in production (benchmarks); tests leave it off.
	PostgresDurable bool
	// StartTimeout bounds the wait for the server to become ready (0: 4
	// minutes). Benchmarks on a busy machine raise it.
	StartTimeout time.Duration
	// Workers is the server's worker process count. Tests use 1 (0 means
	// 1) to keep memory and start time down; benchmarks pass MLflow's own
	// default (4) so they measure the server as it is usually deployed.
	Workers int
}

// Backend names an MLflow backend store kind.
type Backend string

const (
	BackendSQLite   Backend = "sqlite"
	BackendPostgres Backend = "postgres"
)

// ParseBackend accepts "sqlite" (or "") and "postgres", for benchmark flags.
func ParseBackend(s string) (Backend, error) {
	switch Backend(s) {
	case "", BackendSQLite:
		return BackendSQLite, nil
	case BackendPostgres:
		return BackendPostgres, nil
	}
	return "", fmt.Errorf("testenv: MLflow backend %q: want sqlite or postgres", s)
}

// MLflow is a running MLflow server with a throwaway backend store (sqlite,
// or a PostgreSQL cluster of its own).
// Tests sharing one server isolate themselves with UniqueName model names.
type MLflow struct {
	URL string // http://127.0.0.1:<port>
	// Username and Password are the admin's (BasicAuth only; empty
	// otherwise). Never log them.
	Username string
	Password string
	Major    int
	// Name tells servers apart in subtest names and logs: "mlflow3",
	// "mlflow2", or "mlflow2-floor".
	Name string
	// Backend is the backend store kind the server runs on.
	Backend Backend
	// ArtifactsDestination is where --serve-artifacts stores files: a local
	// directory or s3://<bucket>/mlflow-artifacts.
	ArtifactsDestination string
	ReadyIn              time.Duration

	proc     *proc
	dataDir  string
	bin      string    // the mlflow executable; its venv has the Python client
	postgres *Postgres // the backend store's server (BackendPostgres only)
}

// StartMLflow starts `mlflow server` and waits for /health (and, with
// basic auth, for the admin account to work).
func StartMLflow(ctx context.Context, opts MLflowOptions) (*MLflow, error) {
	bin, err := MLflowBin(opts.Major)
	name := fmt.Sprintf("mlflow%d", opts.Major)
	if opts.Floor {
		if opts.Major != 2 {
			return nil, fmt.Errorf("testenv: the oldest supported MLflow is a 2.x release; Major is %d", opts.Major)
		}
		bin, err = MLflowFloorBin()
		name += "-floor"
	}
	if err != nil {
		return nil, err
	}
	backend, err := ParseBackend(string(opts.Backend))
	if err != nil {
		return nil, err
	}
	if backend == BackendPostgres {
		name += "-postgres"
	}
	logDir, err := ensureLogDir(opts.LogDir, "mlflow")
	if err != nil {
		return nil, err
	}
	var s3env []string
	dest := ""
	if opts.S3 != nil {
		bucket := opts.Bucket
		if bucket == "" {
			bucket = UniqueName("mlflow")
		}
		if err := ensureBucket(ctx, opts.S3, bucket); err != nil {
			return nil, err
		}
		dest = "s3://" + bucket + "/mlflow-artifacts"
		s3env = []string{
			"MLFLOW_S3_ENDPOINT_URL=" + opts.S3.Endpoint,
			"AWS_ACCESS_KEY_ID=" + opts.S3.AccessKey,
			"AWS_SECRET_ACCESS_KEY=" + opts.S3.SecretKey,
			"AWS_DEFAULT_REGION=" + opts.S3.Region,
		}
	}
	timer := startTimer()
	var pg *Postgres
	if backend == BackendPostgres {
		// One cluster per server: tests that share nothing stay independent,
		// and its start (about a second) is small next to MLflow's.
		pg, err = StartPostgres(ctx, PostgresOptions{LogDir: logDir, Durable: opts.PostgresDurable})
		if err != nil {
			return nil, fmt.Errorf("testenv: %s backend: %w", name, err)
		}
		if err := seedPostgresStore(ctx, bin, pg); err != nil {
			return nil, errors.Join(fmt.Errorf("testenv: %s backend: %w", name, err), pg.Close())
		}
	}
	m, err := startWithRetry(func() (*MLflow, error) {
		dataDir, err := os.MkdirTemp("", "modelsync-mlflow-")
		if err != nil {
			return nil, fmt.Errorf("testenv: mlflow data dir: %w", err)
		}
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dataDir)
			return nil, err
		}
		m := &MLflow{
			URL:                  "http://127.0.0.1:" + strconv.Itoa(port),
			Major:                opts.Major,
			Name:                 name,
			Backend:              backend,
			bin:                  bin,
			postgres:             pg,
			ArtifactsDestination: dest,
			dataDir:              dataDir,
		}
		if m.ArtifactsDestination == "" {
			m.ArtifactsDestination = filepath.Join(dataDir, "artifacts")
		}
		storeURI := ""
		if pg != nil {
			storeURI = pg.SQLAlchemyURI("")
		} else {
			db := filepath.Join(dataDir, "mlflow.db")
			if err := copyMLflowTemplate(bin, db); err != nil {
				os.RemoveAll(dataDir)
				return nil, err
			}
			storeURI = "sqlite:///" + db
		}
		args := []string{
			"server",
			"--host", "127.0.0.1", "--port", strconv.Itoa(port),
			"--artifacts-destination", m.ArtifactsDestination,
			"--serve-artifacts",
			"--workers", strconv.Itoa(max(1, opts.Workers)),
		}
		if opts.Major == 2 {
			// 2.x serves through gunicorn, which kills a worker that has not
			// booted within 30 s; importing MLflow on a loaded test machine
			// can take longer, and the server then never becomes ready.
			args = append(args, "--gunicorn-opts", "--timeout 120")
		}
		env := append([]string{
			"HOME=" + dataDir,
			"PYTHONUNBUFFERED=1",
			// 3.x would otherwise start a job runner next to the server,
			// which modelsync never uses.
			"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false",
			"MLFLOW_FLASK_SERVER_SECRET_KEY=" + randomHex(16),
			// The CLI's --backend-store-uri from the environment: a
			// PostgreSQL URI carries a password, and argv is in the log and
			// visible to every process.
			"MLFLOW_BACKEND_STORE_URI=" + storeURI,
		}, s3env...)
		if opts.BasicAuth {
			m.Username = "admin"
			m.Password = randomHex(16)
			ini := filepath.Join(dataDir, "basic_auth.ini")
			cfg := fmt.Sprintf("[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///%s\nadmin_username = %s\nadmin_password = %s\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
				filepath.Join(dataDir, "basic_auth.db"), m.Username, m.Password)
			if err := os.WriteFile(ini, []byte(cfg), 0o600); err != nil {
				os.RemoveAll(dataDir)
				return nil, fmt.Errorf("testenv: mlflow auth config: %w", err)
			}
			args = append(args, "--app-name", "basic-auth")
			env = append(env, "MLFLOW_AUTH_CONFIG_PATH="+ini)
		}
		p, err := launch(ctx, procSpec{name: name, path: bin, args: args, env: env, dir: dataDir, logDir: logDir},
			// Importing MLflow takes seconds on an idle machine but minutes
			// when several servers start at once on a shared 2-core one.
			dataDir, orDefaultDuration(opts.StartTimeout, 4*time.Minute), m.ready)
		if err != nil {
			return nil, err
		}
		m.proc = p
		return m, nil
	})
	if err != nil {
		if pg != nil {
			err = errors.Join(err, pg.Close())
		}
		return nil, err
	}
	m.ReadyIn = timer.elapsed()
	return m, nil
}

func (m *MLflow) ready(ctx context.Context) error {
	if err := httpOK(ctx, m.URL+"/health", nil); err != nil {
		return err
	}
	// /health answers before the auth app has created the admin user.
	return httpOK(ctx, m.URL+"/api/2.0/mlflow/registered-models/search?max_results=1", m.AuthHeader())
}

// AuthHeader is the Authorization header for the admin (nil without basic
// auth), for tests that build their own requests.
func (m *MLflow) AuthHeader() http.Header {
	if m.Username == "" {
		return nil
	}
	req, _ := http.NewRequest(http.MethodGet, m.URL, nil)
	req.SetBasicAuth(m.Username, m.Password)
	return http.Header{"Authorization": req.Header["Authorization"]}
}

// Close stops the server and deletes its database and local artifacts.
func (m *MLflow) Close() error {
	err := errors.Join(m.proc.Close(), os.RemoveAll(m.dataDir))
	if m.postgres != nil {
		err = errors.Join(err, m.postgres.Close())
	}
	return err
}

// Postgres is the backend store's PostgreSQL server (nil on sqlite), for
// tests that look at what MLflow stored.
func (m *MLflow) Postgres() *Postgres { return m.postgres }

func (m *MLflow) logPaths() []string {
	if m.postgres != nil {
		return []string{m.proc.LogPath, m.postgres.proc.LogPath}
	}
	return []string{m.proc.LogPath}
}

// NewMLflow starts an MLflow server for one test.
func NewMLflow(tb testing.TB, opts MLflowOptions) *MLflow {
	tb.Helper()
	RequireE2E(tb)
	if opts.LogDir == "" {
		opts.LogDir = tbLogDir(tb)
	}
	m, err := StartMLflow(tbContext(tb), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tbCleanup(tb, m.Close, m.logPaths)
	return m
}

func ensureBucket(ctx context.Context, s *S3, bucket string) error {
	_, err := s.Client(ctx).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return nil
	}
	var nf *types.NotFound
	if !errors.As(err, &nf) {
		return fmt.Errorf("testenv: mlflow artifact bucket %s: %w", bucket, err)
	}
	return s.MakeBucket(ctx, bucket, false)
}

// copyMLflowTemplate seeds db with the already-migrated empty database that
// deps.sh keeps next to the venv (<venv>/template.db), which saves every
// start from running all schema migrations. Without a template the server
// migrates a fresh file itself, which is slower but equivalent.
func copyMLflowTemplate(bin, db string) error {
	tmpl := filepath.Join(filepath.Dir(filepath.Dir(bin)), "template.db")
	src, err := os.Open(tmpl)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("testenv: mlflow db template: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(db, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("testenv: mlflow db: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("testenv: copy mlflow db template: %w", err)
	}
	return dst.Close()
}

func orDefaultDuration(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
