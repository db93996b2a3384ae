package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PostgresOptions configures a throwaway PostgreSQL cluster.
type PostgresOptions struct {
	LogDir string
	// Durable keeps PostgreSQL's crash-safety settings (fsync, synchronous
	// commit, full-page writes) as a production server has them, for
	// benchmarks. Tests leave it false: the data is thrown away, and
	// skipping the flushes keeps a shared disk out of their timings.
	Durable bool
	// MaxConnections is the server's connection limit (0: 300). Every
	// MLflow worker keeps a SQLAlchemy pool of up to 15 connections.
	MaxConnections int
}

// Postgres is a running PostgreSQL server of its own (initdb into a
// temporary directory), listening only on 127.0.0.1, with a password-
// authenticated superuser and one database already created.
type Postgres struct {
	Host     string // 127.0.0.1
	Port     int
	User     string
	Password string // never log it; URI contains it too
	Database string // created at start
	ReadyIn  time.Duration

	proc    *proc
	dataDir string
	binDir  string
}

// pgIdentifier is what CreateDatabase accepts: a name that needs no quoting
// in SQL or escaping in a URI.
var pgIdentifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// PostgresBinDir returns the directory holding initdb, postgres, pg_isready,
// createdb and psql: $MODELSYNC_POSTGRES_BIN (or its line in the deps env file),
// else the newest /usr/lib/postgresql/<major>/bin (Debian keeps the server
// off PATH), else the directory of an initdb on PATH.
func PostgresBinDir() (string, error) {
	if d, err := depsVar("MODELSYNC_POSTGRES_BIN", "PostgreSQL", "postgres"); err == nil {
		return checkPostgresBinDir(d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if d, err := checkPostgresBinDir(d); err == nil {
			return d, nil
		}
	}
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		return "", &NotInstalledError{What: "PostgreSQL", Step: "postgres", Err: fmt.Errorf("no /usr/lib/postgresql/*/bin and %w", err)}
	}
	return checkPostgresBinDir(filepath.Dir(initdb))
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func checkPostgresBinDir(d string) (string, error) {
	for _, b := range []string{"initdb", "postgres", "pg_isready", "createdb", "psql"} {
		if _, err := os.Stat(filepath.Join(d, b)); err != nil {
			return "", &NotInstalledError{What: "PostgreSQL " + b, Step: "postgres", Err: err}
		}
	}
	return d, nil
}

// postgresCredential is who runs initdb and postgres. Both refuse to run as
// root, so a root test binary runs them as the unprivileged system user the
// Debian package creates ("postgres"), falling back to "nobody"; anyone
// else runs them as themselves (nil).
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			errs = append(errs, fmt.Errorf("user %s: uid %s gid %s", name, u.Uid, u.Gid))
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("testenv: postgres refuses to run as root and no unprivileged user to run it as: %w", errors.Join(errs...))
}

