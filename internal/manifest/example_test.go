package manifest

import (
	"os"
	"testing"
)

// The shipped example repository must always be valid.
func TestExampleRepositoryIsValid(t *testing.T) {
	repo, err := Load(os.DirFS("../../manifests-example"))
	if err != nil {
		t.Fatal(err)
	}
	if errs := append(repo.AllErrors(), repo.SourceErrors("main")...); len(errs) > 0 {
		t.Fatalf("example repository has problems:\n%v", errs)
	}
	want := []string{"customer-churn-predictor", "fraud-detector-xgb", "llama2-7b-alpaca", "sentiment-bert-legacy"}
	got := repo.ModelNames()
	if len(got) != len(want) {
		t.Fatalf("models = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("models = %v, want %v", got, want)
		}
	}
	churn := repo.Models["customer-churn-predictor"]
	if v := churn.Spec.Environments["prod"].Version; v != 3 {
		t.Errorf("churn prod version = %d, want 3", v)
	}
	if m := churn.Spec.ModelCard.Metrics; m["accuracy"] != 0.92 || m["precision"] != 0.89 || m["recall"] != 0.91 || m["f1"] != 0.90 {
		t.Errorf("churn metrics = %v", m)
	}
	llama := repo.Models["llama2-7b-alpaca"].Spec.Environments["prod"]
	if llama.Version != 3 || llama.Canary == nil || llama.Canary.Version != 4 || llama.Canary.Weight != 20 {
		t.Errorf("llama prod = %+v, want v3 with canary v4 at 20%%", llama)
	}
}
