package githubtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Webhook payloads below follow GitHub's "Webhook events and payloads"
// schemas for the fields modelsync and go-github read, plus the common
// envelope (repository, sender, installation).

func (s *Server) repository(defaultBranch string) map[string]any {
	return map[string]any{
		"id": 1, "node_id": "R_1", "name": s.Repo, "full_name": s.Owner + "/" + s.Repo, "private": true,
		"owner":          map[string]any{"login": s.Owner, "id": 2, "type": "Organization"},
		"html_url":       "https://github.example/" + s.Owner + "/" + s.Repo,
		"default_branch": defaultBranch,
	}
}

func sender(login string) map[string]any {
	return map[string]any{"login": login, "id": 9, "type": "User"}
}

// PullRequestEvent is a pull_request delivery for the current state of PR
// number.
func (s *Server) PullRequestEvent(action string, number int) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.prs[number]
	return map[string]any{
		"action": action, "number": number, "pull_request": s.prJSON(p),
		"repository": s.repository(p.BaseRef), "sender": sender(p.Author),
		"installation": map[string]any{"id": 42, "node_id": "I_42"},
	}
}

// ReviewEvent is a pull_request_review delivery. Webhook review states
// are lower case ("approved"), unlike the REST API's.
func (s *Server) ReviewEvent(action string, number int, user, state, commit string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.prs[number]
	return map[string]any{
		"action": action,
		"review": map[string]any{"id": 555, "user": sender(user), "body": nil, "state": state, "commit_id": commit,
			"submitted_at": time.Date(2026, 1, 20, 11, 0, 0, 0, time.UTC).Format(time.RFC3339), "author_association": "MEMBER"},
		"pull_request": s.prJSON(p), "repository": s.repository(p.BaseRef), "sender": sender(user),
	}
}

// PushEvent is a push delivery.
func (s *Server) PushEvent(ref, before, after, defaultBranch string, created, deleted bool) map[string]any {
	return map[string]any{
		"ref": ref, "before": before, "after": after, "created": created, "deleted": deleted, "forced": false,
		"base_ref": nil, "compare": "https://github.example/compare", "commits": []any{}, "head_commit": nil,
		"repository": s.repository(defaultBranch), "pusher": map[string]any{"name": "alice-ml", "email": "alice@example.com"},
		"sender": sender("alice-ml"),
	}
}

// CreateEvent is a create delivery for a branch or tag.
func (s *Server) CreateEvent(ref, refType, defaultBranch string) map[string]any {
	return map[string]any{
		"ref": ref, "ref_type": refType, "master_branch": defaultBranch, "description": nil, "pusher_type": "user",
		"repository": s.repository(defaultBranch), "sender": sender("alice-ml"),
	}
}

// PingEvent is the delivery GitHub sends when a hook is created.
func PingEvent() map[string]any {
	return map[string]any{"zen": "Keep it logically awesome.", "hook_id": 12345,
		"hook": map[string]any{"type": "Repository", "id": 12345, "active": true, "events": []string{"pull_request", "push"},
			"config": map[string]any{"content_type": "json", "insecure_ssl": "0", "url": "https://modelsync.example/webhooks/github"}}}
}

// Sign computes X-Hub-Signature-256 the way GitHub does: HMAC-SHA256 of
// the raw body with the webhook secret, hex encoded, prefixed "sha256=".
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Delivery is one webhook request to send.
type Delivery struct {
	Event, ID string
	Payload   any
	// Secret signs the body; nil sends no signature.
	Secret []byte
	// Signature overrides the computed signature.
	Signature string
	// Form sends the payload as GitHub does for a webhook whose content
	// type is application/x-www-form-urlencoded: a form whose "payload"
	// field is the JSON. The signature covers the body as sent.
	Form bool
}

// Deliver POSTs a delivery with GitHub's headers and returns the status.
func Deliver(tb testing.TB, target string, d Delivery) int {
	tb.Helper()
	body, err := json.Marshal(d.Payload)
	if err != nil {
		tb.Fatal(err)
	}
	contentType := "application/json"
	if d.Form {
		body = []byte(url.Values{"payload": {string(body)}}.Encode())
		contentType = "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "GitHub-Hookshot/abc123")
	req.Header.Set("X-GitHub-Event", d.Event)
	req.Header.Set("X-GitHub-Delivery", d.ID)
	req.Header.Set("X-GitHub-Hook-ID", "12345")
	switch {
	case d.Signature != "":
		req.Header.Set("X-Hub-Signature-256", d.Signature)
	case d.Secret != nil:
		req.Header.Set("X-Hub-Signature-256", Sign(d.Secret, body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