// StartPostgres runs initdb into a fresh temporary directory, starts
// postgres on a free loopback port (no Unix socket), waits until it accepts
// connections and creates the database named in Database.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	binDir, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	logDir, err := ensureLogDir(opts.LogDir, "postgres")
	if err != nil {
		return nil, err
	}
	timer := startTimer()
	pg, err := startWithRetry(func() (*Postgres, error) {
		dataDir, err := os.MkdirTemp("", "modelsync-postgres-")
		if err != nil {
			return nil, fmt.Errorf("testenv: postgres data dir: %w", err)
		}
		if cred != nil {
			// The server's user must own its directory (initdb insists on
			// 0700 and postgres on ownership).
			if err := os.Chown(dataDir, int(cred.Uid), int(cred.Gid)); err != nil {
				os.RemoveAll(dataDir)
				return nil, fmt.Errorf("testenv: postgres data dir: %w", err)
			}
		}
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dataDir)
			return nil, err
		}
		pg := &Postgres{
			Host: "127.0.0.1", Port: port, User: "modelsync", Password: randomHex(16), Database: "modelsync",
			dataDir: dataDir, binDir: binDir,
		}
		pgdata := filepath.Join(dataDir, "data")
		if err := pg.initdb(ctx, pgdata, cred, logDir); err != nil {
			os.RemoveAll(dataDir)
			return nil, err
		}
		args := []string{
			"-D", pgdata,
			"-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1",
			// No Unix socket: nothing here uses one, and the default
			// directory (/var/run/postgresql) may not be writable.
			"-c", "unix_socket_directories=",
			"-c", "max_connections=" + strconv.Itoa(orDefault(opts.MaxConnections, 300)),
		}
		if !opts.Durable {
			args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
		}
		p, err := launch(ctx, procSpec{
			name: "postgres", path: filepath.Join(binDir, "postgres"), args: args,
			env: []string{"LC_ALL=C"}, dir: dataDir, logDir: logDir, cred: cred,
		}, dataDir, 2*time.Minute, pg.ready)
		if err != nil {
			return nil, err
		}
		pg.proc = p
		if err := pg.CreateDatabase(ctx, pg.Database); err != nil {
			_ = pg.Close()
			return nil, err
		}
		return pg, nil
	})
	if err != nil {
		return nil, err
	}
	pg.ReadyIn = timer.elapsed()
	return pg, nil
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// initdb creates the cluster with a scram-sha-256 superuser whose password
// goes through a file readable only by the server's user (never argv).
func (p *Postgres) initdb(ctx context.Context, pgdata string, cred *syscall.Credential, logDir string) error {
	pwfile := filepath.Join(p.dataDir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o600); err != nil {
		return fmt.Errorf("testenv: postgres password file: %w", err)
	}
	defer os.Remove(pwfile)
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("testenv: postgres password file: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.binDir, "initdb"),
		"-D", pgdata, "-U", p.User, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "-E", "UTF8", "--no-locale",
		// The cluster is thrown away; flushing it to disk only costs time.
		"--no-sync")
	cmd.Dir = p.dataDir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		// initdb's output has no secret (the password is in the file).
		return fmt.Errorf("testenv: postgres initdb in %s: %w\n%s", pgdata, err, tail(out, 4000))
	}
	return os.WriteFile(filepath.Join(logDir, "postgres-initdb-"+filepath.Base(p.dataDir)+".log"), out, 0o644)
}

