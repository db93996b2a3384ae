package gitsource

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing/format/config"
)

// ErrNoIdentity is matched (errors.Is) when no committer name or email is
// configured anywhere git would look.
var ErrNoIdentity = errors.New("no Git identity configured")

// maxGitConfigSize bounds a configuration file read for the identity; a
// real one is a few kilobytes.
const maxGitConfigSize = 1 << 20

// Identity returns who the person running the command is, as git decides
// the committer of a new object: GIT_COMMITTER_NAME and GIT_COMMITTER_EMAIL
// first, then user.name and user.email from the repository's configuration,
// the global one (GIT_CONFIG_GLOBAL, or ~/.gitconfig over
// $XDG_CONFIG_HOME/git/config) and the system one, and for the email the
// EMAIL variable last. Unlike git it never guesses from the host name: a
// release or rollback names a person or fails with ErrNoIdentity.
// getenv is the process environment (injected so tests control HOME).
func (w *Workspace) Identity(getenv func(string) string) (Signature, error) {
	var local *config.Config
	w.mu.Lock()
	cfg, err := w.repo.Config()
	w.mu.Unlock()
	if err != nil {
		return Signature{}, fmt.Errorf("gitsource: read configuration of %s: %w", w.dir, err)
	}
	if cfg.Raw != nil {
		local = cfg.Raw
	}
	files := identityFiles(getenv)
	name, email := getenv("GIT_COMMITTER_NAME"), getenv("GIT_COMMITTER_EMAIL")
	// Later files override earlier ones, so the repository's own
	// configuration (read last) wins over global and system.
	var cfgName, cfgEmail string
	for _, f := range files {
		c, err := readGitConfig(f)
		if err != nil {
			return Signature{}, err
		}
		if c == nil {
			continue
		}
		if v := c.Section("user").Option("name"); v != "" {
			cfgName = v
		}
		if v := c.Section("user").Option("email"); v != "" {
			cfgEmail = v
		}
	}
	if local != nil {
		if v := local.Section("user").Option("name"); v != "" {
			cfgName = v
		}
		if v := local.Section("user").Option("email"); v != "" {
			cfgEmail = v
		}
	}
	if name == "" {
		name = cfgName
	}
	if email == "" {
		email = cfgEmail
	}
	if email == "" {
		email = getenv("EMAIL")
	}
	var missing []string
	if name == "" {
		missing = append(missing, "name")
	}
	if email == "" {
		missing = append(missing, "email")
	}
	if len(missing) > 0 {
		return Signature{}, fmt.Errorf("%w: the committer %s is not set; run `git config --global user.name \"Your Name\"` and `git config --global user.email you@example.com` (or set GIT_COMMITTER_NAME and GIT_COMMITTER_EMAIL)",
			ErrNoIdentity, joinAnd(missing))
	}
	return Signature{Name: name, Email: email}, nil
}

// identityFiles lists the system and global configuration files in the
// order git reads them.
func identityFiles(getenv func(string) string) []string {
	var files []string
	if getenv("GIT_CONFIG_NOSYSTEM") == "" {
		if p := getenv("GIT_CONFIG_SYSTEM"); p != "" {
			files = append(files, p)
		} else {
			files = append(files, "/etc/gitconfig")
		}
	}
	if p := getenv("GIT_CONFIG_GLOBAL"); p != "" {
		return append(files, p)
	}
	home := getenv("HOME")
	xdg := getenv("XDG_CONFIG_HOME")
	if xdg == "" && home != "" {
		xdg = filepath.Join(home, ".config")
	}
	if xdg != "" {
		files = append(files, filepath.Join(xdg, "git", "config"))
	}
	if home != "" {
		files = append(files, filepath.Join(home, ".gitconfig"))
	}
	return files
}

// readGitConfig decodes one configuration file; a missing file is nil.
func readGitConfig(path string) (*config.Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gitsource: read git configuration %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("gitsource: read git configuration %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, nil
	}
	if st.Size() > maxGitConfigSize {
		return nil, fmt.Errorf("gitsource: git configuration %s is larger than %d bytes", path, maxGitConfigSize)
	}
	c := config.New()
	if err := config.NewDecoder(f).Decode(c); err != nil {
		return nil, fmt.Errorf("gitsource: parse git configuration %s: %w", path, err)
	}
	return c, nil
}

func joinAnd(s []string) string {
	if len(s) == 2 {
		return s[0] + " and " + s[1]
	}
	return s[0]
}
