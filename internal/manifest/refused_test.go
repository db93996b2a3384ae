package manifest

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// refusal is how a file system (the Git tree) declines one file by design.
type refusal string

func (r refusal) Error() string   { return string(r) }
func (refusal) RefusedFile() bool { return true }

// refusingFS declines some files on Stat and others on ReadFile, and fails
// outright on others, as the Git tree does for oversized files, links
// leaving the repository and unreadable storage.
type refusingFS struct {
	fs.FS
	onStat, onRead map[string]error
}

func (r refusingFS) Stat(name string) (fs.FileInfo, error) {
	if err, ok := r.onStat[name]; ok {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fs.Stat(r.FS, name)
}

func (r refusingFS) ReadFile(name string) ([]byte, error) {
	if err, ok := r.onRead[name]; ok {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return fs.ReadFile(r.FS, name)
}

// A manifest the file system refuses (too large to read, a link out of
// the repository) is a problem of its own model; the other models load.
// Any other failure of the file system still fails the load.
func TestRefusedManifestBlocksOnlyItsModel(t *testing.T) {
	other := strings.ReplaceAll(goodModel, "name: churn", "name: fraud")
	third := strings.ReplaceAll(goodModel, "name: churn", "name: spam")
	base := repoFS(testConfig, map[string]string{"churn": goodModel, "fraud": other, "spam": third})
	fsys := refusingFS{FS: base,
		onStat: map[string]error{"models/churn/model.yaml": refusal("too large: 419430400 bytes; the limit is 33554432")},
		onRead: map[string]error{"models/spam/model.yaml": refusal("symbolic link leaves the repository")},
	}
	repo, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := repo.Models["fraud"]; !ok {
		t.Fatalf("healthy model fraud was not loaded: %v", repo.AllErrors())
	}
	for name, want := range map[string]string{"churn": "419430400 bytes", "spam": "leaves the repository"} {
		probs := repo.Problems[name]
		if len(probs) != 1 || probs[0].File != "models/"+name+"/model.yaml" || !strings.Contains(probs[0].Message, want) {
			t.Errorf("problems of %s = %v, want one naming the file and %q", name, probs, want)
		}
	}

	broken := refusingFS{FS: base, onStat: map[string]error{"models/churn/model.yaml": errors.New("pack file is corrupt")}}
	if _, err := Load(broken); err == nil {
		t.Fatal("an unreadable repository loaded")
	}
}
