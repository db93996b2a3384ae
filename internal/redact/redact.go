// Package redact keeps credentials out of what modelsync prints or stores.
// URL is the one function every log line, error, event, status, audit entry
// and Git configuration goes through when it names a URL; Split takes the
// credentials out of a URL so they can be kept in memory for
// authentication only.
//
// Credentials turn up in URLs in several forms: userinfo in any scheme
// (http, https, ssh, git, file: "scheme://user:password@host/…"), the
// userinfo of an scp-like Git address ("user:password@host:path"), and
// tokens in query strings. Addresses that do not parse are treated as if
// everything before their last '@' were a secret.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces a secret in text.
const Mask = "***"

// URL returns raw fit for logs, errors and files: no password in any
// scheme, no user name except for SSH (where it is the account, e.g.
// "git", not a secret, and needed to tell addresses apart), no query and
// no fragment. Strings that are not URLs (local paths) come back
// unchanged.
func URL(raw string) string {
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		u, err := url.Parse(raw)
		if err != nil {
			return scheme + "://" + unparsedRest(rest)
		}
		if u.User != nil {
			if isSSH(u.Scheme) && u.User.Username() != "" {
				u.User = url.User(u.User.Username())
			} else {
				u.User = nil
			}
		}
		u.RawQuery, u.ForceQuery = "", false
		u.Fragment, u.RawFragment = "", ""
		return u.String()
	}
	if user, _, hasPassword, host, ok := scpLike(raw); ok && hasPassword {
		return user + "@" + host
	}
	return raw
}

// unparsedRest strips what may be credentials from the part after "://" of
// an address url.Parse refused: everything up to the last '@' before the
// query (a password may hold '/' or '?', which is often why it did not
// parse), and the query and fragment.
func unparsedRest(rest string) string {
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// Split returns raw without its password, and without its user name too
// except for SSH addresses, together with the user name and password it
// held. The query is kept: the result is for connecting, not for display
// (use URL for that). An address that does not parse is returned as is,
// with no credentials: the caller's own parse then fails, and its error
// must go through URL.
func Split(raw string) (clean, user, password string) {
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			return raw, "", ""
		}
		user = u.User.Username()
		password, _ = u.User.Password()
		if isSSH(u.Scheme) && user != "" {
			u.User = url.User(user)
		} else {
			u.User = nil
		}
		return u.String(), user, password
	}
	if u, pw, hasPassword, host, ok := scpLike(raw); ok && hasPassword {
		return u + "@" + host, u, pw
	}
	return raw, "", ""
}

// HasCredentials reports whether raw carries a password, or a user name
// outside an SSH address (where a user name alone is often a token).
// Addresses that do not parse but hold an '@' count as carrying some.
func HasCredentials(raw string) bool {
	if strings.Contains(raw, "://") {
		if _, err := url.Parse(raw); err != nil {
			return strings.Contains(raw, "@")
		}
	}
	_, user, password := Split(raw)
	return password != "" || (user != "" && !IsSSH(raw))
}

// IsSSH reports whether raw is an SSH address: ssh://, git+ssh://,
// ssh+git:// or scp-like user@host:path.
func IsSSH(raw string) bool {
	if scheme, _, ok := strings.Cut(raw, "://"); ok {
		return isSSH(scheme)
	}
	_, _, _, _, ok := scpLike(raw)
	return ok
}

func isSSH(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "ssh", "git+ssh", "ssh+git":
		return true
	}
	return false
}

// scpLike parses Git's scp-like syntax, [user[:password]@]host:path, the
// way git tells it from a local path: the first ':' comes before any '/'.
// ok is false for local paths and for addresses without a user.
func scpLike(raw string) (user, password string, hasPassword bool, hostPath string, ok bool) {
	head := raw
	if i := strings.IndexByte(raw, '/'); i >= 0 {
		head = raw[:i]
	}
	at := strings.LastIndexByte(head, '@')
	if at <= 0 {
		return "", "", false, "", false
	}
	hostPath = raw[at+1:]
	host, _, found := strings.Cut(hostPath, ":")
	if !found || host == "" || strings.Contains(host, "/") {
		return "", "", false, "", false
	}
	user, password, hasPassword = strings.Cut(raw[:at], ":")
	return user, password, hasPassword, hostPath, true
}

// Secrets replaces every non-empty secret in s with Mask, in the forms a
// URL or a form body would carry it too (percent-encoded), so an error
// quoting a request cannot leak the secret it was made with.
func Secrets(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, form := range []string{sec, url.PathEscape(sec), url.QueryEscape(sec), strings.TrimPrefix(url.UserPassword("", sec).String(), ":")} {
			if form != "" {
				s = strings.ReplaceAll(s, form, Mask)
			}
		}
	}
	return s
}
