package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/modelsync/modelsync/internal/redact"
)

// Sentinel errors. Every error returned by this package that falls into one
// of these classes matches it with errors.Is; the message always names the
// (sanitised) URL, and the underlying cause is kept for errors.As.
var (
	// ErrAuth: the server rejected or required credentials, or an SSH host
	// key could not be verified. Not retryable without a configuration change.
	ErrAuth = errors.New("git authentication failed")
	// ErrNotFound: the repository, a ref or an object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrTransient: a network or server-side failure that may succeed when
	// retried (see IsRetryable).
	ErrTransient = errors.New("transient git transport error")
	// ErrTagExists: a tag of that name already exists (locally or on the
	// remote) at a different object; release tags are never moved.
	ErrTagExists = errors.New("tag already exists")
)

// IsRetryable reports whether err is a transient failure worth retrying
// with backoff. Authentication, not-found and cancellation are not.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrTransient)
}

// classify wraps a go-git error from op on url into one of the sentinel
// classes and scrubs secrets from its text.
func classify(ctx context.Context, op, url string, auth Auth, err error) error {
	if err == nil {
		return nil
	}
	safeURL := SanitizeURL(url)
	err = scrub(err, url, auth)
	if ctx != nil && ctx.Err() != nil {
		// The caller's own deadline or cancellation: retrying is the caller's
		// decision, not ours.
		return fmt.Errorf("%s %s: %w", op, safeURL, ctx.Err())
	}
	switch {
	case isAuthError(err):
		return fmt.Errorf("%w: %s %s: %w; %s", ErrAuth, op, safeURL, err, credentialHint(url))
	case errors.Is(goGitCause(err), transport.ErrRepositoryNotFound):
		return fmt.Errorf("%w: %s %s: repository does not exist or is not readable with the given credentials: %w", ErrNotFound, op, safeURL, err)
	case errors.Is(err, plumbing.ErrReferenceNotFound), errors.Is(err, plumbing.ErrObjectNotFound):
		return fmt.Errorf("%w: %s %s: %w", ErrNotFound, op, safeURL, err)
	case isTransient(err):
		return fmt.Errorf("%w: %s %s: %w", ErrTransient, op, safeURL, err)
	}
	return fmt.Errorf("%s %s: %w", op, safeURL, err)
}

func isAuthError(err error) bool {
	err = goGitCause(err)
	if errors.Is(err, transport.ErrAuthenticationRequired) ||
		errors.Is(err, transport.ErrAuthorizationFailed) ||
		errors.Is(err, transport.ErrInvalidAuthMethod) {
		return true
	}
	// golang.org/x/crypto/ssh reports these as plain strings.
	msg := err.Error()
	return strings.Contains(msg, "unable to authenticate") ||
		strings.Contains(msg, "knownhosts:") ||
		strings.Contains(msg, "host key mismatch")
}

// goGitCause digs through go-git's UnexpectedError and PermanentError,
// which wrap causes without implementing Unwrap.
func goGitCause(err error) error {
	for range 8 {
		var ue *plumbing.UnexpectedError
		var pe *plumbing.PermanentError
		switch {
		case errors.As(err, &ue) && ue.Err != nil:
			err = ue.Err
		case errors.As(err, &pe) && pe.Err != nil:
			err = pe.Err
		default:
			return err
		}
	}
	return err
}

func isTransient(err error) bool {
	err = goGitCause(err)
	var herr *githttp.Err
	if errors.As(err, &herr) && herr.Response != nil {
		code := herr.StatusCode()
		return code == 408 || code == 429 || code >= 500
	}
	if errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}

func credentialHint(url string) string {
	lower := strings.ToLower(url)
	switch {
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
		return fmt.Sprintf("set %s (or %s and %s) to credentials with read access", EnvToken, EnvUsername, EnvPassword)
	case strings.HasPrefix(lower, "ssh://"), !strings.Contains(lower, "://") && strings.Contains(lower, "@"):
		return fmt.Sprintf("set %s to a private key the server accepts and %s to a known_hosts file containing the server's host key", EnvSSHKey, EnvSSHKnownHosts)
	}
	return "this transport takes no credentials; check the server's access rules"
}

// scrubbedError keeps the cause for errors.Is/As while its text has every
// known secret replaced.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub returns err with the raw URL (which may embed credentials) and every
// secret in auth removed from its text, on one line. It returns err
// unchanged when there is nothing to change.
func scrub(err error, rawURL string, auth Auth) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := msg
	if rawURL != "" {
		if safe := SanitizeURL(rawURL); safe != rawURL {
			out = strings.ReplaceAll(out, rawURL, safe)
		}
	}
	out = redact.Secrets(out, auth.Password, auth.Token, auth.SSHKeyPassphrase)
	if strings.Contains(auth.SSHKeyFile, "-----BEGIN") {
		out = strings.ReplaceAll(out, auth.SSHKeyFile, "***")
	}
	// Server-supplied reasons often end in newlines; keep errors one line.
	out = strings.Join(strings.Fields(out), " ")
	if out == msg {
		return err
	}
	return &scrubbedError{msg: out, err: err}
}

// errNoSecrets scrubs a URL-embedded credential from err, an error about
// parsing rawURL. When the address holds anything redact.URL hides, the
// parser's own words are dropped too: they quote pieces of the address
// (`invalid port ":pa" after host` is the start of a password).
func errNoSecrets(err error, rawURL string) error {
	if redact.URL(rawURL) != rawURL {
		return &scrubbedError{msg: "the address does not parse (details withheld: it may hold credentials)", err: err}
	}
	_, user, password := splitURLCredentials(rawURL)
	return scrub(err, rawURL, Auth{Username: user, Password: password})
}
