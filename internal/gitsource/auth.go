package gitsource

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"github.com/modelsync/modelsync/internal/redact"
)

// Environment variables read by AuthFromEnv. Error messages name them so an
// operator knows where credentials come from.
const (
	EnvToken             = "MODELSYNC_GIT_TOKEN"
	EnvUsername          = "MODELSYNC_GIT_USERNAME"
	EnvPassword          = "MODELSYNC_GIT_PASSWORD"
	EnvSSHKey            = "MODELSYNC_GIT_SSH_KEY"
	EnvSSHKeyPassphrase  = "MODELSYNC_GIT_SSH_KEY_PASSPHRASE"
	EnvSSHKnownHosts     = "MODELSYNC_GIT_SSH_KNOWN_HOSTS"
	EnvSSHUser           = "MODELSYNC_GIT_SSH_USER"
	defaultTokenUsername = "x-access-token"
	defaultSSHUser       = "git"
)

// Auth carries Git credentials. Which fields apply depends on the URL scheme:
//
//   - http(s): Token wins over Password. A token is sent as HTTP basic auth
//     with user Username, or "x-access-token" when Username is empty (the
//     form GitHub App and fine-grained tokens expect; GitLab and Gitea accept
//     any user name with a token as password).
//   - ssh (ssh:// and scp-like user@host:path): SSHKeyFile is a path to a
//     private key or the PEM text itself (recognised by its "-----BEGIN"
//     header, convenient for keys injected from a Kubernetes Secret), with
//     SSHKeyPassphrase when encrypted. SSHKnownHosts is a path to a
//     known_hosts file; without it the user's default known_hosts files
//     (or $SSH_KNOWN_HOSTS) are used. Host keys are always verified.
//     SSHUser defaults to the URL's user, then "git". Without a key,
//     Password (from the URL or MODELSYNC_GIT_PASSWORD) is used when set,
//     and otherwise the ssh-agent at $SSH_AUTH_SOCK.
//   - git:// and local paths: no credentials.
//
// String and LogValue redact every secret, so an Auth can be logged.
type Auth struct {
	Username         string
	Password         string
	Token            string
	SSHKeyFile       string
	SSHKeyPassphrase string
	SSHKnownHosts    string
	SSHUser          string
}

// AuthFromEnv reads credentials from MODELSYNC_GIT_TOKEN,
// MODELSYNC_GIT_USERNAME, MODELSYNC_GIT_PASSWORD, MODELSYNC_GIT_SSH_KEY,
// MODELSYNC_GIT_SSH_KEY_PASSPHRASE, MODELSYNC_GIT_SSH_KNOWN_HOSTS and
// MODELSYNC_GIT_SSH_USER. getenv is usually os.Getenv; it is a parameter so
// callers and tests need not mutate the process environment.
func AuthFromEnv(getenv func(string) string) Auth {
	return Auth{
		Token:            getenv(EnvToken),
		Username:         getenv(EnvUsername),
		Password:         getenv(EnvPassword),
		SSHKeyFile:       getenv(EnvSSHKey),
		SSHKeyPassphrase: getenv(EnvSSHKeyPassphrase),
		SSHKnownHosts:    getenv(EnvSSHKnownHosts),
		SSHUser:          getenv(EnvSSHUser),
	}
}

// IsZero reports whether no credential is set.
func (a Auth) IsZero() bool { return a == Auth{} }

// String describes which credentials are present without revealing them.
func (a Auth) String() string {
	var parts []string
	set := func(name, v string) {
		if v != "" {
			parts = append(parts, name+"=<set>")
		}
	}
	if a.Username != "" {
		parts = append(parts, "username="+a.Username)
	}
	set("password", a.Password)
	set("token", a.Token)
	set("ssh-key", a.SSHKeyFile)
	set("ssh-key-passphrase", a.SSHKeyPassphrase)
	if a.SSHKnownHosts != "" {
		parts = append(parts, "ssh-known-hosts="+a.SSHKnownHosts)
	}
	if a.SSHUser != "" {
		parts = append(parts, "ssh-user="+a.SSHUser)
	}
	if len(parts) == 0 {
		return "gitsource.Auth{none}"
	}
	return "gitsource.Auth{" + strings.Join(parts, " ") + "}"
}

