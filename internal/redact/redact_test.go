package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	cases := map[string]string{
		"https://user:s3cret@git.example/org/models.git":          "https://git.example/org/models.git",
		"https://ghp_TOKEN@git.example/org/models.git":            "https://git.example/org/models.git",
		"HTTP://user:s3cret@git.example/models.git":               "http://git.example/models.git",
		"http://git.example/models.git?token=s3cret#frag":         "http://git.example/models.git",
		"ssh://deploy:s3cret@git.example:2222/models.git":         "ssh://deploy@git.example:2222/models.git",
		"git+ssh://deploy:s3cret@git.example/models.git":          "git+ssh://deploy@git.example/models.git",
		"ssh://:s3cret@git.example/models.git":                    "ssh://git.example/models.git",
		"ssh://git@git.example/models.git":                        "ssh://git@git.example/models.git",
		"git://user:s3cret@127.0.0.1:9418/models.git":             "git://127.0.0.1:9418/models.git",
		"file://user:s3cret@/srv/git/models.git":                  "file:///srv/git/models.git",
		"git@git.example:org/models.git":                          "git@git.example:org/models.git",
		"git:s3cret@git.example:org/models.git":                   "git@git.example:org/models.git",
		"/srv/git/models.git":                                     "/srv/git/models.git",
		"./models@2024/repo":                                      "./models@2024/repo",
		"https://user:p%zzw@git.example/models.git?x=s3cret":      "https://git.example/models.git",
		"http://user:s3c/ret@127.0.0.1:1/x.git":                   "http://127.0.0.1:1/x.git",
		"http://user:s3c?ret@127.0.0.1:1/x.git":                   "http://127.0.0.1:1/x.git",
		"https://mlflow.example/prefix?access_token=s3cret":       "https://mlflow.example/prefix",
		"https://user:s3cret@ghe.example/api/v3":                  "https://ghe.example/api/v3",
		"http://minio:s3cret@127.0.0.1:9000":                      "http://127.0.0.1:9000",
		"https://user%40corp:s3cret%2Fx@git.example/models.git":   "https://git.example/models.git",
		"ssh://user%40corp:s3cret%2Fx@git.example:22/models.git":  "ssh://user%40corp@git.example:22/models.git",
		"https://git.example/org/models.git":                      "https://git.example/org/models.git",
		"https://git.example/path@with-at/models.git":             "https://git.example/path@with-at/models.git",
		"s3://bucket/key":                                         "s3://bucket/key",
		"mlflow-artifacts:/0/abc":                                 "mlflow-artifacts:/0/abc",
		"user:s3cret@host:path/with/slashes.git":                  "user@host:path/with/slashes.git",
		"https://user:s3cret@git.example/models.git#s3cret-again": "https://git.example/models.git",
	}
	for in, want := range cases {
		got := URL(in)
		if got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, "TOKEN") {
			t.Errorf("URL(%q) = %q still holds the secret", in, got)
		}
	}
}

func TestSplit(t *testing.T) {
	cases := []struct {
		in, clean, user, password string
	}{
		{"https://bob:s3cret@git.example/models.git", "https://git.example/models.git", "bob", "s3cret"},
		{"https://ghp_TOKEN@git.example/models.git", "https://git.example/models.git", "ghp_TOKEN", ""},
		{"ssh://git:s3cret@git.example:2222/models.git", "ssh://git@git.example:2222/models.git", "git", "s3cret"},
		{"ssh://git@git.example/models.git", "ssh://git@git.example/models.git", "git", ""},
		{"git://bob:s3cret@127.0.0.1/models.git", "git://127.0.0.1/models.git", "bob", "s3cret"},
		{"git:s3cret@git.example:org/models.git", "git@git.example:org/models.git", "git", "s3cret"},
		{"git@git.example:org/models.git", "git@git.example:org/models.git", "", ""},
		{"/srv/git/models.git", "/srv/git/models.git", "", ""},
		{"https://git.example/models.git?ref=x", "https://git.example/models.git?ref=x", "", ""},
		{"https://bob:p%2Fw@git.example/models.git", "https://git.example/models.git", "bob", "p/w"},
	}
	for _, c := range cases {
		clean, user, password := Split(c.in)
		if clean != c.clean || user != c.user || password != c.password {
			t.Errorf("Split(%q) = %q, %q, %q; want %q, %q, %q", c.in, clean, user, password, c.clean, c.user, c.password)
		}
	}
}

func TestIsSSH(t *testing.T) {
	for in, want := range map[string]bool{
		"ssh://git@host/x":       true,
		"git+ssh://host/x":       true,
		"git@host:org/x.git":     true,
		"https://host/x":         false,
		"/srv/git/x.git":         false,
		"relative/dir@x/y":       false,
		"git://host/x":           false,
		"user:pw@host:org/x.git": true,
	} {
		if got := IsSSH(in); got != want {
			t.Errorf("IsSSH(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestSecrets(t *testing.T) {
	msg := `Get "https://bob:p%2Fw%40x@git.example/": p/w@x rejected; form password=p%2Fw%40x`
	got := Secrets(msg, "p/w@x", "")
	if strings.Contains(got, "p/w@x") || strings.Contains(got, "p%2Fw%40x") {
		t.Fatalf("Secrets left the secret in %q", got)
	}
	if !strings.Contains(got, Mask) {
		t.Fatalf("Secrets(%q) = %q: no mask", msg, got)
	}
}

func TestHasCredentials(t *testing.T) {
	for in, want := range map[string]bool{
		"https://ghe.example/api/v3":            false,
		"https://tok@ghe.example/api/v3":        true,
		"http://minio:s3cret@127.0.0.1:9000":    true,
		"ssh://git@host/x":                      false,
		"ssh://git:pw@host/x":                   true,
		"git@host:org/x.git":                    false,
		"git:pw@host:org/x.git":                 true,
		"http://user:s3c/ret@127.0.0.1:1/x.git": true,
		"/srv/git/x.git":                        false,
	} {
		if got := HasCredentials(in); got != want {
			t.Errorf("HasCredentials(%q) = %v, want %v", in, got, want)
		}
	}
}
