// Package scantest builds the artifact scanner's corpus: real model files
// written by the real libraries (scikit-learn, joblib, NumPy, XGBoost,
// safetensors, ONNX) from the test environment's Python, and malicious
// files as attackers write them, each with the verdict a scanner owes it.
// The scanner's tests and test/bench/scan share it.
package scantest

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/modelsync/modelsync/test/testenv"
)

//go:embed mkcorpus.py
var mkcorpus []byte

// Case is one corpus file and what a scanner must say of it.
type Case struct {
	Path    string // relative to the corpus directory
	Verdict string // safe, unknown or dangerous
	Rule    string // the rule modelsync's scanner reports (empty for safe)
	Why     string
}

// Malicious says whether a scanner must flag the file.
func (c Case) Malicious() bool { return c.Verdict == "dangerous" }

// Cases is the corpus. mkcorpus.py writes exactly these files.
var Cases = []Case{
	{"benign/config.json", "safe", "", "not a model format: hashed only"},
	{"benign/model.onnx", "safe", "", "ONNX with an inline initializer"},
	{"benign/model.safetensors", "safe", "", "safetensors.numpy.save_file"},
	{"benign/object_array.npy", "safe", "", "object array of plain values: the pickle names only NumPy"},
	{"benign/onnx_external/model.onnx", "safe", "", "external data beside the model"},
	{"benign/onnx_external/weights.bin", "safe", "", "raw tensor data"},
	{"benign/ordered_dict_p2.pkl", "safe", "", "OrderedDict of NumPy values"},
	{"benign/protocol0.pkl", "safe", "", "plain data at protocol 0"},
	{"benign/pytorch_state_dict.pt", "safe", "", "torch.save layout: data.pkl with tensor rebuilds"},
	{"benign/sklearn_logreg_p2.pkl", "safe", "", "pickle.dumps(LogisticRegression), protocol 2"},
	{"benign/sklearn_logreg_p4.pkl", "safe", "", "protocol 4"},
	{"benign/sklearn_logreg_p5.pkl", "safe", "", "protocol 5"},
	{"benign/sklearn_pipeline.joblib.bz2", "safe", "", "joblib, bz2"},
	{"benign/sklearn_pipeline.joblib.gz", "safe", "", "joblib, gzip"},
	{"benign/sklearn_pipeline_zlib.joblib", "safe", "", "joblib, zlib"},
	{"benign/sklearn_rf.joblib", "safe", "", "joblib with arrays written inline"},
	{"benign/weights.npy", "safe", "", "float32 array"},
	{"benign/weights.npz", "safe", "", "np.savez"},
	{"benign/xgboost.json", "safe", "", "XGBoost JSON model"},
	{"benign/xgboost.pkl", "safe", "", "pickled XGBClassifier"},
	{"benign/xgboost.ubj", "safe", "", "XGBoost UBJSON model"},
	{"malicious/external_escape.onnx", "dangerous", "onnx.external_data_escape", "external data ../../../../etc/passwd"},
	{"malicious/getattr_chain_p2.pkl", "dangerous", "pickle.denied_global", "getattr(__import__('os'), 'system')"},
	{"malicious/getattr_dunder_p4.pkl", "dangerous", "pickle.denied_global", "getattr(OrderedDict, '__init__')"},
	{"malicious/huge_header.safetensors", "dangerous", "safetensors.header_length", "header claims 100 GB"},
	{"malicious/inst_p0.pkl", "dangerous", "pickle.denied_global", "INST os system"},
	{"malicious/joblib_payload.joblib", "dangerous", "pickle.denied_global", "os.system after an inline array"},
	{"malicious/joblib_payload.joblib.gz", "dangerous", "pickle.denied_global", "the same, gzip-compressed"},
	{"malicious/obj_p1.pkl", "dangerous", "pickle.denied_global", "OBJ with os.system"},
	{"malicious/object_payload.npy", "dangerous", "pickle.denied_global", "object array holding os.system"},
	{"malicious/out_of_bounds.safetensors", "dangerous", "safetensors.out_of_bounds", "offsets past the data"},
	{"malicious/overlap.safetensors", "dangerous", "safetensors.overlap", "two tensors share bytes"},
	{"malicious/py2_builtin_eval_p0.pkl", "dangerous", "pickle.denied_global", "__builtin__.eval"},
	{"malicious/pytorch_payload.pt", "dangerous", "pickle.denied_global", "os.system inside data.pkl of a PyTorch archive"},
	{"malicious/reduce_os_system_p0.pkl", "dangerous", "pickle.denied_global", "__reduce__ → posix.system, protocol 0"},
	{"malicious/reduce_os_system_p2.pkl", "dangerous", "pickle.denied_global", "protocol 2"},
	{"malicious/reduce_os_system_p4.pkl", "dangerous", "pickle.denied_global", "protocol 4"},
	{"malicious/reduce_os_system_p5.pkl", "dangerous", "pickle.denied_global", "protocol 5"},
	{"malicious/reduce_runpy_p5.pkl", "dangerous", "pickle.denied_global", "runpy.run_path"},
	{"malicious/reduce_subprocess_p4.pkl", "dangerous", "pickle.denied_global", "subprocess.check_output"},
	{"malicious/stack_global_long_memo.pkl", "dangerous", "pickle.denied_global", "STACK_GLOBAL of LONG_BINGET'd posix"},
	{"malicious/stack_global_memo.pkl", "dangerous", "pickle.denied_global", "STACK_GLOBAL of os/system memoized in a list"},
	{"malicious/zip_slip.zip", "dangerous", "zip.path_traversal", "member ../../../etc/cron.d/evil"},
	{"unknown/custom_class.pkl", "unknown", "pickle.unknown_global", "a class of the model's own package"},
	{"unknown/functools_partial.pkl", "unknown", "pickle.unknown_global", "functools.partial"},
}

// Python returns the test environment's Python with the corpus libraries.
func Python() (string, error) { return testenv.ScanPythonBin() }

// Build writes the corpus into dir with the test environment's Python and
// checks that it wrote exactly Cases.
func Build(ctx context.Context, dir string) error {
	py, err := Python()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mkcorpus")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	script := filepath.Join(tmp, "mkcorpus.py")
	if err := os.WriteFile(script, mkcorpus, 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the scan corpus with %s: %w\n%s", py, err, stderr.String())
	}
	want := map[string]bool{}
	for _, c := range Cases {
		want[c.Path] = true
		if _, err := os.Stat(filepath.Join(dir, c.Path)); err != nil {
			return fmt.Errorf("corpus file %s was not written: %w", c.Path, err)
		}
	}
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !want[filepath.ToSlash(rel)] {
			return fmt.Errorf("corpus file %s has no expected verdict in scantest.Cases", rel)
		}
		return nil
	})
}
