package release

// Index groups release tags by model so that finding one model's newest
// release costs that model's tags, not every tag of the repository.
// Scanning the whole list per model (Latest) made resolving n models with
// one tag each cost n² comparisons: 10,000 models meant 10⁸. An Index is
// built once per fetch or per desired-state computation and is read-only
// afterwards, so it may be shared by readers.
type Index struct {
	byModel map[string][]Tag
	all     []Tag
}

// NewIndex indexes tags. The slice is kept for All, not copied: callers
// must not change it afterwards.
func NewIndex(tags []Tag) *Index {
	ix := &Index{byModel: make(map[string][]Tag), all: tags}
	for _, t := range tags {
		ix.byModel[t.Model] = append(ix.byModel[t.Model], t)
	}
	return ix
}

// All returns every indexed tag, in the order given to NewIndex.
func (ix *Index) All() []Tag { return ix.all }

// Len is the number of indexed tags.
func (ix *Index) Len() int { return len(ix.all) }

// Model returns model's tags, in the order given to NewIndex.
func (ix *Index) Model(model string) []Tag { return ix.byModel[model] }

// Latest is Latest(tags, model, allowPrerelease) for the indexed tags.
func (ix *Index) Latest(model string, allowPrerelease bool) (Tag, bool) {
	return Latest(ix.byModel[model], model, allowPrerelease)
}

// NextRelease is NextRelease(tags, model, bump) for the indexed tags.
func (ix *Index) NextRelease(model, bump string) (Tag, *Tag, error) {
	return NextRelease(ix.byModel[model], model, bump)
}