// ready asks the server itself whether it accepts connections (a bare TCP
// accept comes earlier, while the server still refuses logins as starting).
func (p *Postgres) ready(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, filepath.Join(p.binDir, "pg_isready"),
		"-h", p.Host, "-p", strconv.Itoa(p.Port), "-d", "postgres", "-U", p.User).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_isready: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// CreateDatabase creates database name (a plain lower-case identifier).
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	if !pgIdentifier.MatchString(name) {
		return fmt.Errorf("testenv: postgres database name %q: want [a-z_][a-z0-9_]*", name)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.binDir, "createdb"),
		"-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", p.User, "--no-password", name)
	// libpq reads the password from the environment, so it is in no argv.
	cmd.Env = append(os.Environ(), "PGPASSWORD="+p.Password, "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: postgres create database %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Query runs one SQL statement in database (Database when empty) through
// psql and returns its rows unaligned, one a line, fields split by '|'.
// For tests that check what a server stored.
func (p *Postgres) Query(ctx context.Context, database, sql string) (string, error) {
	if database == "" {
		database = p.Database
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := p.exec(ctx, "psql", "-d", database, "--no-psqlrc", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql)
	if err != nil {
		return "", fmt.Errorf("testenv: postgres query in %s: %w", database, err)
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// exec runs one of the server's client tools (psql, pg_dump) against
// database with the password in the environment, returning stdout.
func (p *Postgres) exec(ctx context.Context, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.binDir, tool),
		append([]string{"-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", p.User, "--no-password"}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+p.Password, "LC_ALL=C")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", tool, err, strings.TrimSpace(tail([]byte(stderr.String()), 2000)))
	}
	return out, nil
}

// SQLAlchemyURI is URI with the driver the MLflow venvs have named, the
// form MLflow's --backend-store-uri takes: SQLAlchemy 2.1 (under MLflow 3.x)
// maps a bare postgresql:// to psycopg 3, 2.0 to psycopg2; deps.sh installs
// psycopg2, so every release uses the same one.
func (p *Postgres) SQLAlchemyURI(database string) string {
	return "postgresql+psycopg2" + strings.TrimPrefix(p.URI(database), "postgresql")
}

// URI is the SQLAlchemy/libpq URL of database name (Database when empty),
// with the password in it: pass it to servers, never log it.
func (p *Postgres) URI(database string) string {
	if database == "" {
		database = p.Database
	}
	u := url.URL{
		Scheme: "postgresql",
		User:   url.UserPassword(p.User, p.Password),
		Host:   p.Host + ":" + strconv.Itoa(p.Port),
		Path:   "/" + database,
	}
	return u.String()
}

// Close shuts the server down cleanly (SIGINT: PostgreSQL's fast shutdown,
// which rolls back open transactions and checkpoints), kills whatever is
// left after 30 s, and deletes the cluster.
func (p *Postgres) Close() error {
	var errs []error
	if !p.proc.shutdown(syscall.SIGINT, 30*time.Second) {
		errs = append(errs, fmt.Errorf("testenv: postgres did not shut down within 30s; killed"))
	}
	errs = append(errs, p.proc.Close(), os.RemoveAll(p.dataDir))
	return errors.Join(errs...)
}

func (p *Postgres) logPaths() []string { return []string{p.proc.LogPath} }

// NewPostgres starts PostgreSQL for one test.
func NewPostgres(tb testing.TB, opts PostgresOptions) *Postgres {
	tb.Helper()
	RequireE2E(tb)
	if opts.LogDir == "" {
		opts.LogDir = tbLogDir(tb)
	}
	p, err := StartPostgres(tbContext(tb), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tbCleanup(tb, p.Close, p.logPaths)
	return p
}

// seedPostgresStore fills pg's database with an empty MLflow schema at the
// release of bin, as copyMLflowTemplate does for sqlite: a server started on
// an empty PostgreSQL database runs every migration itself, which takes tens
// of seconds (minutes on a loaded machine) and CPU that parallel tests
// share. The schema is dumped once per venv and PostgreSQL major into
// <venv>/template-postgres<major>.sql (deps.sh removes it when it
// reinstalls the venv), by MLflow's own table initialiser, the one deps.sh
// uses for the sqlite template.
func seedPostgresStore(ctx context.Context, bin string, pg *Postgres) error {
	return pg.SeedMLflowSchema(ctx, bin, pg.Database)
}

// SeedMLflowSchema is seedPostgresStore for any database of p, for tests
// that start MLflow themselves (deploy's component test).
func (pg *Postgres) SeedMLflowSchema(ctx context.Context, bin, database string) error {
	venv := filepath.Dir(filepath.Dir(bin))
	tmpl := filepath.Join(venv, fmt.Sprintf("template-postgres%d.sql", pgMajor(pg.binDir)))
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	if _, err := os.Stat(tmpl); err == nil {
		if _, err := pg.exec(ctx, "psql", "-d", database, "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "-f", tmpl); err != nil {
			return fmt.Errorf("testenv: restore MLflow schema %s: %w", tmpl, err)
		}
		return nil
	}
	// No template yet: migrate this database, then dump it for the next start.
	home, err := os.MkdirTemp("", "modelsync-mlflow-migrate-")
	if err != nil {
		return fmt.Errorf("testenv: mlflow migrate home: %w", err)
	}
	defer os.RemoveAll(home)
	cmd := exec.CommandContext(ctx, filepath.Join(venv, "bin", "python"), "-c",
		"import os; from mlflow.store.db import utils as u; u._initialize_tables(u.create_sqlalchemy_engine(os.environ['MODELSYNC_STORE_URI']))")
	cmd.Dir = home
	// The URI carries the password: environment, not argv.
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "MODELSYNC_STORE_URI=" + pg.SQLAlchemyURI(database)}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: migrate MLflow schema in PostgreSQL: %w\n%s", err, tail(out, 4000))
	}
	dump, err := pg.exec(ctx, "pg_dump", "-d", database, "--no-owner", "--no-privileges")
	if err != nil {
		return fmt.Errorf("testenv: dump MLflow schema: %w", err)
	}
	// Write then rename: a concurrent start reads a whole template or none.
	f, err := os.CreateTemp(venv, ".template-postgres-*.sql")
	if err != nil {
		return nil // a read-only cache only costs the next start a migration
	}
	_, werr := f.Write(dump)
	cerr := f.Close()
	if werr == nil && cerr == nil {
		// Readable like template.db: the cache may be shared.
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr != nil || cerr != nil {
		os.Remove(f.Name())
		return nil
	}
	if err := os.Rename(f.Name(), tmpl); err != nil {
		os.Remove(f.Name())
	}
	return nil
}
