package gitsource

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/modelsync/modelsync/internal/redact"
)

func TestAuthFromEnv(t *testing.T) {
	env := map[string]string{
		EnvToken:            "tok-123",
		EnvUsername:         "alice",
		EnvPassword:         "pw-456",
		EnvSSHKey:           "/keys/id",
		EnvSSHKeyPassphrase: "pp-789",
		EnvSSHKnownHosts:    "/keys/known_hosts",
		EnvSSHUser:          "gitolite",
		"UNRELATED":         "x",
	}
	got := AuthFromEnv(func(k string) string { return env[k] })
	want := Auth{Token: "tok-123", Username: "alice", Password: "pw-456", SSHKeyFile: "/keys/id",
		SSHKeyPassphrase: "pp-789", SSHKnownHosts: "/keys/known_hosts", SSHUser: "gitolite"}
	if got != want {
		t.Fatalf("AuthFromEnv = %#v, want %#v", got, want)
	}
	if !AuthFromEnv(func(string) string { return "" }).IsZero() {
		t.Fatal("empty environment gave credentials")
	}
}

func TestAuthNeverPrintsSecrets(t *testing.T) {
	a := Auth{Token: "tok-123", Username: "alice", Password: "pw-456", SSHKeyFile: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA",
		SSHKeyPassphrase: "pp-789"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("auth", "auth", a)
	for _, s := range []string{
		a.String(), fmt.Sprintf("%v", a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a), fmt.Sprint(&a), logged.String(),
	} {
		for _, secret := range []string{"tok-123", "pw-456", "pp-789", "BEGIN OPENSSH", "AAAA"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q leaks %q", s, secret)
			}
		}
		if !strings.Contains(s, "username=alice") || !strings.Contains(s, "token=<set>") {
			t.Errorf("%q does not say which credentials are present", s)
		}
	}
}