// GoString keeps %#v from printing secrets.
func (a Auth) GoString() string { return a.String() }

// LogValue keeps slog from printing secrets.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// transportAuth returns the go-git auth method for rawURL, or nil when the
// transport needs none (or should fall back to its defaults, e.g. ssh-agent).
func (a Auth) transportAuth(rawURL string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse git URL %s: %w", SanitizeURL(rawURL), errNoSecrets(err, rawURL))
	}
	switch ep.Protocol {
	case "http", "https":
		switch {
		case a.Token != "":
			user := a.Username
			if user == "" {
				user = defaultTokenUsername
			}
			return &githttp.BasicAuth{Username: user, Password: a.Token}, nil
		case a.Username != "" || a.Password != "":
			return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, nil
		}
		return nil, nil
	case "ssh":
		user := a.SSHUser
		if user == "" {
			user = ep.User
		}
		if user == "" {
			user = defaultSSHUser
		}
		var helper gitssh.HostKeyCallbackHelper
		if a.SSHKnownHosts != "" {
			cb, err := gitssh.NewKnownHostsCallback(a.SSHKnownHosts)
			if err != nil {
				return nil, fmt.Errorf("load SSH known hosts %s (%s): %w", a.SSHKnownHosts, EnvSSHKnownHosts, err)
			}
			helper.HostKeyCallback = cb
		}
		if a.SSHKeyFile == "" && a.Password != "" {
			// A password given in the address (ssh://user:pw@host/…) or
			// the environment: kept in memory for the handshake only.
			return &gitssh.Password{User: user, Password: a.Password, HostKeyCallbackHelper: helper}, nil
		}
		if a.SSHKeyFile == "" {
			if a.SSHKnownHosts == "" {
				return nil, nil
			}
			agent, err := gitssh.NewSSHAgentAuth(user)
			if err != nil {
				return nil, fmt.Errorf("no SSH key set (%s) and no usable ssh-agent: %w", EnvSSHKey, err)
			}
			agent.HostKeyCallbackHelper = helper
			return agent, nil
		}
		var keys *gitssh.PublicKeys
		if pem := []byte(a.SSHKeyFile); bytes.HasPrefix(bytes.TrimSpace(pem), []byte("-----BEGIN")) {
			keys, err = gitssh.NewPublicKeys(user, pem, a.SSHKeyPassphrase)
			if err != nil {
				// The parse error never echoes key material, but say nothing
				// more than needed.
				return nil, fmt.Errorf("parse SSH private key from %s: %w", EnvSSHKey, err)
			}
		} else {
			keys, err = gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, a.SSHKeyPassphrase)
			if err != nil {
				return nil, fmt.Errorf("load SSH private key %s (%s): %w", a.SSHKeyFile, EnvSSHKey, err)
			}
		}
		keys.HostKeyCallbackHelper = helper
		return keys, nil
	default:
		return nil, nil
	}
}

// SanitizeURL returns rawURL without credentials, query or fragment, fit
// for logs and error messages; it is redact.URL, kept here because every
// message of this package names a repository URL.
func SanitizeURL(rawURL string) string { return redact.URL(rawURL) }

// splitURLCredentials removes credentials embedded in a URL of any scheme
// (http(s), ssh, git, file, scp-like) and returns them, so they are never
// written to the cache's Git config nor echoed by transport errors. An SSH
// address keeps its user name, which is the account to log in as. Only
// what authenticates is returned: the user name of an SSH address without
// a password is not.
func splitURLCredentials(rawURL string) (clean string, user, password string) {
	clean, user, password = redact.Split(rawURL)
	if redact.IsSSH(clean) && password == "" {
		user = ""
	}
	return clean, user, password
}

// MoveURLCredentials returns rawURL without user:password, moving them into
// auth unless auth already carries credentials.
func MoveURLCredentials(rawURL string, auth Auth) (string, Auth) {
	clean, user, password := splitURLCredentials(rawURL)
	if (user != "" || password != "") && auth.Username == "" && auth.Password == "" && auth.Token == "" {
		auth.Username, auth.Password = user, password
	}
	return clean, auth
}
