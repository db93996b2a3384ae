package gitsource

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
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
//     SSHUser defaults to the URL's user, then "git". Without a key the
//     ssh-agent at $SSH_AUTH_SOCK is used.
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
// for logs and error messages. For http(s) the whole userinfo is removed
// (the "user" part is often a token); for ssh only the user name is kept.
func SanitizeURL(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		// scp-like "user@host:path" and local paths carry no password.
		return rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// Unparseable: drop everything up to the last '@' of the authority.
		authority, path, _ := strings.Cut(rest, "/")
		if i := strings.LastIndexByte(authority, '@'); i >= 0 {
			authority = authority[i+1:]
		}
		path, _, _ = strings.Cut(path, "?")
		return scheme + "://" + authority + "/" + path
	}
	if u.User != nil {
		if strings.EqualFold(u.Scheme, "ssh") || strings.HasPrefix(strings.ToLower(u.Scheme), "git+ssh") {
			u.User = url.User(u.User.Username())
		} else {
			u.User = nil
		}
	}
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

// splitURLCredentials removes credentials embedded in an http(s) URL and
// returns them as Auth fields, so they are never written to the cache's Git
// config nor echoed by transport errors.
func splitURLCredentials(rawURL string) (clean string, user, password string) {
	if !strings.Contains(rawURL, "://") {
		return rawURL, "", ""
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL, "", ""
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return rawURL, "", ""
	}
	user = u.User.Username()
	password, _ = u.User.Password()
	u.User = nil
	return u.String(), user, password
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
