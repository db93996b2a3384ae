package apiauth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"strings"
)

// StaticTokens authenticates bearer tokens the operator configured
// (MODELSYNC_API_TOKEN, --api-tokens-file). Their holders are trusted with
// the whole API: there is no finer grant for a shared secret. Use
// Kubernetes authentication for per-person permissions.
type StaticTokens struct {
	entries []staticToken
}

type staticToken struct {
	digest [sha256.Size]byte
	name   string
}

// MinTokenLength is the shortest token accepted: shorter ones are
// guessable.
const MinTokenLength = 16

// NewStaticTokens returns a provider for tokens mapped to the names the
// audit log records ("token:<name>").
func NewStaticTokens() *StaticTokens { return &StaticTokens{} }

// Add registers a token for name.
func (s *StaticTokens) Add(token, name string) error {
	if token == "" {
		return ErrNoToken
	}
	if len(token) < MinTokenLength {
		return fmt.Errorf("API token for %q is %d characters; at least %d are required", name, len(token), MinTokenLength)
	}
	if name == "" || strings.ContainsAny(name, " \t,") {
		return fmt.Errorf("API token name %q: want a non-empty name without spaces or commas", name)
	}
	s.entries = append(s.entries, staticToken{digest: sha256.Sum256([]byte(token)), name: name})
	return nil
}

// Len is the number of tokens.
func (s *StaticTokens) Len() int { return len(s.entries) }

// ReadTokensFile adds the tokens of a file whose lines are "token,name"
// (blank lines and lines starting with # are skipped). Errors name the
// line, never the token.
func (s *StaticTokens) ReadTokensFile(path string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		token, name, ok := strings.Cut(line, ",")
		if !ok {
			return fmt.Errorf("%s:%d: want \"token,name\"", path, n)
		}
		if err := s.Add(strings.TrimSpace(token), strings.TrimSpace(name)); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (s *StaticTokens) Name() string { return "static-token" }

// Authenticate compares digests in constant time and looks at every entry,
// so neither the answer time nor an early exit tells how much of a guess
// was right or which entry matched.
func (s *StaticTokens) Authenticate(_ context.Context, token string) (Identity, bool, error) {
	d := sha256.Sum256([]byte(token))
	match := -1
	for i, e := range s.entries {
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Identity{}, false, nil
	}
	return Identity{Name: "token:" + s.entries[match].name}, true, nil
}

// Authorize allows everything: see the type's comment.
func (s *StaticTokens) Authorize(context.Context, Identity, Attributes) (Decision, error) {
	return Decision{Allowed: true, Reason: "static API token"}, nil
}
