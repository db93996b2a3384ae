package canary

import (
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

func desiredEnv(ns string, steps []int, weight int, a *manifest.Analysis) reconciler.DesiredEnv {
	return reconciler.DesiredEnv{
		Environment: "prod", Namespace: ns, Alias: "prod", Version: 3,
		Canary: &reconciler.DesiredCanary{Version: 4, Alias: "prod-canary", Weight: weight, Steps: steps, Analysis: a},
	}
}
