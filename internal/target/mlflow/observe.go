package mlflow

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/reconciler"
)

// observation is the live registry state of the desired models.
type observation struct {
	models map[string]*liveModel // by registered model name
}

type liveModel struct {
	exists   bool
	aliases  map[string]int
	versions map[int]mlflowclient.ModelVersion
}

// versionsPerSearch bounds the names in one `name IN (...)` filter, keeping
// the query string well under common URL limits.
const versionsPerSearch = 50

// Observe reads every desired model's aliases and versions: the registered
// models come from paged searches (aliases included), and versions from
// searches that cover many models each, so a quiet registry costs
// O(models / page size) requests, not one per version.
func (t *Target) Observe(ctx context.Context, d *reconciler.DesiredState) (*observation, error) {
	var names []string
	for _, m := range d.Models {
		if !m.Suspended {
			names = append(names, m.RegisteredModel)
		}
	}
	return readRegistry(ctx, t.client, t.pageSize, names)
}

// readRegistry reads the aliases and versions of the registered models
// names in O(models / page size) requests (see Observe). The S3 target's
// VersionLister shares it, so both targets pay the same on every server.
func readRegistry(ctx context.Context, client *mlflowclient.Client, pageSize int, names []string) (*observation, error) {
	obs := &observation{models: map[string]*liveModel{}}
	var registered []string
	names = slices.Clone(names)
	for _, n := range names {
		obs.models[n] = &liveModel{aliases: map[string]int{}, versions: map[int]mlflowclient.ModelVersion{}}
	}
	if len(names) == 0 {
		return obs, nil
	}
	// The first request: it fails fast, naming the server and the cause,
	// when the registry cannot be reached, and tells (once per client)
	// whether version searches may cover several models.
	caps, err := client.Capabilities(ctx)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	if len(names) <= 3 {
		// A handful of models: direct reads beat listing a shared registry.
		for _, n := range names {
			rm, err := client.GetRegisteredModel(ctx, n)
			if mlflowclient.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			obs.record(*rm)
		}
	} else {
		for rm, err := range client.RegisteredModels(ctx, mlflowclient.SearchOptions{PageSize: pageSize}) {
			if err != nil {
				return nil, err
			}
			obs.record(rm)
			registered = append(registered, rm.Name)
		}
	}
	var existing []string
	for _, n := range names {
		if obs.models[n].exists {
			existing = append(existing, n)
		}
	}
	if !caps.MultiModelVersionSearch && len(existing) > 3 {
		// MLflow 2.x filters versions by one name at a time: searching
		// model by model cost one request per model (10,000 per resync at
		// 10,000 models). One paged search of every version whose name
		// shares the models' common prefix costs O(versions / page size)
		// instead, when those versions are mostly ours.
		prefix := likePrefix(existing)
		covered := 0
		for _, n := range registered {
			if strings.HasPrefix(n, prefix) {
				covered++
			}
		}
		if 4*len(existing) >= covered {
			return obs, scanVersions(ctx, client, pageSize, obs, prefix)
		}
	}
	for len(existing) > 0 {
		batch := existing
		if !caps.MultiModelVersionSearch {
			batch = existing[:1]
		} else if len(batch) > versionsPerSearch {
			batch = batch[:versionsPerSearch]
		}
		err := searchVersions(ctx, client, pageSize, obs, batch)
		if err != nil && len(batch) > 1 && mlflowclient.IsInvalidParameter(err) {
			// A server of unknown version that accepts IN only for run_id
			// (as MLflow 2.x): search model by model from now on, at every
			// user of this client.
			client.NoteNoMultiModelVersionSearch()
			caps.MultiModelVersionSearch = false
			continue
		}
		if err != nil {
			return nil, err
		}
		existing = existing[len(batch):]
	}
	return obs, nil
}

func searchVersions(ctx context.Context, client *mlflowclient.Client, pageSize int, obs *observation, names []string) error {
	filter := nameIn(names)
	if len(names) == 1 {
		filter = "name = " + quote(names[0])
	}
	for mv, err := range client.ModelVersions(ctx, mlflowclient.SearchOptions{Filter: filter, PageSize: pageSize}) {
		if err != nil {
			return err
		}
		if lm, ok := obs.models[mv.Name]; ok {
			lm.versions[mv.Version] = mv
		}
	}
	return nil
}

// scanVersions reads every version whose model name starts with prefix
// (all of them for ""), in pages, keeping those of the observed models.
// The order is explicit and stable, as MLflow 2.x pages by offset; the
// client drops a version a concurrent write moves onto a second page.
func scanVersions(ctx context.Context, client *mlflowclient.Client, pageSize int, obs *observation, prefix string) error {
	o := mlflowclient.SearchOptions{PageSize: pageSize, OrderBy: []string{"name ASC", "version_number ASC"}}
	if prefix != "" {
		o.Filter = "name LIKE " + quote(prefix+"%")
	}
	for mv, err := range client.ModelVersions(ctx, o) {
		if err != nil {
			return err
		}
		if lm, ok := obs.models[mv.Name]; ok && lm.exists {
			lm.versions[mv.Version] = mv
		}
	}
	return nil
}

// likePrefix is the longest common prefix of names (sorted) made only of
// characters that mean themselves in a LIKE pattern and need no escaping
// in a quoted filter value.
func likePrefix(names []string) string {
	first, last := names[0], names[len(names)-1]
	n := 0
	for n < len(first) && n < len(last) && first[n] == last[n] {
		c := first[n]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			break
		}
		n++
	}
	return first[:n]
}

func (o *observation) record(rm mlflowclient.RegisteredModel) {
	lm, ok := o.models[rm.Name]
	if !ok {
		return
	}
	lm.exists = true
	for _, a := range rm.Aliases {
		lm.aliases[a.Alias] = a.Version
	}
}

// nameIn builds an MLflow filter matching any of names.
func nameIn(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = quote(n)
	}
	return "name IN (" + strings.Join(quoted, ", ") + ")"
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }
