package mlflow

import "errors"

// ErrModelMissing is the cause of a plan error for a registered model Git
// names but MLflow does not have; match it with errors.Is.
var ErrModelMissing = errors.New("does not exist in MLflow")
