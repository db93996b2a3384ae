package policy

// DisableManifestCache lets the external benchmarks measure evaluation
// without the cross-evaluation manifest cache.
func DisableManifestCache(e *Engine) { e.manifests = nil }
