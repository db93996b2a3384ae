package manifest

import (
	"strings"
	"testing"
	"time"
)

func TestSecurityConfig(t *testing.T) {
	good := testConfig + `security:
  verifyArtifacts: true
  advisories:
    path: advisories
    url: https://osv.internal.example
    allow:
      - {id: GHSA-aaaa-bbbb-cccc, expires: "2027-01-31", reason: "not reachable: no user pickles", models: [churn]}
`
	repo, err := Load(repoFS(good, map[string]string{"churn": goodModel}))
	if err != nil || repo.Config == nil {
		t.Fatalf("%v %v", err, repo.ConfigErrors)
	}
	a := repo.Config.Security.Advisories.Allow[0]
	if exp, err := a.ExpiresAt(); err != nil || !exp.Equal(time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)) || !repo.Config.Security.VerifyArtifacts {
		t.Fatalf("allow %+v expires %v %v", a, exp, err)
	}
	bad := testConfig + `security:
  advisories:
    url: https://user:secret@osv.example
    allow:
      - {id: "", expires: "next week", reason: ""}
`
	broken, err := Load(repoFS(bad, map[string]string{"churn": goodModel}))
	if err == nil {
		err = broken.ConfigErrors
	}
	for _, want := range []string{"security.advisories.allow[0].id", "security.advisories.allow[0].expires", "security.advisories.allow[0].reason", "security.advisories.url: remove the credentials"} {
		if err == nil || broken.Config != nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("the password reached the error: %v", err)
	}
}
