package advisory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/redact"
)

// Client asks an OSV-compatible API (POST /v1/querybatch, then GET
// /v1/vulns/{id} for each advisory it names, since querybatch answers only
// IDs).
type Client struct {
	// BaseURL is the API root, e.g. https://osv.example/ (no path suffix).
	BaseURL string
	HTTP    *http.Client
	// Timeout bounds the whole lookup; 0 means 30 seconds.
	Timeout time.Duration
	// MaxBodyBytes bounds each answer; 0 means 8 MiB.
	MaxBodyBytes int64
}

// OnlineError names the API (credentials removed) and what failed.
type OnlineError struct {
	URL string
	Err error
}

func (e *OnlineError) Error() string { return fmt.Sprintf("advisory API %s: %v", e.URL, e.Err) }
func (e *OnlineError) Unwrap() error { return e.Err }

type batchQuery struct {
	Package Package `json:"package"`
	Version string  `json:"version"`
}

type batchAnswer struct {
	Results []struct {
		Vulns []struct {
			ID string `json:"id"`
		} `json:"vulns"`
		NextPageToken string `json:"next_page_token"`
	} `json:"results"`
}

// maxBatch is the querybatch limit osv.dev documents (1,000 queries).
const maxBatch = 1000

// QueryBatch returns, per requirement, the records the API names.
func (c *Client) QueryBatch(ctx context.Context, reqs []Requirement) ([][]*Record, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := make([][]*Record, len(reqs))
	cache := map[string]*Record{}
	for start := 0; start < len(reqs); start += maxBatch {
		end := min(start+maxBatch, len(reqs))
		q := struct {
			Queries []batchQuery `json:"queries"`
		}{}
		for _, r := range reqs[start:end] {
			q.Queries = append(q.Queries, batchQuery{Package: Package{Ecosystem: EcosystemPyPI, Name: NormalizeName(r.Name)}, Version: r.Version})
		}
		body, _ := json.Marshal(q)
		var ans batchAnswer
		if err := c.do(ctx, http.MethodPost, "/v1/querybatch", body, &ans); err != nil {
			return nil, err
		}
		if len(ans.Results) != end-start {
			return nil, c.err(fmt.Errorf("querybatch answered %d results for %d queries", len(ans.Results), end-start))
		}
		for i, res := range ans.Results {
			for _, v := range res.Vulns {
				rec, ok := cache[v.ID]
				if !ok {
					rec = new(Record)
					if err := c.do(ctx, http.MethodGet, "/v1/vulns/"+url.PathEscape(v.ID), nil, rec); err != nil {
						return nil, err
					}
					cache[v.ID] = rec
				}
				out[start+i] = append(out[start+i], rec)
			}
		}
	}
	return out, nil
}

func (c *Client) err(err error) error {
	return &OnlineError{URL: redact.URL(c.BaseURL), Err: err}
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, into any) error {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	limit := c.MaxBodyBytes
	if limit <= 0 {
		limit = 8 << 20
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return c.err(err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return c.err(redactErr(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return c.err(err)
	}
	if int64(len(b)) > limit {
		return c.err(fmt.Errorf("%s %s: answer larger than %d bytes", method, path, limit))
	}
	if resp.StatusCode != http.StatusOK {
		return c.err(fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode))
	}
	if err := json.Unmarshal(b, into); err != nil {
		return c.err(fmt.Errorf("%s %s: %w", method, path, err))
	}
	return nil
}

// redactErr drops the URL a *url.Error carries (it may hold credentials)
// and keeps the cause.
func redactErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
