package testenv

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPostgresStartQueryAndCleanShutdown(t *testing.T) {
	RequireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logDir := t.TempDir()
	pg, err := StartPostgres(ctx, PostgresOptions{LogDir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = pg.Close()
		}
	}()
	t.Logf("postgres ready in %s on port %d", pg.ReadyIn, pg.Port)

	got, err := pg.Query(ctx, "", "select current_database(), current_user, current_setting('listen_addresses'), current_setting('fsync')")
	if err != nil {
		t.Fatal(err)
	}
	if want := "modelsync|modelsync|127.0.0.1|off"; got != want {
		t.Fatalf("database, user, listen_addresses, fsync = %q, want %q", got, want)
	}
	if err := pg.CreateDatabase(ctx, "second_db"); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Query(ctx, "second_db", "create table t (x int); insert into t values (1)"); err != nil {
		t.Fatal(err)
	}
	if err := pg.CreateDatabase(ctx, "bad-name; drop"); err == nil {
		t.Fatal("CreateDatabase accepted a name that needs quoting")
	}

	// Password authentication is on: a wrong password is refused, and the
	// real one never appears in the error.
	wrong := *pg
	wrong.Password = "not-" + pg.Password
	_, err = wrong.Query(ctx, "", "select 1")
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: err = %v, want password authentication failed", err)
	}
	if strings.Contains(err.Error(), pg.Password) {
		t.Fatal("query error contains the password")
	}
	if u := pg.URI("x"); !strings.HasPrefix(u, "postgresql://modelsync:") || !strings.HasSuffix(u, "@127.0.0.1:"+strconv.Itoa(pg.Port)+"/x") {
		t.Fatalf("URI = %q", u)
	}

	// As root, the server runs as an unprivileged user (postgres refuses root).
	pid := pg.proc.cmd.Process.Pid
	if os.Geteuid() == 0 {
		status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] == "0" {
				t.Fatalf("postgres runs as root: %s", line)
			}
		}
	}

	logPath, dataDir := pg.proc.LogPath, pg.dataDir
	closed = true
	if err := pg.Close(); err != nil {
		t.Fatal(err)
	}
	// Close is a clean (fast) shutdown, not a kill: the server says so last.
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "database system is shut down") {
		t.Fatalf("no clean shutdown in the log:\n%s", logTail(logPath, 20))
	}
	if processAlive(pid) {
		t.Fatalf("postgres %d still running after Close", pid)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("data dir %s left behind: %v", dataDir, err)
	}
}

// TestMLflowPostgresBackend runs the registry checks on each MLflow release
// with a PostgreSQL backend store and checks the data landed in PostgreSQL
// (not in a sqlite file beside it).
func TestMLflowPostgresBackend(t *testing.T) {
	for _, tc := range []struct {
		opts MLflowOptions
		name string
	}{
		{MLflowOptions{Major: 3}, "mlflow3-postgres"},
		{MLflowOptions{Major: 2}, "mlflow2-postgres"},
		{MLflowOptions{Major: 2, Floor: true}, "mlflow2-floor-postgres"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.Backend = BackendPostgres
			m := NewMLflow(t, tc.opts)
			t.Logf("%s ready in %s", m.Name, m.ReadyIn)
			if m.Name != tc.name || m.Backend != BackendPostgres || m.Postgres() == nil {
				t.Fatalf("server %q backend %q postgres %v", m.Name, m.Backend, m.Postgres())
			}
			before, err := m.Postgres().Query(context.Background(), "", "select count(*) from registered_models")
			if err != nil {
				t.Fatal(err)
			}
			exerciseRegistry(t, m)
			after, err := m.Postgres().Query(context.Background(), "", "select count(*) from registered_models")
			if err != nil {
				t.Fatal(err)
			}
			if before != "0" || after != "1" {
				t.Fatalf("registered_models rows in PostgreSQL: %s before, %s after; want 0 then 1", before, after)
			}
		})
	}
}

func TestParseBackend(t *testing.T) {
	for in, want := range map[string]Backend{"": BackendSQLite, "sqlite": BackendSQLite, "postgres": BackendPostgres} {
		if got, err := ParseBackend(in); err != nil || got != want {
			t.Errorf("ParseBackend(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseBackend("mysql"); err == nil {
		t.Error("ParseBackend(mysql) accepted")
	}
}