func TestTransportAuthPerScheme(t *testing.T) {
	tokenAuth := Auth{Token: "tok"}
	if m, err := tokenAuth.transportAuth("https://git.example/models.git"); err != nil ||
		*m.(*githttp.BasicAuth) != (githttp.BasicAuth{Username: "x-access-token", Password: "tok"}) {
		t.Fatalf("token auth = %#v, %v", m, err)
	}
	withUser := Auth{Token: "tok", Username: "oauth2", Password: "ignored"}
	if m, err := withUser.transportAuth("http://git.example/models.git"); err != nil ||
		*m.(*githttp.BasicAuth) != (githttp.BasicAuth{Username: "oauth2", Password: "tok"}) {
		t.Fatalf("token with username = %#v, %v", m, err)
	}
	basic := Auth{Username: "u", Password: "p"}
	if m, err := basic.transportAuth("https://git.example/models.git"); err != nil ||
		*m.(*githttp.BasicAuth) != (githttp.BasicAuth{Username: "u", Password: "p"}) {
		t.Fatalf("basic auth = %#v, %v", m, err)
	}
	// Credentials are not sent over transports that do not take them.
	for _, u := range []string{"git://git.example/models.git", "/srv/models.git", "file:///srv/models.git"} {
		if m, err := basic.transportAuth(u); err != nil || m != nil {
			t.Fatalf("%s: auth %#v, %v; want none", u, m, err)
		}
	}
	if m, err := (Auth{}).transportAuth("https://git.example/models.git"); err != nil || m != nil {
		t.Fatalf("anonymous https = %#v, %v", m, err)
	}

	// SSH: key as a file and as PEM text, user precedence, known hosts.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(block))
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id")
	if err := os.WriteFile(keyFile, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	line := "git.example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + "\n"
	if err := os.WriteFile(knownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		auth     Auth
		url      string
		wantUser string
	}{
		{Auth{SSHKeyFile: keyFile, SSHKnownHosts: knownHosts}, "ssh://deploy@git.example/models.git", "deploy"},
		{Auth{SSHKeyFile: pemText, SSHKnownHosts: knownHosts}, "git.example:models.git", "git"},
		{Auth{SSHKeyFile: keyFile, SSHKnownHosts: knownHosts, SSHUser: "gitolite"}, "alice@git.example:models.git", "gitolite"},
	}
	for _, tc := range cases {
		m, err := tc.auth.transportAuth(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		pk, ok := m.(*gitssh.PublicKeys)
		if !ok || pk.User != tc.wantUser || pk.HostKeyCallback == nil {
			t.Fatalf("%s: auth %#v, want public keys for %s with known hosts", tc.url, m, tc.wantUser)
		}
		cfg, err := pk.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		// The configured known_hosts accepts the listed key and rejects others.
		addr := &fakeAddr{"git.example:22"}
		if err := cfg.HostKeyCallback("git.example:22", addr, signer.PublicKey()); err != nil {
			t.Fatalf("known host rejected: %v", err)
		}
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		otherSigner, _ := ssh.NewSignerFromKey(other)
		if err := cfg.HostKeyCallback("git.example:22", addr, otherSigner.PublicKey()); err == nil {
			t.Fatal("unknown host key accepted")
		}
	}

	encrypted := Auth{SSHKeyFile: "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n", SSHKeyPassphrase: "pp-secret"}
	_, err = encrypted.transportAuth("ssh://git.example/models.git")
	if err == nil || !strings.Contains(err.Error(), EnvSSHKey) || strings.Contains(err.Error(), "garbage") || strings.Contains(err.Error(), "pp-secret") {
		t.Fatalf("bad PEM: %v", err)
	}
	if _, err := (Auth{SSHKeyFile: filepath.Join(dir, "missing")}).transportAuth("ssh://git.example/m.git"); err == nil || !strings.Contains(err.Error(), EnvSSHKey) {
		t.Fatalf("missing key file: %v", err)
	}
}

func httpResponse(code int) *http.Response {
	u, _ := neturl.Parse("https://git.example/models.git/info/refs")
	return &http.Response{StatusCode: code, Request: &http.Request{URL: u}}
}

type fakeAddr struct{ s string }

func (a *fakeAddr) Network() string { return "tcp" }
func (a *fakeAddr) String() string  { return a.s }

func TestSanitizeURL(t *testing.T) {
	cases := map[string]string{
		"https://user:s3cret@git.example/org/models.git":     "https://git.example/org/models.git",
		"https://ghp_TOKEN@git.example/org/models.git":       "https://git.example/org/models.git",
		"http://git.example/models.git?token=abc#frag":       "http://git.example/models.git",
		"ssh://deploy:pw@git.example:2222/models.git":        "ssh://deploy@git.example:2222/models.git",
		"ssh://git@git.example/models.git":                   "ssh://git@git.example/models.git",
		"git@git.example:org/models.git":                     "git@git.example:org/models.git",
		"git://127.0.0.1:9418/models.git":                    "git://127.0.0.1:9418/models.git",
		"/srv/git/models.git":                                "/srv/git/models.git",
		"https://user:p%zzw@git.example/models.git?x=secret": "https://git.example/models.git",
	}
	for in, want := range cases {
		if got := SanitizeURL(in); got != want {
			t.Errorf("SanitizeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	url := "https://bob:hunter2@git.example/models.git"
	auth := Auth{Username: "bob", Password: "hunter2"}

	err := classify(ctx, "fetch", url, auth, fmt.Errorf("wrapped: %w", transport.ErrAuthenticationRequired))
	if !errors.Is(err, ErrAuth) || IsRetryable(err) {
		t.Fatalf("auth error classified as %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "hunter2") || !strings.Contains(msg, "https://git.example/models.git") || !strings.Contains(msg, EnvToken) {
		t.Fatalf("auth error message %q: want sanitised URL and the env var, no password", msg)
	}

	leaky := errors.New("dial " + url + ": password hunter2 rejected")
	err = classify(ctx, "fetch", url, auth, leaky)
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("secret survived: %v", err)
	}
	if !errors.Is(err, leaky) {
		t.Fatal("scrubbing lost the cause")
	}

	retryable := []error{
		plumbing.NewUnexpectedError(&githttp.Err{Response: httpResponse(503)}),
		&githttp.Err{Response: httpResponse(429)},
		plumbing.NewPermanentError(fmt.Errorf("post: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED})),
		fmt.Errorf("read: %w", syscall.ECONNRESET),
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED),
		context.DeadlineExceeded,
	}
	for _, e := range retryable {
		if err := classify(ctx, "fetch", url, auth, e); !IsRetryable(err) {
			t.Errorf("%v not retryable: %v", e, err)
		}
	}
	notRetryable := []error{
		plumbing.NewUnexpectedError(&githttp.Err{Response: httpResponse(400)}),
		transport.ErrRepositoryNotFound,
		errors.New("unexpected pack data"),
	}
	for _, e := range notRetryable {
		if err := classify(ctx, "fetch", url, auth, e); IsRetryable(err) {
			t.Errorf("%v retryable: %v", e, err)
		}
	}
	if err := classify(ctx, "fetch", url, auth, transport.ErrRepositoryNotFound); !errors.Is(err, ErrNotFound) {
		t.Errorf("repository not found: %v", err)
	}

	// The caller's own cancellation is not ours to retry.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := classify(cctx, "fetch", url, auth, fmt.Errorf("dial: %w", syscall.ECONNRESET)); IsRetryable(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// Credentials in an address of any scheme are moved out of it: the cache's
// Git config and every error name the address without them, and the SSH
// password is kept for the handshake.
func TestURLCredentialsNeverReachTheCache(t *testing.T) {
	const secret = "pw-S3CRET"
	for _, tc := range []struct {
		url, stored string
	}{
		{"http://bob:" + secret + "@127.0.0.1:1/models.git", "http://127.0.0.1:1/models.git"},
		{"ssh://git:" + secret + "@127.0.0.1:1/models.git", "ssh://git@127.0.0.1:1/models.git"},
		{"git://bob:" + secret + "@127.0.0.1:1/models.git", "git://127.0.0.1:1/models.git"},
		{"git:" + secret + "@127.0.0.1:models.git", "git@127.0.0.1:models.git"},
	} {
		cache := t.TempDir()
		src, err := Open(t.Context(), Options{URL: tc.url, CacheDir: cache})
		if err != nil {
			t.Fatalf("%s: %v", tc.stored, err)
		}
		if got := src.URL(); got != tc.stored {
			t.Errorf("URL() = %q, want %q", got, tc.stored)
		}
		if redact.IsSSH(tc.url) {
			m, err := src.auth.transportAuth(src.url)
			if pw, ok := m.(*gitssh.Password); err != nil || !ok || pw.Password != secret || pw.User != "git" {
				t.Errorf("%s: SSH auth %#v, %v; want the address's password for user git", tc.stored, m, err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err = src.Sync(ctx)
		cancel()
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: sync error %v: want a failure without the password", tc.stored, err)
		}
		_ = src.Close()
		_ = filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if strings.Contains(string(b), secret) {
				t.Errorf("%s: %s holds the password:\n%s", tc.stored, p, b)
			}
			return nil
		})
	}
}

func TestCloneStripsCredentialsOfEveryScheme(t *testing.T) {
	for _, u := range []string{"ssh://git:pw@127.0.0.1:1/m.git", "git://u:pw@127.0.0.1:1/m.git", "git:pw@127.0.0.1:m.git"} {
		clean, auth := MoveURLCredentials(u, Auth{})
		if strings.Contains(clean, "pw") || auth.Password != "pw" {
			t.Errorf("MoveURLCredentials(%q) = %q, %v", u, clean, auth)
		}
	}
	// Credentials already configured win over the address's.
	clean, auth := MoveURLCredentials("https://u:pw@git.example/m.git", Auth{Token: "tok"})
	if clean != "https://git.example/m.git" || auth.Password != "" || auth.Token != "tok" {
		t.Errorf("MoveURLCredentials with a token = %q, %v", clean, auth)
	}
	// An SSH user name alone is the account, not a credential: it stays.
	if clean, auth := MoveURLCredentials("ssh://deploy@git.example/m.git", Auth{}); clean != "ssh://deploy@git.example/m.git" || !auth.IsZero() {
		t.Errorf("ssh user = %q, %v", clean, auth)
	}
}

// An address that does not parse is refused without quoting any of it.
func TestUnparsableURLIsNotQuoted(t *testing.T) {
	_, err := Open(t.Context(), Options{URL: "http://user:pa/ss@127.0.0.1:1/x.git", CacheDir: t.TempDir()})
	if err == nil {
		t.Fatal("Open accepted an address that does not parse")
	}
	if strings.Contains(err.Error(), `":pa"`) || strings.Contains(err.Error(), "pa/ss") {
		t.Fatalf("Open quoted the password: %v", err)
	}
}
